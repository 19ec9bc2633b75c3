"""The rollout engine: the persisted state machine that moves a started plan's nodes to its version.

Two kinds of work, each its own Celery task chain:

- the dispatcher (``rollout_dispatch``, one per rollout, under the rollout's row lock) decides
  which nodes may start: the lowest unfinished wave, all its clusters at once, control-plane
  nodes one at a time first, then workers up to ``max_unavailable`` per cluster; it also owns
  pause, the window, soak and success, and takes over the steps whose worker went quiet;
- a step (``step_advance``, one chain per node in flight, under the step's lease) moves one
  node through cordon → drain → upgrade → wait Ready → uncordon → gate, recording each phase
  before acting and checking the cluster's real state before repeating, so a worker killed at
  any moment is resumed without repeating or skipping a node. ``RolloutStep.chain`` numbers the
  step's live chain: a tick of an older chain stops, so a restarted chain (after a dead worker)
  never runs beside the old one.

Who queues the work. Only ``upgrades/tasks.py`` queues it, and neither this module nor
``upgrades/services.py`` imports the tasks: they point one way (tasks → engine ← services). The
engine says what should run next instead of queuing it: ``rollout_dispatch`` returns a
``Dispatch`` (step chains to run now, when to look again), ``step_advance`` a ``StepTick`` (when
the step's next tick is due, whether the dispatcher should run), ``rollouts_due`` the ``Work`` a
beat poke recovers. A service that decides inside a transaction (start, pause, resume, abort)
hands its ``Work`` to ``run_after_commit``: once the transaction commits, the runner registered
with ``runs_work`` (``upgrades.tasks.enqueue``, wired in ``upgrades/apps.py``) queues it, and a
decision rolled back queues nothing.

How far one call goes is the engine's to say, not the caller's: a ``Budget`` (phases, and the
short waits slept inline between them). One phase by default (tools and tests step through a
rollout); ``TASK_BUDGET`` for a Celery task.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from clusters.connect import gateway_for, gateway_verified
from clusters.kube import Gateway, KubeError
from clusters.kube.drain import node_drain
from clusters.models import Cluster
from clusters.sweep import cluster_probe
from pksweb.choices import SubjectType
from pksweb.events import publish
from pksweb.leases import LeaseLost, Renewal, WorkerStopping, lease_acquire, lease_held, lease_release
from pksweb.text import LOG_LIMIT, REPORT_LIMIT, bound, bound_tail
from pksweb.types import Actor
from upgrades import drivers, rules, versions
from upgrades.choices import IDLE, MAY_BE_CORDONED, RolloutState, StepPhase
from upgrades.models import Rollout, RolloutStep

log = logging.getLogger(__name__)
GATE_GRACE_SECONDS = 60
READY_POLL_FAST = 0.2


# ---- what runs next ---------------------------------------------------------------------


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


@dataclass(frozen=True)
class Work:
    """Engine work to queue: rollouts whose dispatcher runs now, step chains (step id, chain) to tick now."""

    rollouts: tuple[int, ...] = ()
    steps: tuple[tuple[int, int], ...] = ()


@dataclass(frozen=True)
class Budget:
    """How far one ``step_advance`` call takes a node: up to ``phases`` phases, as long as each next phase is
    due at once or within a short wait, sleeping at most ``inline_wait`` seconds in all (cheaper and sooner
    than a task round trip)."""

    phases: int = 1
    inline_wait: float = 0.0


ONE_PHASE = Budget()
# A Celery task runs the phases due at once (cordon → drain → driver call) and sleeps through the first short
# waits (a replaced node coming back Ready) before handing the node to its next task.
TASK_BUDGET = Budget(phases=12, inline_wait=1.0)

Runner = Callable[[Work], None]
_runners: list[Runner] = []


def runs_work(runner: Runner) -> Runner:
    """Register who queues engine work (``upgrades.tasks.enqueue``, in the app's ``ready()``): the engine and the
    services decide what runs next, the tasks queue it, and neither imports the tasks."""
    _runners[:] = [runner]
    return runner


def run_after_commit(work: Work) -> None:
    """Queue ``work`` once the current transaction commits (nothing, if it rolls back)."""
    transaction.on_commit(lambda: _run(work))


def _run(work: Work) -> None:
    if not _runners:
        raise ImproperlyConfigured("No runner queues rollout work: upgrades' AppConfig.ready() registers upgrades.tasks.enqueue.")
    _runners[0](work)


def rollout_event(rollout: Rollout, kind: str, message: str, actor: Actor = None, **payload: Any) -> None:
    """Publish ``kind`` about ``rollout`` (its page and the fleet's timeline follow it)."""
    publish(kind=kind, message=message, actor=actor, subject_type=SubjectType.ROLLOUT, subject_id=rollout.pk,
            subject_label=rollout.plan.name, payload={"rollout": rollout.pk, "state": rollout.state, **payload})


# ---- the dispatcher -----------------------------------------------------------------------


def rollout_dispatch(*, rollout_id: int) -> Dispatch:
    """Decide what a running rollout does next: start nodes, restart chains that died, pause, wait or finish."""
    with transaction.atomic():
        rollout = Rollout.objects.select_for_update().select_related("plan").filter(pk=rollout_id).first()
        if rollout is None or rollout.state != RolloutState.RUNNING:
            return Dispatch()
        plan = rollout.plan
        now = timezone.now()
        refusal = rules.unapproved(rollout)
        if refusal:
            _halt(rollout, None, refusal)
            return Dispatch()
        Rollout.objects.filter(pk=rollout.pk).update(last_tick_at=now)
        steps = list(RolloutStep.objects.filter(rollout=rollout).select_related("cluster", "rollout__plan").order_by("order"))
        remaining = [s for s in steps if s.phase != StepPhase.DONE]
        if not remaining:
            left = rules.left_behind(plan, steps)  # shown on the rollout page
            Rollout.objects.filter(pk=rollout.pk).update(state=RolloutState.SUCCEEDED, finished_at=now, reason=left)
            rollout.state = RolloutState.SUCCEEDED
            rollout_event(rollout, "rollout.succeeded",
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
                    rollout_event(rollout, "rollout.step_taken_over", f"{step.cluster.name}/{step.node}: its worker went quiet "
                                  f"{quiet} s ago ({StepPhase(step.phase).label.lower()}); another worker takes it over",
                                  step=step.pk, node=step.node, phase=step.phase)
        if rollout.pause_requested:
            if not in_flight:
                Rollout.objects.filter(pk=rollout.pk).update(state=RolloutState.PAUSED, pause_requested=False)
                rollout.state = RolloutState.PAUSED
                rollout_event(rollout, "rollout.paused", f"Rollout of {plan.name} paused before "
                              f"{remaining[0].cluster.name}/{remaining[0].node}")
            return Dispatch(run)
        if not rollout.outside_window_reason and not rules.in_window(plan, now):
            if in_flight:
                return Dispatch(run)  # the nodes in flight finish; none starts
            if plan.window_weekly:
                if not rollout.waiting_for_window:
                    Rollout.objects.filter(pk=rollout.pk).update(waiting_for_window=True)
                    rollout_event(rollout, "rollout.waiting_for_window", f"Rollout of {plan.name} waits for the next window")
                return Dispatch(run, 30.0)
            Rollout.objects.filter(pk=rollout.pk).update(state=RolloutState.PAUSED, reason="The maintenance window closed.")
            rollout.state = RolloutState.PAUSED
            rollout_event(rollout, "rollout.paused", f"Rollout of {plan.name} paused: the maintenance window closed")
            return Dispatch(run)
        if rollout.waiting_for_window:
            Rollout.objects.filter(pk=rollout.pk).update(waiting_for_window=False)
        wave = remaining[0].wave
        wave_steps = [s for s in remaining if s.wave == wave]
        if wave > 1 and plan.soak_seconds and rollout.soak_wave != wave and all(s.phase == StepPhase.PENDING for s in wave_steps):
            rollout.soak_until = now + timedelta(seconds=plan.soak_seconds)
            Rollout.objects.filter(pk=rollout.pk).update(soak_until=rollout.soak_until, soak_wave=wave)
            rollout_event(rollout, "rollout.soaking", f"Wave {wave - 1} done; soaking {plan.soak_seconds} s before wave {wave}")
        if rollout.soak_until and now < rollout.soak_until and all(s.phase == StepPhase.PENDING for s in wave_steps):
            return Dispatch(run, min(30.0, (rollout.soak_until - now).total_seconds()))
        for step in rules.startable(plan, wave_steps):
            if RolloutStep.objects.filter(pk=step.pk, phase=StepPhase.PENDING).update(chain=F("chain") + 1, last_tick_at=now):
                step.chain += 1
                step.last_tick_at = now
                _set_phase(step, StepPhase.CORDON, "starting", started_at=now)
                run.append((step.pk, step.chain))
        return Dispatch(run)


def rollouts_due() -> Work:
    """What a beat poke queues: the dispatcher of every running rollout that has not ticked for a while (it
    recovers from lost tasks and dead workers), and the uncordon of every aborted rollout's node still left
    to do (marked as ticked now, so that the next poke waits for it)."""
    stale = timezone.now() - timedelta(seconds=settings.PKSWEB_ROLLOUT_STALE_SECONDS)
    ids = Rollout.objects.filter(state=RolloutState.RUNNING).exclude(last_tick_at__gt=stale).values_list("pk", flat=True)
    rollouts = tuple(ids)
    leftovers = RolloutStep.objects.filter(rollout__state=RolloutState.ABORTED, phase__in=MAY_BE_CORDONED).exclude(last_tick_at__gt=stale)
    steps = []
    for step_id, chain in leftovers.values_list("pk", "chain"):
        RolloutStep.objects.filter(pk=step_id).update(last_tick_at=timezone.now())
        steps.append((step_id, chain))
    return Work(rollouts=rollouts, steps=tuple(steps))


def step_rollout_id(step_id: int) -> int | None:
    return RolloutStep.objects.filter(pk=step_id).values_list("rollout_id", flat=True).first()


# ---- one node's step ----------------------------------------------------------------------


def step_advance(*, step_id: int, chain: int | None = None, budget: Budget = ONE_PHASE) -> StepTick:
    """Move one node on by as many phases as ``budget`` allows; ``chain`` (None: any) must be the step's live chain."""
    tick = StepTick()
    waited = 0.0
    for _ in range(max(1, budget.phases)):
        tick = _step_once(step_id, chain)
        if tick.dispatch or tick.again is None:
            break
        if tick.again > 0:
            if waited + tick.again > budget.inline_wait:
                break
            time.sleep(tick.again)
            waited += tick.again
    return tick


def _step_once(step_id: int, chain: int | None) -> StepTick:
    """One phase of one node, under the step's lease.

    The lease is short and renewed while the phase works (a drain, a driver call), so two workers
    never act on one node at once, and a worker killed holding it delays that node by one lease
    period (the dispatcher then takes the node over), not by the drain's timeout."""
    found = RolloutStep.objects.select_related("rollout__plan", "cluster").filter(pk=step_id).first()
    if found is None or (chain is not None and found.chain != chain) or found.phase in IDLE:
        return StepTick()
    lease_seconds = settings.PKSWEB_ROLLOUT_LEASE_SECONDS
    holder = _holder()
    name = _step_lease(found)
    if not lease_acquire(name=name, holder=holder, seconds=lease_seconds):
        return StepTick(again=2.0)  # a worker is mid-transition; the older chain stops at its next tick
    renewal = Renewal.of_lease(name=name, holder=holder, seconds=lease_seconds, what=f"Node {found.node}'s step")
    keep = _keeper(renewal, found.rollout_id)
    try:
        step = RolloutStep.objects.select_related("cluster", "rollout__plan").get(pk=step_id)
        if (chain is not None and step.chain != chain) or step.phase in IDLE:
            return StepTick()
        rollout = step.rollout
        if rollout.state == RolloutState.ABORTED:
            if step.phase in MAY_BE_CORDONED:
                note = _uncordon_after_abort(step)
                rollout_event(rollout, "rollout.step_changed", f"{step.cluster.name}/{step.node} after the abort: {note}",
                              step=step.pk, node=step.node, phase=step.phase)
            return StepTick()
        if rollout.state != RolloutState.RUNNING:
            return StepTick()
        refusal = rules.unapproved(rollout) or rules.inputs_changed(rollout, step)
        if refusal:
            _halt(rollout, step, refusal)
            return StepTick()
        RolloutStep.objects.filter(pk=step.pk).update(last_tick_at=timezone.now())
        return _advance_step(rollout, step, keep)
    except WorkerStopping:
        raise  # this worker is ending: the lease is released below, and the task hands the node back to the queue
    except LeaseLost as exc:
        log.warning("%s; this worker stops acting on it", exc)
        return StepTick()
    finally:
        lease_release(name=name, holder=holder)


def _step_lease(step: RolloutStep) -> str:
    return f"rollout.{step.rollout_id}.step.{step.pk}"


def _holder() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{time.monotonic_ns()}"


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


def _gateway(cluster: Cluster, *, verified: bool = False) -> Gateway:
    return gateway_verified(cluster) if verified else gateway_for(cluster)


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
            # Which worker asked for each node's replacement, in its log (the scale-out test counts them).
            log.info("%s/%s: the %s driver replaces the node at v%s", step.cluster.name, step.node,
                     step.cluster.upgrade_driver, target)
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
    rollout_event(rollout, "rollout.step_changed", f"{step.cluster.name}/{step.node}: {StepPhase(phase).label.lower()}"
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
        rollout_event(locked, "rollout.halted", f"Rollout of {locked.plan.name} halted: {reason}", step=step.pk if step else None)
