"""Writes of upgrades: plans, approvals bound to a revision, and the rollout engine.

The engine is a persisted state machine: ``rollout_advance`` does one transition of
one node step at a time, recording the intent (the step's phase) before acting and
checking the cluster's real state before repeating, so a worker killed at any moment
is resumed by the next tick without repeating or skipping a node.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from clusters.connect import gateway_for, gateway_verified
from clusters.kube import KubeError
from clusters.models import EXECUTION_LABELS, REMOVED, Cluster, ClusterNode
from pksweb import policy
from pksweb.choices import SubjectType
from pksweb.events import publish
from pksweb.leases import LeaseLost, Renewal, lease_acquire, lease_held, lease_release
from pksweb.text import LOG_LIMIT, REPORT_LIMIT, bound, bound_tail, says_something
from upgrades import drivers, flight, preflight, versions
from upgrades.choices import ACTIVE_ROLLOUT, Decision, PlanState, RolloutState, StepPhase
from upgrades.models import Approval, Rollout, RolloutStep, UpgradePlan

log = logging.getLogger(__name__)
PLAN_FIELDS = ("name", "target_version", "waves", "max_unavailable", "drain_timeout_seconds", "node_ready_timeout_seconds",
               "health_gate", "soak_seconds", "window_start", "window_end", "window_weekly", "quorum")
GATE_GRACE_SECONDS = 60
READY_POLL_FAST = 0.2
WEEK = timedelta(days=7)
DAY_SECONDS = 86400
REASON_LIMIT = 2000  # a start reason a person writes


def _require(user: Any, action: str, obj: Any, message: str) -> None:
    if user is not None and not policy.can(user, action, obj):
        raise PermissionDenied(message)


def _plan_event(plan: UpgradePlan, kind: str, message: str, actor: Any = None, **payload: Any) -> None:
    publish(kind=kind, message=message, actor=actor, subject_type=SubjectType.PLAN, subject_id=plan.pk,
            subject_label=plan.name, payload={"plan": plan.pk, **payload})


# ---- plans ------------------------------------------------------------------------------


def _validate(plan: UpgradePlan) -> None:
    errors: dict[str, str] = {}
    if versions.parse(plan.target_version) is None:
        errors["target_version"] = f"{plan.target_version!r} is not a Kubernetes version: write it like 1.31.2."
    waves = plan.waves
    if not isinstance(waves, list) or not waves or not all(isinstance(w, list) and w and all(isinstance(c, int) for c in w) for w in waves):
        errors["waves"] = "Give the waves as a list of lists of cluster ids, e.g. [[1], [2, 3]] (a canary wave first)."
    else:
        ids = [c for wave in waves for c in wave]
        if len(ids) != len(set(ids)):
            errors["waves"] = "A cluster appears in more than one wave."
        possible = [c for c in ids if 0 < c < 2**63]  # beyond the id column (bigint) no cluster can exist
        missing = set(ids) - set(Cluster.objects.filter(pk__in=possible).values_list("pk", flat=True))
        if missing:
            errors["waves"] = f"No clusters with ids {sorted(missing)}."
    if not 1 <= plan.max_unavailable <= 1000:
        errors["max_unavailable"] = "Upgrade at least one node at a time per cluster, and at most 1,000."
    if not 1 <= plan.quorum <= 100:
        errors["quorum"] = "At least one approval is needed, and at most 100."
    if not 10 <= plan.drain_timeout_seconds <= DAY_SECONDS:
        errors["drain_timeout_seconds"] = "Give drains at least 10 seconds, and at most a day (86400)."
    if not 1 <= plan.node_ready_timeout_seconds <= DAY_SECONDS:
        errors["node_ready_timeout_seconds"] = "Give a node at least 1 second, and at most a day (86400), to come back Ready."
    if not 0 <= plan.soak_seconds <= 7 * DAY_SECONDS:
        errors["soak_seconds"] = "Soak at most a week (604800 seconds) between waves."
    if (plan.window_start is None) != (plan.window_end is None):
        errors["window_end"] = "Give both the window's start and its end, or neither."
    elif plan.window_start and plan.window_end and plan.window_end <= plan.window_start:
        errors["window_end"] = "The window must end after it starts."
    elif plan.window_weekly and plan.window_start and plan.window_end and plan.window_end - plan.window_start >= WEEK:
        errors["window_end"] = "A weekly window must be shorter than a week."
    if errors:
        raise ValidationError(errors)


def _recompute(plan: UpgradePlan) -> None:
    """Recompute the flight plan and the revision from the database alone (no cluster I/O)."""
    steps = flight.flight_plan(waves=plan.waves, target=plan.target_version)
    plan.flight_plan = steps
    plan.revision = flight.revision(plan, steps)


def _removed(plan: UpgradePlan) -> list[str]:
    """The clusters the plan's waves name that pksweb no longer has: an archived one by its name, a deleted one by id."""
    wanted = list(dict.fromkeys(c for wave in plan.waves for c in wave))
    gone = set(wanted) - set(Cluster.objects.filter(pk__in=wanted).values_list("pk", flat=True))
    archived = dict(Cluster.all_objects.filter(pk__in=gone).values_list("pk", "name"))
    return [archived.get(pk, f"#{pk}") for pk in wanted if pk in gone]


def _preflight(plan: UpgradePlan) -> dict[str, Any]:
    """Run the preflight against the plan's clusters (cluster I/O: never under a row lock)."""
    clusters = list(Cluster.objects.filter(pk__in=[c for wave in plan.waves for c in wave]))
    report = preflight.run(clusters=clusters, target=plan.target_version, max_unavailable=plan.max_unavailable,
                           missing=_removed(plan), nodes=len(plan.flight_plan)).as_dict()
    report["estimate_seconds"] = flight.estimate_seconds(plan.flight_plan, plan.soak_seconds, len(plan.waves), plan.max_unavailable)
    report["revision"] = plan.revision
    return report


def _refresh(plan: UpgradePlan) -> None:
    """Recompute the flight plan, the revision and the preflight (plans not yet saved or locked)."""
    _recompute(plan)
    plan.preflight = _preflight(plan)


def _looked_at(plan: UpgradePlan) -> tuple[UpgradePlan, dict[str, Any]]:
    """A fresh copy of ``plan`` with its flight plan recomputed, and a preflight of that revision, taken
    outside any lock. The caller then locks the row and checks nothing moved meanwhile (``_still``)."""
    current = UpgradePlan.objects.get(pk=plan.pk)
    _recompute(current)
    return current, _preflight(current)


def _still(locked: UpgradePlan, looked: UpgradePlan) -> None:
    """Refuse to write a preflight over a plan (or fleet) that changed while it ran."""
    _recompute(locked)
    if locked.updated_at != looked.updated_at or locked.revision != looked.revision:
        raise ValidationError({"non_field_errors": "The plan or its clusters changed while pksweb checked them; look at the "
                                                   "plan again and retry."})


def plan_create(*, author: Any, **fields: Any) -> UpgradePlan:
    """Write a plan (draft); its flight plan, revision and preflight are computed at once."""
    _require(author, "create", UpgradePlan, "Only operators write upgrade plans.")
    unknown = set(fields) - set(PLAN_FIELDS)
    if unknown:
        raise ValidationError({"non_field_errors": f"Unknown fields: {', '.join(sorted(unknown))}."})
    plan = UpgradePlan(author=author, **fields)
    plan.target_version = (plan.target_version or "").strip().lstrip("v")
    _validate(plan)
    _refresh(plan)
    plan.full_clean()
    with transaction.atomic():
        plan.save()
        _plan_event(plan, "upgrade.plan_created", f"Upgrade plan {plan.name} to {plan.target_version} written", author,
                    revision=plan.revision)
    return plan


def plan_update(*, plan: UpgradePlan, editor: Any, **changes: Any) -> UpgradePlan:
    """Edit a plan that has not started. Existing approvals are voided and the plan returns to draft.

    The preflight of the edited plan reads the clusters first; then the row is locked, checked
    unchanged since, and written (no cluster I/O under the lock)."""
    _require(editor, "operate", plan, "Only operators edit upgrade plans.")
    unknown = set(changes) - set(PLAN_FIELDS)
    if unknown:
        raise ValidationError({"non_field_errors": f"Unknown fields: {', '.join(sorted(unknown))}."})
    edited = UpgradePlan.objects.get(pk=plan.pk)
    seen = edited.updated_at
    if edited.state == PlanState.STARTED:
        raise ValidationError({"non_field_errors": "This plan has started; write a new plan instead."})
    for key, value in changes.items():
        setattr(edited, key, value)
    edited.target_version = (edited.target_version or "").strip().lstrip("v")
    _validate(edited)
    _refresh(edited)
    with transaction.atomic():
        locked = UpgradePlan.objects.select_for_update().get(pk=plan.pk)
        if locked.state == PlanState.STARTED:
            raise ValidationError({"non_field_errors": "This plan has started; write a new plan instead."})
        if locked.updated_at != seen:
            raise ValidationError({"non_field_errors": "Someone changed the plan while you edited it; look at it again."})
        old_revision = locked.revision
        for key in PLAN_FIELDS:
            setattr(locked, key, getattr(edited, key))
        locked.flight_plan, locked.revision, locked.preflight = edited.flight_plan, edited.revision, edited.preflight
        if flight.revision(locked, flight.flight_plan(waves=locked.waves, target=locked.target_version)) != locked.revision:
            raise ValidationError({"non_field_errors": "The plan's clusters changed while pksweb checked them; save again."})
        locked.updated_at = timezone.now()
        locked.full_clean()
        voided = locked.approvals.filter(voided=False).update(voided=True)
        if locked.state != PlanState.DRAFT:
            locked.state = PlanState.DRAFT
        locked.save()
        note = f"; {voided} approval{'s' if voided != 1 else ''} voided" if voided else ""
        _plan_event(locked, "upgrade.plan_edited", f"Upgrade plan {locked.name} edited (revision {locked.revision[:8]}){note}",
                    editor, old_revision=old_revision, revision=locked.revision, voided=voided)
    return locked


def plan_delete(*, plan: UpgradePlan, deleted_by: Any) -> None:
    """Delete a plan that never started (a started one stays in the audit trail)."""
    _require(deleted_by, "operate", plan, "Only operators delete upgrade plans.")
    with transaction.atomic():
        locked = UpgradePlan.objects.select_for_update().get(pk=plan.pk)
        if locked.state == PlanState.STARTED:
            raise ValidationError({"non_field_errors": "A plan that started stays in the audit trail; it cannot be deleted."})
        _plan_event(locked, "upgrade.plan_deleted", f"Upgrade plan {locked.name} deleted", deleted_by)
        locked.delete()


def plan_submit(*, plan: UpgradePlan, by: Any) -> UpgradePlan:
    """Ask approvers to sign off; refused while preflight fails (checked before the row is locked)."""
    _require(by, "operate", plan, "Only operators submit upgrade plans.")
    looked, report = _looked_at(plan)
    if looked.state != PlanState.DRAFT:
        raise ValidationError({"non_field_errors": f"Only a draft can be submitted; this plan is {looked.get_state_display().lower()}."})
    with transaction.atomic():
        locked = UpgradePlan.objects.select_for_update().get(pk=plan.pk)
        if locked.state != PlanState.DRAFT:
            raise ValidationError({"non_field_errors": f"Only a draft can be submitted; this plan is {locked.get_state_display().lower()}."})
        _still(locked, looked)
        if report["failures"]:  # refused: nothing changes, the message says what fails
            first = report["failures"][0]
            raise ValidationError({"preflight": f"Preflight fails ({len(report['failures'])}): {first['cluster']}: {first['message']}"})
        locked.preflight = report
        locked.state = PlanState.SUBMITTED
        locked.save()
        _plan_event(locked, "upgrade.plan_submitted", f"Upgrade plan {locked.name} submitted for approval "
                    f"(revision {locked.revision[:8]}, {len(report['warnings'])} warnings)", by, revision=locked.revision)
    return locked


def plan_decide(*, plan: UpgradePlan, approver: Any, revision: str, decision: str, comment: str = "") -> UpgradePlan:
    """An approver approves or rejects the exact revision they reviewed."""
    _require(approver, "approve", plan, "Only approvers sign off upgrade plans.")
    if decision not in Decision.values:
        raise ValidationError({"decision": "Decide approve or reject."})
    with transaction.atomic():
        locked = UpgradePlan.objects.select_for_update().get(pk=plan.pk)
        if locked.state not in (PlanState.SUBMITTED, PlanState.APPROVED):
            raise ValidationError({"non_field_errors": f"This plan is {locked.get_state_display().lower()}, not waiting for approval."})
        if approver is not None and locked.author_id == approver.pk:
            raise ValidationError({"non_field_errors": "You wrote this plan: someone else must approve it."})
        if revision != locked.revision and revision and locked.revision.startswith(revision):
            raise ValidationError({"revision": f"Give the whole revision you reviewed ({locked.revision}), not its first "
                                               f"{len(revision)} characters."})
        if revision != locked.revision:
            raise ValidationError({"revision": f"The plan changed since you reviewed it (you saw {bound(revision, 17) or 'nothing'}, "
                                               f"it is now {locked.revision[:16]}): review the current revision."})
        gone = _removed(locked) if decision == Decision.APPROVE else []
        if gone:
            raise ValidationError({"non_field_errors": f"{', '.join(gone[:5])} {'was' if len(gone) == 1 else 'were'} removed from "
                                                       "pksweb: this plan cannot run as written. Reject it so that its author "
                                                       "takes the cluster out of the waves."})
        if decision == Decision.REJECT and not (comment or "").strip():
            raise ValidationError({"comment": "Say why you reject the plan."})
        if locked.approvals.filter(approver=approver, revision=locked.revision, voided=False).exists():
            raise ValidationError({"non_field_errors": "You have already decided on this revision; one person counts once."})
        try:
            with transaction.atomic():
                Approval.objects.create(plan=locked, approver=approver, approver_name=approver.get_username(), revision=locked.revision,
                                        decision=decision, comment=(comment or "").strip())
        except IntegrityError:
            raise ValidationError({"non_field_errors": "You have already decided on this revision; one person counts once."}) from None
        if decision == Decision.REJECT:
            locked.state = PlanState.DRAFT
            locked.approvals.filter(voided=False).exclude(decision=Decision.REJECT).update(voided=True)
            _plan_event(locked, "upgrade.plan_rejected", f"Upgrade plan {locked.name} rejected by {approver.get_username()}: {comment}",
                        approver, revision=locked.revision)
        else:
            approvals = _approvals_count(locked, locked.revision)
            if approvals >= locked.quorum:
                locked.state = PlanState.APPROVED
            _plan_event(locked, "upgrade.plan_approved", f"Upgrade plan {locked.name} approved by {approver.get_username()} "
                        f"({approvals} of {locked.quorum})", approver, revision=locked.revision)
        locked.save()
    return locked


def _approvals_count(plan: UpgradePlan, revision: str) -> int:
    """Standing approvals of ``revision``; the author's own never counts."""
    approvals = plan.approvals.filter(revision=revision, voided=False, decision=Decision.APPROVE)
    return (approvals.exclude(approver_id=plan.author_id) if plan.author_id is not None else approvals).count()


def in_window(plan: UpgradePlan, now: datetime | None = None) -> bool:
    """Whether ``now`` is inside the plan's maintenance window (no window: always)."""
    now = now or timezone.now()
    if plan.window_start is None or plan.window_end is None:
        return True
    if not plan.window_weekly:
        return plan.window_start <= now < plan.window_end
    if now < plan.window_start:
        return False
    offset = (now - plan.window_start) % WEEK
    return offset < plan.window_end - plan.window_start


def plan_start(*, plan: UpgradePlan, by: Any, outside_window_reason: str = "") -> Rollout:
    """Start an approved plan (operators only): inside its window, or outside it for a reason that is
    recorded on the rollout and in the event. A reason given inside the window is recorded too.

    Preflight reads the clusters before the row is locked; the lock then checks that the plan and
    its fleet are still the approved revision (a changed fleet voids the approvals: the plan waits
    for approval again)."""
    _require(by, "operate", plan, "Only operators start upgrades; approvers sign plans off.")
    reason = bound((outside_window_reason or "").strip(), REASON_LIMIT)
    if not says_something(reason):
        reason = ""  # blanks, zero-width, control characters and fillers say nothing: they are no reason
    looked, report = _looked_at(plan)
    if looked.state != PlanState.APPROVED:
        raise ValidationError({"non_field_errors": f"Only an approved plan can start; this one is {looked.get_state_display().lower()}."})
    with transaction.atomic():
        locked = UpgradePlan.objects.select_for_update().get(pk=plan.pk)
        if locked.state != PlanState.APPROVED:
            raise ValidationError({"non_field_errors": f"Only an approved plan can start; this one is {locked.get_state_display().lower()}."})
        inside = in_window(locked)
        if not inside and not reason:
            raise ValidationError({"outside_window_reason": "The maintenance window is not open. To start anyway, say why: "
                                                           "the reason is recorded on the rollout."})
        approved_revision = locked.revision
        _still(locked, looked)
        if locked.revision != approved_revision:
            voided = locked.approvals.filter(voided=False).update(voided=True)
            locked.state = PlanState.SUBMITTED
            locked.preflight = report
            locked.save()
            _plan_event(locked, "upgrade.plan_voided", f"Upgrade plan {locked.name}: the fleet changed since it was approved "
                        f"(nodes or their upgrade inputs differ); {voided} approval(s) voided, it awaits approval of revision "
                        f"{locked.revision[:8]}", by, old_revision=approved_revision, revision=locked.revision, voided=voided)
    if locked.revision != approved_revision:
        raise ValidationError({"non_field_errors": "The fleet changed since the plan was approved (nodes or their upgrade "
                                                   "inputs differ): its approvals were voided; it awaits approval again."})
    if report["failures"]:
        first = report["failures"][0]
        raise ValidationError({"preflight": f"Preflight fails just before start: {first['cluster']}: {first['message']}"})
    with transaction.atomic():
        locked = UpgradePlan.objects.select_for_update().get(pk=plan.pk)
        if locked.state != PlanState.APPROVED or locked.revision != approved_revision:
            raise ValidationError({"non_field_errors": "The plan changed while pksweb checked it; look at it again."})
        # One rollout per cluster at a time: the clusters' rows are locked, so two plans started at once
        # over one cluster are decided one after the other.
        for cluster in Cluster.objects.select_for_update().filter(pk__in=[c for w in locked.waves for c in w]).order_by("pk"):
            other = rollout_claim(cluster, None)
            if other:
                raise ValidationError({"non_field_errors": f"Cluster {cluster.name} is taken: {other}"})
        locked.preflight = report
        try:
            with transaction.atomic():
                rollout = Rollout.objects.create(plan=locked, revision=locked.revision, started_by=by,
                                                 outside_window_reason=reason if not inside else "", start_reason=reason)
        except IntegrityError:
            raise ValidationError({"non_field_errors": "A rollout of this plan is already active."}) from None
        RolloutStep.objects.bulk_create([
            RolloutStep(rollout=rollout, order=i, wave=s["wave"], cluster_id=s["cluster_id"], node=s["node"],
                        control_plane=s["control_plane"]) for i, s in enumerate(locked.flight_plan)])
        locked.state = PlanState.STARTED
        locked.save()
        extra = f" outside its window: {reason}" if not inside else f" (reason given: {reason})" if reason else ""
        _rollout_event(rollout, "rollout.started", f"Rollout of {locked.name} to {locked.target_version} started{extra}", by,
                       steps=len(locked.flight_plan), outside_window=not inside, reason=reason)
        transaction.on_commit(lambda: _enqueue_tick(rollout.pk))
    return rollout


UNFINISHED = (RolloutState.RUNNING, RolloutState.PAUSED, RolloutState.HALTED)


def rollout_claim(cluster: Cluster, node: str | None) -> str:
    """Why ``cluster`` (or, with ``node``, a manual operation on its nodes) must be left alone: a rollout
    that is not finished includes it. Removal waits for any unfinished rollout (abort it first); manual
    node operations wait while one runs (a halted or paused one leaves the nodes to the operator).
    Registered with clusters in apps.py."""
    states = UNFINISHED if node is None else (RolloutState.RUNNING,)
    rollout = (Rollout.objects.filter(state__in=states, steps__cluster=cluster).select_related("plan").order_by("pk").first())
    if rollout is None:
        return ""
    if node is None:
        return (f"rollout #{rollout.pk} of {rollout.plan.name} includes it and is {rollout.state}; abort it (or let it "
                "finish) first.")
    return (f"rollout #{rollout.pk} of {rollout.plan.name} is upgrading {cluster.name} and owns its nodes while it runs: "
            "pause or abort it first.")


def plans_cluster_changed(cluster: Cluster, changed: list[str], by: Any) -> None:
    """A cluster's upgrade inputs (driver, command argv, server, TLS trust) changed, or it was removed
    (``changed == [REMOVED]``): every plan not yet started
    that includes it gets its flight plan and revision recomputed, and standing approvals of the old
    revision are voided; a submitted or approved plan waits for approval again, with an event saying
    why. Called inside ``clusters.services.cluster_update``'s transaction (registered in apps.py).
    A running rollout halts by itself before acting on the changed cluster (``_inputs_changed``)."""
    plans = UpgradePlan.objects.select_for_update().exclude(state=PlanState.STARTED).order_by("pk")
    for plan in plans:
        if not any(cluster.pk in wave for wave in plan.waves if isinstance(wave, list)):
            continue
        old_revision = plan.revision
        _recompute(plan)
        if plan.revision == old_revision:
            continue
        voided = plan.approvals.filter(voided=False).update(voided=True)
        was = plan.state
        if plan.state == PlanState.APPROVED:
            plan.state = PlanState.SUBMITTED
        plan.updated_at = timezone.now()
        plan.save()
        waits = f"; it awaits approval of revision {plan.revision[:8]}" if was != PlanState.DRAFT else ""
        what = (f"{cluster.name} was removed from pksweb (take it out of the waves)" if changed == [REMOVED]
                else f"{cluster.name}'s {' and '.join(changed)} changed")
        _plan_event(plan, "upgrade.plan_voided", f"Upgrade plan {plan.name}: {what}; "
                    f"{voided} approval{'s' if voided != 1 else ''} voided{waits}", by, old_revision=old_revision,
                    revision=plan.revision, voided=voided, cluster=cluster.pk, changed=changed)


# ---- rollouts ---------------------------------------------------------------------------
#
# Two kinds of work, each its own Celery task chain:
# - the dispatcher (``rollout_dispatch``, one per rollout, under the rollout's row lock) decides
#   which nodes may start: the lowest unfinished wave, all its clusters at once, control-plane
#   nodes one at a time first, then workers up to ``max_unavailable`` per cluster; it also owns
#   pause, the window, soak and success;
# - a step (``step_advance``, one chain per node in flight, under the step's lease) moves one
#   node through cordon → drain → upgrade → wait Ready → uncordon → gate, recording each phase
#   before acting. ``RolloutStep.chain`` numbers the step's live chain: a tick of an older chain
#   stops, so a restarted chain (after a dead worker) never runs beside the old one.

CORDONED = (StepPhase.DRAIN, StepPhase.UPGRADE, StepPhase.WAIT_READY, StepPhase.UNCORDON)
# After an abort these are uncordoned: a step in CORDON may have cordoned its node (the call reached
# the cluster though its answer did not reach pksweb); uncordoning one it did not is harmless.
MAY_BE_CORDONED = (StepPhase.CORDON, *CORDONED)
IDLE = (StepPhase.PENDING, StepPhase.DONE, StepPhase.FAILED)


@dataclass
class Dispatch:
    """What the dispatcher decided: step chains to run now, and when to look again (None: a step's end calls it)."""

    steps: list[tuple[int, int]] = field(default_factory=list)
    again: float | None = None


@dataclass
class StepTick:
    """After one step transition: seconds until the step's next tick (None: stop), and whether to dispatch."""

    again: float | None = None
    dispatch: bool = False


def _rollout_event(rollout: Rollout, kind: str, message: str, actor: Any = None, **payload: Any) -> None:
    publish(kind=kind, message=message, actor=actor, subject_type=SubjectType.ROLLOUT, subject_id=rollout.pk,
            subject_label=rollout.plan.name, payload={"rollout": rollout.pk, "state": rollout.state, **payload})


def _enqueue_tick(rollout_id: int, delay: float = 0) -> None:
    from upgrades.tasks import rollout_tick

    rollout_tick.apply_async((rollout_id,), countdown=delay)


def _step_lease(step: RolloutStep) -> str:
    return f"rollout.{step.rollout_id}.step.{step.pk}"


def rollout_pause(*, rollout: Rollout, by: Any) -> Rollout:
    """Pause after the nodes in flight (they finish first; no new node starts)."""
    _require(by, "operate", rollout, "Only operators pause rollouts.")
    with transaction.atomic():
        locked = Rollout.objects.select_for_update().select_related("plan").get(pk=rollout.pk)
        if locked.state != RolloutState.RUNNING:
            raise ValidationError({"non_field_errors": f"The rollout is {locked.state}, not running."})
        locked.pause_requested = True
        locked.save(update_fields=["pause_requested"])
        _rollout_event(locked, "rollout.pause_requested", f"Rollout of {locked.plan.name} pauses after the current node", by)
        transaction.on_commit(lambda: _enqueue_tick(locked.pk))
    return locked


def rollout_resume(*, rollout: Rollout, by: Any) -> Rollout:
    """Resume a paused or halted rollout (a halted step is tried again from its recorded phase)."""
    _require(by, "operate", rollout, "Only operators resume rollouts.")
    with transaction.atomic():
        locked = Rollout.objects.select_for_update().select_related("plan").get(pk=rollout.pk)
        if locked.state not in (RolloutState.PAUSED, RolloutState.HALTED):
            raise ValidationError({"non_field_errors": f"The rollout is {locked.state}; only a paused or halted rollout resumes."})
        locked.state = RolloutState.RUNNING
        locked.pause_requested = False
        locked.reason = ""
        locked.save()
        # The chains of steps halted mid-way ended; the dispatcher restarts them at once.
        RolloutStep.objects.filter(rollout=locked).exclude(phase__in=IDLE).update(last_tick_at=None)
        _rollout_event(locked, "rollout.resumed", f"Rollout of {locked.plan.name} resumed", by)
        transaction.on_commit(lambda: _enqueue_tick(locked.pk))
    return locked


def _uncordon_after_abort(step: RolloutStep) -> str:
    """Uncordon a node pksweb cordoned, once (the step becomes failed); the note for the page."""
    try:
        if step.was_cordoned:
            note = f"node {step.node} left cordoned, as it was before the rollout"
        else:
            _gateway(step.cluster).set_unschedulable(step.node, False)
            note = f"node {step.node} uncordoned"
    except KubeError as exc:
        if exc.status == 404:  # gone from the cluster (deleted, or replaced under another name): nothing is cordoned
            note = f"node {step.node} is no longer on {step.cluster.name}; nothing to uncordon"
        else:
            note = f"node {step.node} of {step.cluster.name} may be STILL CORDONED by pksweb: {exc.message}"
    if RolloutStep.objects.filter(pk=step.pk, phase=step.phase).update(phase=StepPhase.FAILED, finished_at=timezone.now(),
                                                                       log=bound_tail(step.log + f"aborted: {note}\n", LOG_LIMIT)):
        step.phase = StepPhase.FAILED
    return note


def rollout_abort(*, rollout: Rollout, by: Any) -> Rollout:
    """Stop for good. The nodes pksweb cordoned are uncordoned by workers, each reported on the page as it
    is done (or as still cordoned, saying why); the request itself never calls a cluster."""
    _require(by, "operate", rollout, "Only operators abort rollouts.")
    with transaction.atomic():
        locked = Rollout.objects.select_for_update().select_related("plan").get(pk=rollout.pk)
        if locked.state not in ACTIVE_ROLLOUT and locked.state != RolloutState.HALTED:
            raise ValidationError({"non_field_errors": f"The rollout is {locked.state} already."})
        locked.state = RolloutState.ABORTED
        locked.finished_at = timezone.now()
        cordoned = list(RolloutStep.objects.filter(rollout=locked, phase__in=MAY_BE_CORDONED).select_related("cluster")
                        .values_list("pk", "chain", "cluster__name", "node"))
        # A node in its health gate is uncordoned already: its step ends here, as the rollout does.
        RolloutStep.objects.filter(rollout=locked, phase=StepPhase.GATE).update(phase=StepPhase.FAILED, finished_at=timezone.now())
        nodes = ", ".join(f"{cluster}/{node}" for _, _, cluster, node in cordoned[:10]) + \
            (f" and {len(cordoned) - 10} more" if len(cordoned) > 10 else "")
        note = f"; uncordoning {len(cordoned)} node(s) pksweb cordoned or was cordoning: {nodes}" if cordoned else ""
        locked.reason = f"Aborted by {by.get_username() if by is not None else 'pksweb'}{note}"
        locked.save(update_fields=["state", "finished_at", "reason"])
        # A step in the middle of a transition (its lease held) uncordons after itself when it ends; the
        # others are uncordoned by a step tick each, and rollouts_poke retries any left behind.
        RolloutStep.objects.filter(pk__in=[pk for pk, *_ in cordoned]).update(last_tick_at=timezone.now())
        _rollout_event(locked, "rollout.aborted", f"Rollout of {locked.plan.name} aborted{note}", by, cordoned=len(cordoned))
        transaction.on_commit(lambda: _enqueue_uncordons([(pk, chain) for pk, chain, *_ in cordoned]))
    return locked


def _enqueue_uncordons(steps: list[tuple[int, int]]) -> None:
    from upgrades.tasks import step_tick

    for step_id, chain in steps:
        step_tick.apply_async((step_id, chain))


def _holder() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{time.monotonic_ns()}"


def _gateway(cluster: Cluster, *, verified: bool = False) -> Any:

    return gateway_verified(cluster) if verified else gateway_for(cluster)


def _set_phase(step: RolloutStep, phase: str, line: str = "", **fields: Any) -> None:
    now = timezone.now()
    step.phase = phase
    step.phase_started_at = now
    if line:
        step.log = bound_tail(step.log + f"[{now:%H:%M:%S}] {line}\n", LOG_LIMIT)
    for key, value in fields.items():
        setattr(step, key, value)
    step.save()
    rollout = step.rollout
    _rollout_event(rollout, "rollout.step_changed", f"{step.cluster.name}/{step.node}: {StepPhase(phase).label.lower()}"
                   f"{' — ' + line if line else ''}", step=step.pk, node=step.node, phase=phase)


def _halt(rollout: Rollout, step: RolloutStep | None, reason: str) -> None:
    """Stop a running rollout with its reason. The reason (a drain report, a command's output) may be
    of any length: it is bounded where it is stored, so the halt itself never fails on it."""
    with transaction.atomic():
        locked = Rollout.objects.select_for_update().select_related("plan").get(pk=rollout.pk)
        if locked.state != RolloutState.RUNNING:
            return  # another node halted it first, or it was aborted: that reason stands
        locked.state = RolloutState.HALTED
        locked.reason = bound(reason, REPORT_LIMIT)
        locked.save()
        if step is not None:
            step.log = bound_tail(step.log + f"[{timezone.now():%H:%M:%S}] halted: {reason}\n", LOG_LIMIT)
            step.save(update_fields=["log"])
        _rollout_event(locked, "rollout.halted", f"Rollout of {locked.plan.name} halted: {reason}", step=step.pk if step else None)


def _unapproved(rollout: Rollout) -> str:
    """Why the engine must not run ``rollout`` ('' when its revision has the plan's quorum of approvals).

    ``plan_start`` checks this too; the engine checks again so that no other path (a task
    message sent by hand, a row written directly) moves a node for a plan nobody approved.
    """
    plan = rollout.plan
    if rollout.revision != plan.revision or _approvals_count(plan, rollout.revision) < plan.quorum:
        return (f"Revision {rollout.revision[:8] or '(none)'} of {plan.name} does not have {plan.quorum} approval(s) from "
                "approvers other than its author; pksweb runs only approved plans. Submit the plan and have it approved.")
    return ""


def _startable(plan: UpgradePlan, wave_steps: list[RolloutStep]) -> list[RolloutStep]:
    """The wave's nodes that may start now: per cluster, control plane one at a time first, then
    workers while fewer than ``max_unavailable`` of its nodes are in flight."""
    by_cluster: dict[int, list[RolloutStep]] = {}
    for step in wave_steps:
        by_cluster.setdefault(step.cluster_id, []).append(step)
    chosen = []
    for steps in by_cluster.values():
        busy = [s for s in steps if s.phase not in IDLE]
        pending = [s for s in steps if s.phase == StepPhase.PENDING]
        if not pending:
            continue
        if any(s.control_plane and s.phase != StepPhase.DONE for s in steps):
            if not busy and pending[0].control_plane:
                chosen.append(pending[0])
            continue
        chosen.extend(pending[:max(0, plan.max_unavailable - len(busy))])
    return chosen


def _left_behind(plan: UpgradePlan, steps: list[RolloutStep]) -> str:
    """The nodes of a finished rollout's clusters (as the last probe saw them) that were not in the approved
    flight plan and do not run the target (they joined after approval), in words; "" when there are none."""
    planned = {(s.cluster_id, s.node) for s in steps}
    left = [n for n in ClusterNode.objects.filter(cluster_id__in={s.cluster_id for s in steps}).select_related("cluster")
            .order_by("cluster__name", "name")
            if (n.cluster_id, n.name) not in planned and not versions.same(n.kubelet_version, plan.target_version)]
    if not left:
        return ""
    names = ", ".join(f"{n.cluster.name}/{n.name} ({n.kubelet_version or 'version unknown'})" for n in left[:10])
    more = f" and {len(left) - 10} more" if len(left) > 10 else ""
    return bound(f"the {len(planned)} node(s) of the plan run {plan.target_version}; not in the approved plan and not at "
                 f"{plan.target_version}: {names}{more} (they joined after approval: write a plan for them)", REASON_LIMIT)


def rollout_dispatch(*, rollout_id: int) -> Dispatch:
    """Decide what a running rollout does next: start nodes, restart chains that died, pause, wait or finish."""
    with transaction.atomic():
        rollout = Rollout.objects.select_for_update().select_related("plan").filter(pk=rollout_id).first()
        if rollout is None or rollout.state != RolloutState.RUNNING:
            return Dispatch()
        plan = rollout.plan
        now = timezone.now()
        refusal = _unapproved(rollout)
        if refusal:
            _halt(rollout, None, refusal)
            return Dispatch()
        Rollout.objects.filter(pk=rollout.pk).update(last_tick_at=now)
        steps = list(RolloutStep.objects.filter(rollout=rollout).select_related("cluster", "rollout__plan").order_by("order"))
        remaining = [s for s in steps if s.phase != StepPhase.DONE]
        if not remaining:
            left = _left_behind(plan, steps)  # shown on the rollout page
            Rollout.objects.filter(pk=rollout.pk).update(state=RolloutState.SUCCEEDED, finished_at=now, reason=left)
            rollout.state = RolloutState.SUCCEEDED
            _rollout_event(rollout, "rollout.succeeded",
                           f"Rollout of {plan.name} finished: {left or f'every node runs {plan.target_version}'}")
            return Dispatch()
        in_flight = [s for s in remaining if s.phase not in IDLE]
        stale = now - timedelta(seconds=settings.PKSWEB_ROLLOUT_STALE_SECONDS)
        run = []
        for step in in_flight:  # chains whose worker died (or that a halt or resume ended) start again
            if (step.last_tick_at is None or step.last_tick_at < stale) and not lease_held(name=_step_lease(step)):
                RolloutStep.objects.filter(pk=step.pk).update(chain=F("chain") + 1, last_tick_at=now)
                run.append((step.pk, step.chain + 1))
                if step.last_tick_at is not None:
                    quiet = int((now - step.last_tick_at).total_seconds())
                    _rollout_event(rollout, "rollout.step_taken_over", f"{step.cluster.name}/{step.node}: its worker went quiet "
                                   f"{quiet} s ago ({StepPhase(step.phase).label.lower()}); another worker takes it over",
                                   step=step.pk, node=step.node, phase=step.phase)
        if rollout.pause_requested:
            if not in_flight:
                Rollout.objects.filter(pk=rollout.pk).update(state=RolloutState.PAUSED, pause_requested=False)
                rollout.state = RolloutState.PAUSED
                _rollout_event(rollout, "rollout.paused", f"Rollout of {plan.name} paused before "
                               f"{remaining[0].cluster.name}/{remaining[0].node}")
            return Dispatch(run)
        if not rollout.outside_window_reason and not in_window(plan, now):
            if in_flight:
                return Dispatch(run)  # the nodes in flight finish; none starts
            if plan.window_weekly:
                if not rollout.waiting_for_window:
                    Rollout.objects.filter(pk=rollout.pk).update(waiting_for_window=True)
                    _rollout_event(rollout, "rollout.waiting_for_window", f"Rollout of {plan.name} waits for the next window")
                return Dispatch(run, 30.0)
            Rollout.objects.filter(pk=rollout.pk).update(state=RolloutState.PAUSED, reason="The maintenance window closed.")
            rollout.state = RolloutState.PAUSED
            _rollout_event(rollout, "rollout.paused", f"Rollout of {plan.name} paused: the maintenance window closed")
            return Dispatch(run)
        if rollout.waiting_for_window:
            Rollout.objects.filter(pk=rollout.pk).update(waiting_for_window=False)
        wave = remaining[0].wave
        wave_steps = [s for s in remaining if s.wave == wave]
        if wave > 1 and plan.soak_seconds and rollout.soak_wave != wave and all(s.phase == StepPhase.PENDING for s in wave_steps):
            rollout.soak_until = now + timedelta(seconds=plan.soak_seconds)
            Rollout.objects.filter(pk=rollout.pk).update(soak_until=rollout.soak_until, soak_wave=wave)
            _rollout_event(rollout, "rollout.soaking", f"Wave {wave - 1} done; soaking {plan.soak_seconds} s before wave {wave}")
        if rollout.soak_until and now < rollout.soak_until and all(s.phase == StepPhase.PENDING for s in wave_steps):
            return Dispatch(run, min(30.0, (rollout.soak_until - now).total_seconds()))
        for step in _startable(plan, wave_steps):
            if RolloutStep.objects.filter(pk=step.pk, phase=StepPhase.PENDING).update(chain=F("chain") + 1, last_tick_at=now):
                step.chain += 1
                step.last_tick_at = now
                _set_phase(step, StepPhase.CORDON, "starting", started_at=now)
                run.append((step.pk, step.chain))
        return Dispatch(run)


def step_advance(*, step_id: int, chain: int | None = None, budget: int = 1, inline_wait: float = 0.0) -> StepTick:
    """Move one node on by up to ``budget`` phases, as long as each next phase is due at once or
    within a short wait (up to ``inline_wait`` seconds in all, slept here: cheaper and sooner than a
    task round trip); ``chain`` (None: any) must be the step's live chain."""
    tick = StepTick()
    waited = 0.0
    for _ in range(max(1, budget)):
        tick = _step_once(step_id, chain)
        if tick.dispatch or tick.again is None:
            break
        if tick.again > 0:
            if waited + tick.again > inline_wait:
                break
            time.sleep(tick.again)
            waited += tick.again
    return tick


def _step_once(step_id: int, chain: int | None) -> StepTick:
    """One phase of one node, under the step's lease.

    The lease is short and renewed while the phase works (a drain, a driver call), so two workers
    never act on one node at once, and a worker killed holding it delays that node by one lease
    period (the dispatcher then takes the node over), not by the drain's timeout."""
    step = RolloutStep.objects.select_related("rollout__plan", "cluster").filter(pk=step_id).first()
    if step is None or (chain is not None and step.chain != chain) or step.phase in IDLE:
        return StepTick()
    lease_seconds = settings.PKSWEB_ROLLOUT_LEASE_SECONDS
    holder = _holder()
    name = _step_lease(step)
    if not lease_acquire(name=name, holder=holder, seconds=lease_seconds):
        return StepTick(again=2.0)  # a worker is mid-transition; the older chain stops at its next tick
    renewal = Renewal.of_lease(name=name, holder=holder, seconds=lease_seconds, what=f"Node {step.node}'s step")
    keep = _keeper(renewal, step.rollout_id)
    try:
        step = RolloutStep.objects.select_related("cluster", "rollout__plan").get(pk=step_id)
        if (chain is not None and step.chain != chain) or step.phase in IDLE:
            return StepTick()
        rollout = step.rollout
        if rollout.state == RolloutState.ABORTED:
            if step.phase in MAY_BE_CORDONED:
                note = _uncordon_after_abort(step)
                _rollout_event(rollout, "rollout.step_changed", f"{step.cluster.name}/{step.node} after the abort: {note}",
                               step=step.pk, node=step.node, phase=step.phase)
            return StepTick()
        if rollout.state != RolloutState.RUNNING:
            return StepTick()
        refusal = _unapproved(rollout) or _inputs_changed(rollout, step)
        if refusal:
            _halt(rollout, step, refusal)
            return StepTick()
        RolloutStep.objects.filter(pk=step.pk).update(last_tick_at=timezone.now())
        return _advance_step(rollout, step, keep)
    except LeaseLost as exc:
        log.warning("%s; this worker stops acting on it", exc)
        return StepTick()
    finally:
        lease_release(name=name, holder=holder)


class Aborted(LeaseLost):
    """The rollout was aborted while this step worked (a long drain, a driver call): stop now; the abort's
    uncordon takes the node back at the step's next tick."""


def _keeper(renewal: Renewal, rollout_id: int) -> Callable[[], None]:
    """What long work calls at every turn: renew the step's lease, and stop when the rollout was aborted."""
    seen = {"at": time.monotonic()}

    def keep() -> None:
        renewal.keep()
        if time.monotonic() - seen["at"] < 1.0:
            return
        seen["at"] = time.monotonic()
        if Rollout.objects.filter(pk=rollout_id, state=RolloutState.ABORTED).exists():
            raise Aborted("the rollout was aborted")

    return keep


def _inputs_changed(rollout: Rollout, step: RolloutStep) -> str:
    """Why the engine must not act on ``step``'s cluster: its upgrade inputs differ from what was approved."""
    flight_plan = rollout.plan.flight_plan
    approved = flight_plan[step.order] if 0 <= step.order < len(flight_plan) else {}
    if approved.get("cluster_id") != step.cluster_id:
        return ""
    changed = flight.inputs_changed(approved, step.cluster)
    if not changed:
        return ""
    words = " and ".join(EXECUTION_LABELS[what] for what in changed)
    return (f"{step.cluster.name}'s {words} changed after revision {rollout.revision[:8]} of {rollout.plan.name} was approved; "
            "pksweb runs only what was approved. Abort this rollout and write a new plan (or change it back).")


def _advance_step(rollout: Rollout, step: RolloutStep, keep: Callable[[], None]) -> StepTick:
    plan = rollout.plan
    target = plan.target_version
    try:
        # Before pksweb changes a node (cordon, the driver call): is this still the cluster that was approved?
        gateway = _gateway(step.cluster, verified=step.phase in (StepPhase.CORDON, StepPhase.UPGRADE))
        if step.phase == StepPhase.CORDON:
            if step.was_cordoned is None:  # seen once, before pksweb's own cordon (a re-run after a crash keeps it)
                step.was_cordoned = gateway.node(step.node).unschedulable
                RolloutStep.objects.filter(pk=step.pk, was_cordoned__isnull=True).update(was_cordoned=step.was_cordoned)
            gateway.set_unschedulable(step.node, True)
            _set_phase(step, StepPhase.DRAIN, "was cordoned already (it stays cordoned after its upgrade)" if step.was_cordoned
                       else "cordoned")
            return StepTick(0)
        if step.phase == StepPhase.DRAIN:
            from clusters.kube.drain import node_drain

            result = node_drain(gateway=gateway, node=step.node, timeout=plan.drain_timeout_seconds, keep=keep)
            if not result.ok:
                _halt(rollout, step, result.report.replace("\n", " "))
                return StepTick()
            _set_phase(step, StepPhase.UPGRADE, result.report.splitlines()[0])
            return StepTick(0)
        if step.phase == StepPhase.UPGRADE:
            node = gateway.node(step.node)
            if versions.same(node.kubelet_version, target):
                _set_phase(step, StepPhase.WAIT_READY, f"kubelet already at v{target}")
                return StepTick(0)
            if step.driver_called_at is not None and node.ready is not True:
                _set_phase(step, StepPhase.WAIT_READY, "the driver is replacing the node")
                return StepTick(READY_POLL_FAST)
            # Record the intent before the call: a crash after it is seen above (node NotReady or at target).
            RolloutStep.objects.filter(pk=step.pk).update(driver_called_at=timezone.now())
            step.driver_called_at = timezone.now()
            line = drivers.upgrade(step.cluster, step.node, target, keep=keep)
            _set_phase(step, StepPhase.WAIT_READY, line)
            return StepTick(READY_POLL_FAST)
        if step.phase == StepPhase.WAIT_READY:
            node = gateway.node(step.node)
            if node.ready and versions.same(node.kubelet_version, target):
                _set_phase(step, StepPhase.UNCORDON, f"Ready at v{target}")
                return StepTick(0)
            waited = (timezone.now() - (step.phase_started_at or timezone.now())).total_seconds()
            if waited > plan.node_ready_timeout_seconds:
                _halt(rollout, step, f"Node {step.node} of {step.cluster.name} did not come back Ready at v{target} within "
                                     f"{plan.node_ready_timeout_seconds} s (it is {'Ready at ' + node.kubelet_version if node.ready else 'NotReady: ' + node.ready_message}).")
                return StepTick()
            # Poll fast while a quick replacement is likely, then back off.
            return StepTick(READY_POLL_FAST if waited < 5 else 1.0)
        if step.phase == StepPhase.UNCORDON:
            if step.was_cordoned:
                _set_phase(step, StepPhase.GATE, "left cordoned, as it was before the rollout")
                return StepTick(0)
            gateway.set_unschedulable(step.node, False)
            _set_phase(step, StepPhase.GATE, "uncordoned")
            return StepTick(0)
        if step.phase == StepPhase.GATE:
            if plan.health_gate:
                from clusters.sweep import cluster_probe

                cluster = cluster_probe(cluster=step.cluster)
                if cluster.status != "healthy":
                    waited = (timezone.now() - (step.phase_started_at or timezone.now())).total_seconds()
                    if waited < GATE_GRACE_SECONDS:
                        return StepTick(2.0)
                    _halt(rollout, step, f"Health gate failed on {cluster.name} after {step.node}: {cluster.status}"
                                         f"{' — ' + '; '.join(cluster.reasons) if cluster.reasons else ''}.")
                    return StepTick()
            _set_phase(step, StepPhase.DONE, "health gate passed" if plan.health_gate else "done", finished_at=timezone.now())
            return StepTick(dispatch=True)
    except (KubeError, drivers.DriverError) as exc:
        _halt(rollout, step, f"{step.cluster.name}/{step.node} ({StepPhase(step.phase).label.lower()}): {exc}")
    return StepTick()


def rollout_advance(*, rollout_id: int) -> float | None:
    """Run a rollout in this process, one round at a time: dispatch, then one transition of every
    node in flight. Returns seconds until the next round, or None when the rollout stopped.
    (Celery runs the same two functions as separate task chains; this is for tests and tools.)"""
    dispatch = rollout_dispatch(rollout_id=rollout_id)
    delays = [dispatch.again] if dispatch.again is not None else []
    flying = RolloutStep.objects.filter(rollout_id=rollout_id).exclude(phase__in=IDLE).values_list("pk", flat=True)
    for step_id in flying:
        tick = step_advance(step_id=step_id)
        if tick.again is not None:
            delays.append(tick.again)
        if tick.dispatch:
            delays.append(0)
    if delays:
        return min(delays)
    state = Rollout.objects.filter(pk=rollout_id).values_list("state", flat=True).first()
    return 0 if state == RolloutState.RUNNING else None


def rollouts_poke() -> int:
    """Tick every running rollout that has not ticked for a while (recovers from lost tasks and dead
    workers), and every aborted rollout that still has a node to uncordon."""
    stale = timezone.now() - timedelta(seconds=settings.PKSWEB_ROLLOUT_STALE_SECONDS)
    ids = list(Rollout.objects.filter(state=RolloutState.RUNNING).exclude(last_tick_at__gt=stale).values_list("pk", flat=True))
    for rollout_id in ids:
        _enqueue_tick(rollout_id)
    from upgrades.tasks import step_tick

    leftovers = RolloutStep.objects.filter(rollout__state=RolloutState.ABORTED, phase__in=MAY_BE_CORDONED).exclude(last_tick_at__gt=stale)
    for step_id, chain in leftovers.values_list("pk", "chain"):
        RolloutStep.objects.filter(pk=step_id).update(last_tick_at=timezone.now())
        step_tick.apply_async((step_id, chain))
    return len(ids)


def step_rollout_id(step_id: int) -> int | None:
    return RolloutStep.objects.filter(pk=step_id).values_list("rollout_id", flat=True).first()
