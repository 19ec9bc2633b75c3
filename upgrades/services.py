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
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from clusters.kube import KubeError
from clusters.models import Cluster
from pksweb import policy
from pksweb.choices import SubjectType
from pksweb.events import publish
from pksweb.services import lease_acquire, lease_release
from upgrades import drivers, flight, preflight, versions
from upgrades.choices import ACTIVE_ROLLOUT, Decision, PlanState, RolloutState, StepPhase
from upgrades.models import Approval, Rollout, RolloutStep, UpgradePlan

log = logging.getLogger(__name__)
PLAN_FIELDS = ("name", "target_version", "waves", "max_unavailable", "drain_timeout_seconds", "node_ready_timeout_seconds",
               "health_gate", "soak_seconds", "window_start", "window_end", "window_weekly", "quorum")
GATE_GRACE_SECONDS = 60
READY_POLL_FAST = 0.2
WEEK = timedelta(days=7)


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
    if plan.max_unavailable < 1:
        errors["max_unavailable"] = "Upgrade at least one node at a time per cluster."
    if plan.quorum < 1:
        errors["quorum"] = "At least one approval is needed."
    if plan.drain_timeout_seconds < 10:
        errors["drain_timeout_seconds"] = "Give drains at least 10 seconds."
    if (plan.window_start is None) != (plan.window_end is None):
        errors["window_end"] = "Give both the window's start and its end, or neither."
    elif plan.window_start and plan.window_end and plan.window_end <= plan.window_start:
        errors["window_end"] = "The window must end after it starts."
    elif plan.window_weekly and plan.window_start and plan.window_end and plan.window_end - plan.window_start >= WEEK:
        errors["window_end"] = "A weekly window must be shorter than a week."
    if errors:
        raise ValidationError(errors)


def _refresh(plan: UpgradePlan) -> None:
    """Recompute the flight plan, the revision and the preflight (on every edit and before start)."""
    steps = flight.flight_plan(waves=plan.waves, target=plan.target_version)
    plan.flight_plan = steps
    plan.revision = flight.revision(plan, steps)
    clusters = list(Cluster.objects.filter(pk__in=[c for wave in plan.waves for c in wave]))
    report = preflight.run(clusters=clusters, target=plan.target_version, max_unavailable=plan.max_unavailable).as_dict()
    report["estimate_seconds"] = flight.estimate_seconds(steps, plan.soak_seconds, len(plan.waves), plan.max_unavailable)
    plan.preflight = report


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
    """Edit a plan that has not started. Existing approvals are voided and the plan returns to draft."""
    _require(editor, "operate", plan, "Only operators edit upgrade plans.")
    unknown = set(changes) - set(PLAN_FIELDS)
    if unknown:
        raise ValidationError({"non_field_errors": f"Unknown fields: {', '.join(sorted(unknown))}."})
    with transaction.atomic():
        locked = UpgradePlan.objects.select_for_update().get(pk=plan.pk)
        if locked.state == PlanState.STARTED:
            raise ValidationError({"non_field_errors": "This plan has started; write a new plan instead."})
        for key, value in changes.items():
            setattr(locked, key, value)
        locked.target_version = (locked.target_version or "").strip().lstrip("v")
        _validate(locked)
        old_revision = locked.revision
        _refresh(locked)
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
    """Ask approvers to sign off; refused while preflight fails."""
    _require(by, "operate", plan, "Only operators submit upgrade plans.")
    with transaction.atomic():
        locked = UpgradePlan.objects.select_for_update().get(pk=plan.pk)
        if locked.state != PlanState.DRAFT:
            raise ValidationError({"non_field_errors": f"Only a draft can be submitted; this plan is {locked.get_state_display().lower()}."})
        _refresh(locked)
        if locked.preflight["failures"]:
            locked.save()
            first = locked.preflight["failures"][0]
            raise ValidationError({"preflight": f"Preflight fails ({len(locked.preflight['failures'])}): "
                                                f"{first['cluster']}: {first['message']}"})
        locked.state = PlanState.SUBMITTED
        locked.save()
        _plan_event(locked, "upgrade.plan_submitted", f"Upgrade plan {locked.name} submitted for approval "
                    f"(revision {locked.revision[:8]}, {len(locked.preflight['warnings'])} warnings)", by, revision=locked.revision)
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
        if revision != locked.revision:
            raise ValidationError({"revision": f"The plan changed since you reviewed it (you saw {revision[:8] or 'nothing'}, it is now "
                                               f"{locked.revision[:8]}): review the current revision."})
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
    """Start an approved plan inside its window, or outside it by an approver with a recorded reason."""
    if (outside_window_reason or "").strip():
        _require(by, "approve", plan, "Only an approver can start an upgrade outside its window.")
    else:
        _require(by, "operate", plan, "Only operators start upgrades.")
    with transaction.atomic():
        locked = UpgradePlan.objects.select_for_update().get(pk=plan.pk)
        if locked.state != PlanState.APPROVED:
            raise ValidationError({"non_field_errors": f"Only an approved plan can start; this one is {locked.get_state_display().lower()}."})
        reason = (outside_window_reason or "").strip()
        if not in_window(locked) and not reason:
            raise ValidationError({"non_field_errors": "The maintenance window is not open. An approver can start it anyway, "
                                                       "giving a reason that is recorded."})
        approved_revision = locked.revision
        _refresh(locked)
        if locked.revision != approved_revision:
            locked.state = PlanState.DRAFT
            locked.approvals.filter(voided=False).update(voided=True)
            locked.save()
            raise ValidationError({"non_field_errors": "The fleet changed since the plan was approved (nodes or drivers differ): "
                                                       "its approvals were voided; review and submit it again."})
        if locked.preflight["failures"]:
            locked.save()
            first = locked.preflight["failures"][0]
            raise ValidationError({"preflight": f"Preflight fails just before start: {first['cluster']}: {first['message']}"})
        try:
            with transaction.atomic():
                rollout = Rollout.objects.create(plan=locked, revision=locked.revision, started_by=by,
                                                 outside_window_reason=reason if not in_window(locked) else "")
        except IntegrityError:
            raise ValidationError({"non_field_errors": "A rollout of this plan is already active."}) from None
        RolloutStep.objects.bulk_create([
            RolloutStep(rollout=rollout, order=i, wave=s["wave"], cluster_id=s["cluster_id"], node=s["node"],
                        control_plane=s["control_plane"]) for i, s in enumerate(locked.flight_plan)])
        locked.state = PlanState.STARTED
        locked.save()
        extra = f" outside its window: {reason}" if rollout.outside_window_reason else ""
        _rollout_event(rollout, "rollout.started", f"Rollout of {locked.name} to {locked.target_version} started{extra}", by,
                       steps=len(locked.flight_plan))
        transaction.on_commit(lambda: _enqueue_tick(rollout.pk))
    return rollout


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
        _gateway(step.cluster).set_unschedulable(step.node, False)
        note = f"node {step.node} uncordoned"
    except KubeError as exc:
        note = f"node {step.node} of {step.cluster.name} is STILL CORDONED by pksweb: {exc.message}"
    if RolloutStep.objects.filter(pk=step.pk, phase=step.phase).update(phase=StepPhase.FAILED, log=step.log + f"aborted: {note}\n"):
        step.phase = StepPhase.FAILED
    return note


def rollout_abort(*, rollout: Rollout, by: Any) -> Rollout:
    """Stop for good. Nodes pksweb cordoned are uncordoned, or the page says which are still cordoned."""
    _require(by, "operate", rollout, "Only operators abort rollouts.")
    with transaction.atomic():
        locked = Rollout.objects.select_for_update().select_related("plan").get(pk=rollout.pk)
        if locked.state not in ACTIVE_ROLLOUT and locked.state != RolloutState.HALTED:
            raise ValidationError({"non_field_errors": f"The rollout is {locked.state} already."})
        locked.state = RolloutState.ABORTED
        locked.finished_at = timezone.now()
        locked.save(update_fields=["state", "finished_at"])
    # No step takes another transition now; steps between transitions are cleaned up here, and a
    # step in the middle of one (its lease held) cleans up after itself when it ends.
    notes = []
    for step in RolloutStep.objects.filter(rollout=locked, phase__in=CORDONED).select_related("cluster"):
        holder = _holder()
        if lease_acquire(name=_step_lease(step), holder=holder, seconds=60):
            try:
                step.refresh_from_db()
                if step.phase in CORDONED:
                    notes.append(_uncordon_after_abort(step))
            finally:
                lease_release(name=_step_lease(step), holder=holder)
        else:
            notes.append(f"node {step.node} of {step.cluster.name} is STILL CORDONED: it is mid-step on a worker, "
                         "which uncordons it when the step ends")
    with transaction.atomic():
        locked.reason = "Aborted" + (f"; {'; '.join(notes)}" if notes else "")
        locked.save(update_fields=["reason"])
        _rollout_event(locked, "rollout.aborted", f"Rollout of {locked.plan.name} aborted{': ' + '; '.join(notes) if notes else ''}", by)
    return locked


def _holder() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{time.monotonic_ns()}"


def _gateway(cluster: Cluster) -> Any:
    from clusters.services import gateway_for

    return gateway_for(cluster)


def _set_phase(step: RolloutStep, phase: str, line: str = "", **fields: Any) -> None:
    now = timezone.now()
    step.phase = phase
    step.phase_started_at = now
    if line:
        step.log = (step.log + f"[{now:%H:%M:%S}] {line}\n")[-20000:]
    for key, value in fields.items():
        setattr(step, key, value)
    step.save()
    rollout = step.rollout
    _rollout_event(rollout, "rollout.step_changed", f"{step.cluster.name}/{step.node}: {StepPhase(phase).label.lower()}"
                   f"{' — ' + line if line else ''}", step=step.pk, node=step.node, phase=phase)


def _halt(rollout: Rollout, step: RolloutStep | None, reason: str) -> None:
    with transaction.atomic():
        locked = Rollout.objects.select_for_update().select_related("plan").get(pk=rollout.pk)
        if locked.state != RolloutState.RUNNING:
            return  # another node halted it first, or it was aborted: that reason stands
        locked.state = RolloutState.HALTED
        locked.reason = reason
        locked.save()
        if step is not None:
            step.log = (step.log + f"[{timezone.now():%H:%M:%S}] halted: {reason}\n")[-20000:]
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


def _lease_held(name: str) -> bool:
    from pksweb.models import Lease

    return Lease.objects.filter(name=name, expires_at__gt=timezone.now()).exists()


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
            Rollout.objects.filter(pk=rollout.pk).update(state=RolloutState.SUCCEEDED, finished_at=now)
            rollout.state = RolloutState.SUCCEEDED
            _rollout_event(rollout, "rollout.succeeded", f"Rollout of {plan.name} finished: every node runs {plan.target_version}")
            return Dispatch()
        in_flight = [s for s in remaining if s.phase not in IDLE]
        stale = now - timedelta(seconds=settings.PKSWEB_ROLLOUT_STALE_SECONDS)
        run = []
        for step in in_flight:  # chains whose worker died (or that a halt ended) start again
            if (step.last_tick_at is None or step.last_tick_at < stale) and not _lease_held(_step_lease(step)):
                RolloutStep.objects.filter(pk=step.pk).update(chain=F("chain") + 1, last_tick_at=now)
                run.append((step.pk, step.chain + 1))
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
    """One phase of one node, under the step's lease."""
    step = RolloutStep.objects.select_related("rollout__plan", "cluster").filter(pk=step_id).first()
    if step is None or (chain is not None and step.chain != chain) or step.phase in IDLE:
        return StepTick()
    # The lease outlives the longest transition (a drain, a driver call), so two workers never act
    # on one node at once; a worker killed holding it delays that node by at most this much.
    lease_seconds = settings.PKSWEB_ROLLOUT_LEASE_SECONDS + (
        step.rollout.plan.drain_timeout_seconds if step.phase in (StepPhase.CORDON, StepPhase.DRAIN) else
        drivers.longest_call_seconds(step.cluster) if step.phase == StepPhase.UPGRADE else 0)
    holder = _holder()
    if not lease_acquire(name=_step_lease(step), holder=holder, seconds=lease_seconds):
        return StepTick(again=2.0)  # a worker is mid-transition; the older chain stops at its next tick
    try:
        step = RolloutStep.objects.select_related("cluster", "rollout__plan").get(pk=step_id)
        if (chain is not None and step.chain != chain) or step.phase in IDLE:
            return StepTick()
        rollout = step.rollout
        if rollout.state == RolloutState.ABORTED:
            if step.phase in CORDONED:
                note = _uncordon_after_abort(step)
                _rollout_event(rollout, "rollout.step_changed", f"{step.cluster.name}/{step.node} after the abort: {note}",
                               step=step.pk, node=step.node, phase=step.phase)
            return StepTick()
        if rollout.state != RolloutState.RUNNING:
            return StepTick()
        refusal = _unapproved(rollout)
        if refusal:
            _halt(rollout, step, refusal)
            return StepTick()
        RolloutStep.objects.filter(pk=step.pk).update(last_tick_at=timezone.now())
        return _advance_step(rollout, step)
    finally:
        lease_release(name=_step_lease(step), holder=holder)


def _advance_step(rollout: Rollout, step: RolloutStep) -> StepTick:
    plan = rollout.plan
    target = plan.target_version
    try:
        gateway = _gateway(step.cluster)
        if step.phase == StepPhase.CORDON:
            gateway.set_unschedulable(step.node, True)
            _set_phase(step, StepPhase.DRAIN, "cordoned")
            return StepTick(0)
        if step.phase == StepPhase.DRAIN:
            from clusters.services import node_drain

            result = node_drain(gateway=gateway, node=step.node, timeout=plan.drain_timeout_seconds)
            if not result.ok:
                _halt(rollout, step, result.report.replace("\n", " "))
                return StepTick()
            _set_phase(step, StepPhase.UPGRADE, result.report.splitlines()[0])
            return StepTick(0)
        if step.phase == StepPhase.UPGRADE:
            node = gateway.node(step.node)
            if node.kubelet_version.lstrip("v") == target:
                _set_phase(step, StepPhase.WAIT_READY, f"kubelet already at v{target}")
                return StepTick(0)
            if step.driver_called_at is not None and node.ready is not True:
                _set_phase(step, StepPhase.WAIT_READY, "the driver is replacing the node")
                return StepTick(READY_POLL_FAST)
            # Record the intent before the call: a crash after it is seen above (node NotReady or at target).
            RolloutStep.objects.filter(pk=step.pk).update(driver_called_at=timezone.now())
            step.driver_called_at = timezone.now()
            line = drivers.upgrade(step.cluster, step.node, target)
            _set_phase(step, StepPhase.WAIT_READY, line)
            return StepTick(READY_POLL_FAST)
        if step.phase == StepPhase.WAIT_READY:
            node = gateway.node(step.node)
            if node.ready and node.kubelet_version.lstrip("v") == target:
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
            gateway.set_unschedulable(step.node, False)
            _set_phase(step, StepPhase.GATE, "uncordoned")
            return StepTick(0)
        if step.phase == StepPhase.GATE:
            if plan.health_gate:
                from clusters.services import cluster_probe

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

    leftovers = RolloutStep.objects.filter(rollout__state=RolloutState.ABORTED, phase__in=CORDONED).exclude(last_tick_at__gt=stale)
    for step_id, chain in leftovers.values_list("pk", "chain"):
        RolloutStep.objects.filter(pk=step_id).update(last_tick_at=timezone.now())
        step_tick.apply_async((step_id, chain))
    return len(ids)


def step_rollout_id(step_id: int) -> int | None:
    return RolloutStep.objects.filter(pk=step_id).values_list("rollout_id", flat=True).first()
