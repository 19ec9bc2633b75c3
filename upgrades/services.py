"""Writes of upgrades: plans, approvals bound to a revision, and starting, pausing, resuming and
aborting a rollout.

These services decide; the rollout engine (``upgrades.engine``) acts. A service that sets a rollout
going (start, pause, resume, abort) records its decision on the rows and hands the engine work it
wants run (``engine.Work``) to ``engine.run_after_commit``: the tasks queue it once the transaction
commits. Services never import the tasks (see ``upgrades.engine`` for why and how).
"""

from __future__ import annotations

from typing import Any, NoReturn

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from clusters.models import REMOVED, Cluster
from pksweb.choices import SubjectType
from pksweb.events import publish
from pksweb.models import User
from pksweb.policy import require
from pksweb.text import bound, says_something
from pksweb.types import Actor, AnyUser
from upgrades import flight, preflight, versions
from upgrades.access import APPROVERS_ONLY
from upgrades.choices import ACTIVE_ROLLOUT, IDLE, MAY_BE_CORDONED, Decision, PlanState, RolloutState, StepPhase
from upgrades.engine import Work, rollout_event, run_after_commit
from upgrades.models import Approval, Rollout, RolloutStep, UpgradePlan
from upgrades.rules import COMMENT_LIMIT, REASON_LIMIT, WEEK, approvals_standing, in_window

PLAN_FIELDS = ("name", "target_version", "waves", "max_unavailable", "drain_timeout_seconds", "node_ready_timeout_seconds",
               "health_gate", "soak_seconds", "window_start", "window_end", "window_weekly", "quorum")
DAY_SECONDS = 86400


def _actor(user: AnyUser | None) -> Actor:
    """Who is recorded for a change ``user`` asked for: the person, or None for pksweb itself. (An anonymous
    user never gets this far: ``require`` refuses it first.)"""
    return user if isinstance(user, User) else None


def _plan_event(plan: UpgradePlan, kind: str, message: str, actor: AnyUser | None = None, **payload: Any) -> None:
    publish(kind=kind, message=message, actor=_actor(actor), subject_type=SubjectType.PLAN, subject_id=plan.pk,
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


def plan_create(*, author: AnyUser | None, **fields: Any) -> UpgradePlan:
    """Write a plan (draft); its flight plan, revision and preflight are computed at once."""
    require(author, "create", UpgradePlan, "Only operators write upgrade plans.")
    unknown = set(fields) - set(PLAN_FIELDS)
    if unknown:
        raise ValidationError({"non_field_errors": f"Unknown fields: {', '.join(sorted(unknown))}."})
    plan = UpgradePlan(author=_actor(author), **fields)
    plan.target_version = (plan.target_version or "").strip().lstrip("v")
    _validate(plan)
    _refresh(plan)
    plan.full_clean()
    with transaction.atomic():
        plan.save()
        _plan_event(plan, "upgrade.plan_created", f"Upgrade plan {plan.name} to {plan.target_version} written", author,
                    revision=plan.revision)
    return plan


def plan_update(*, plan: UpgradePlan, editor: AnyUser | None, **changes: Any) -> UpgradePlan:
    """Edit a plan that has not started. Existing approvals are voided and the plan returns to draft.

    The preflight of the edited plan reads the clusters first; then the row is locked, checked
    unchanged since, and written (no cluster I/O under the lock)."""
    require(editor, "update", plan, "Only operators edit upgrade plans.")
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


def plan_delete(*, plan: UpgradePlan, deleted_by: AnyUser | None) -> None:
    """Delete a plan that never started (a started one stays in the audit trail)."""
    require(deleted_by, "delete", plan, "Only operators delete upgrade plans.")
    with transaction.atomic():
        locked = UpgradePlan.objects.select_for_update().get(pk=plan.pk)
        if locked.state == PlanState.STARTED:
            raise ValidationError({"non_field_errors": "A plan that started stays in the audit trail; it cannot be deleted."})
        _plan_event(locked, "upgrade.plan_deleted", f"Upgrade plan {locked.name} deleted", deleted_by)
        locked.delete()


def _refuse(plan: UpgradePlan, why: str) -> NoReturn:
    """Refuse a transition the plan's state does not allow, naming that state (checked once before the
    row is locked, and again under the lock)."""
    raise ValidationError({"non_field_errors": f"{why} {plan.get_state_display().lower()}."})


def plan_submit(*, plan: UpgradePlan, by: AnyUser | None) -> UpgradePlan:
    """Ask approvers to sign off; refused while preflight fails (checked before the row is locked)."""
    require(by, "operate", plan, "Only operators submit upgrade plans.")
    looked, report = _looked_at(plan)
    if looked.state != PlanState.DRAFT:
        _refuse(looked, "Only a draft can be submitted; this plan is")
    with transaction.atomic():
        locked = UpgradePlan.objects.select_for_update().get(pk=plan.pk)
        if locked.state != PlanState.DRAFT:
            _refuse(locked, "Only a draft can be submitted; this plan is")
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


def plan_decide(*, plan: UpgradePlan, approver: AnyUser, revision: str, decision: str, comment: str = "") -> UpgradePlan:
    """An approver approves or rejects the exact revision they reviewed."""
    require(approver, "approve", plan, APPROVERS_ONLY)
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
        if len(comment or "") > COMMENT_LIMIT:
            raise ValidationError({"comment": f"Keep the comment to {COMMENT_LIMIT:,} characters ({len(comment):,} now); "
                                              "link to a longer review instead."})
        if locked.approvals.filter(approver=_actor(approver), revision=locked.revision, voided=False).exists():
            raise ValidationError({"non_field_errors": "You have already decided on this revision; one person counts once."})
        try:
            with transaction.atomic():
                Approval.objects.create(plan=locked, approver=_actor(approver), approver_name=approver.get_username(), revision=locked.revision,
                                        decision=decision, comment=(comment or "").strip())
        except IntegrityError:
            raise ValidationError({"non_field_errors": "You have already decided on this revision; one person counts once."}) from None
        if decision == Decision.REJECT:
            locked.state = PlanState.DRAFT
            locked.approvals.filter(voided=False).exclude(decision=Decision.REJECT).update(voided=True)
            _plan_event(locked, "upgrade.plan_rejected", f"Upgrade plan {locked.name} rejected by {approver.get_username()}: {comment}",
                        approver, revision=locked.revision)
        else:
            approvals = approvals_standing(locked, locked.revision)
            if approvals >= locked.quorum:
                locked.state = PlanState.APPROVED
            _plan_event(locked, "upgrade.plan_approved", f"Upgrade plan {locked.name} approved by {approver.get_username()} "
                        f"({approvals} of {locked.quorum})", approver, revision=locked.revision)
        locked.save()
    return locked


def plans_cluster_changed(cluster: Cluster, changed: list[str], by: AnyUser | None) -> None:
    """A cluster's upgrade inputs (driver, command argv, server, TLS trust) changed, or it was removed
    (``changed == [REMOVED]``): every plan not yet started
    that includes it gets its flight plan and revision recomputed, and standing approvals of the old
    revision are voided; a submitted or approved plan waits for approval again, with an event saying
    why. Called inside ``clusters.services.cluster_update``'s transaction (registered in apps.py).
    A running rollout halts by itself before acting on the changed cluster (``rules.inputs_changed``)."""
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


# ---- rollouts: start, pause, resume, abort (the engine does the rest) ----------------------


def plan_start(*, plan: UpgradePlan, by: AnyUser | None, outside_window_reason: str = "") -> Rollout:
    """Start an approved plan (operators only): inside its window, or outside it for a reason that is
    recorded on the rollout and in the event. A reason given inside the window is recorded too.

    Preflight reads the clusters before the row is locked; the lock then checks that the plan and
    its fleet are still the approved revision (a changed fleet voids the approvals: the plan waits
    for approval again)."""
    require(by, "operate", plan, "Only operators start upgrades; approvers sign plans off.")
    reason = bound((outside_window_reason or "").strip(), REASON_LIMIT)
    if not says_something(reason):
        reason = ""  # blanks, zero-width, control characters and fillers say nothing: they are no reason
    looked, report = _looked_at(plan)
    if looked.state != PlanState.APPROVED:
        _refuse(looked, "Only an approved plan can start; this one is")
    with transaction.atomic():
        locked = UpgradePlan.objects.select_for_update().get(pk=plan.pk)
        if locked.state != PlanState.APPROVED:
            _refuse(locked, "Only an approved plan can start; this one is")
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
                rollout = Rollout.objects.create(plan=locked, revision=locked.revision, started_by=_actor(by),
                                                 outside_window_reason=reason if not inside else "", start_reason=reason)
        except IntegrityError:
            raise ValidationError({"non_field_errors": "A rollout of this plan is already active."}) from None
        RolloutStep.objects.bulk_create([
            RolloutStep(rollout=rollout, order=i, wave=s["wave"], cluster_id=s["cluster_id"], node=s["node"],
                        control_plane=s["control_plane"]) for i, s in enumerate(locked.flight_plan)])
        locked.state = PlanState.STARTED
        locked.save()
        extra = f" outside its window: {reason}" if not inside else f" (reason given: {reason})" if reason else ""
        rollout_event(rollout, "rollout.started", f"Rollout of {locked.name} to {locked.target_version} started{extra}", _actor(by),
                       steps=len(locked.flight_plan), outside_window=not inside, reason=reason)
        run_after_commit(Work(rollouts=(rollout.pk,)))
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


def rollout_pause(*, rollout: Rollout, by: AnyUser | None) -> Rollout:
    """Pause after the nodes in flight (they finish first; no new node starts)."""
    require(by, "operate", rollout, "Only operators pause rollouts.")
    with transaction.atomic():
        locked = Rollout.objects.select_for_update().select_related("plan").get(pk=rollout.pk)
        if locked.state != RolloutState.RUNNING:
            raise ValidationError({"non_field_errors": f"The rollout is {locked.state}, not running."})
        locked.pause_requested = True
        locked.save(update_fields=["pause_requested"])
        rollout_event(locked, "rollout.pause_requested", f"Rollout of {locked.plan.name} pauses after the current node", _actor(by))
        run_after_commit(Work(rollouts=(locked.pk,)))
    return locked


def rollout_resume(*, rollout: Rollout, by: AnyUser | None) -> Rollout:
    """Resume a paused or halted rollout (a halted step is tried again from its recorded phase)."""
    require(by, "operate", rollout, "Only operators resume rollouts.")
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
        rollout_event(locked, "rollout.resumed", f"Rollout of {locked.plan.name} resumed", _actor(by))
        run_after_commit(Work(rollouts=(locked.pk,)))
    return locked


def rollout_abort(*, rollout: Rollout, by: AnyUser | None) -> Rollout:
    """Stop for good. The nodes pksweb cordoned are uncordoned by workers, each reported on the page as it
    is done (or as still cordoned, saying why); the request itself never calls a cluster."""
    require(by, "operate", rollout, "Only operators abort rollouts.")
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
        # others are uncordoned by a step tick each, and the beat's poke (``engine.rollouts_due``) retries any left behind.
        RolloutStep.objects.filter(pk__in=[pk for pk, *_ in cordoned]).update(last_tick_at=timezone.now())
        rollout_event(locked, "rollout.aborted", f"Rollout of {locked.plan.name} aborted{note}", _actor(by), cordoned=len(cordoned))
        run_after_commit(Work(steps=tuple((pk, chain) for pk, chain, *_ in cordoned)))
    return locked

