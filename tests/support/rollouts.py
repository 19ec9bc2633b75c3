"""Driving a rollout in the test process, as the Celery tasks would."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from clusters.models import Cluster, ClusterNode
from pksweb.types import AnyUser
from upgrades import engine, services
from upgrades.choices import IDLE, RolloutState
from upgrades.models import Rollout, RolloutStep, UpgradePlan


def rollout_advance(*, rollout_id: int) -> float | None:
    """Run a rollout in this process, one round at a time: dispatch, then one transition of every
    node in flight. Returns seconds until the next round, or None when the rollout stopped.
    (Celery runs the same two engine functions as separate task chains.)"""
    dispatch = engine.rollout_dispatch(rollout_id=rollout_id)
    delays = [dispatch.again] if dispatch.again is not None else []
    flying = RolloutStep.objects.filter(rollout_id=rollout_id).exclude(phase__in=IDLE).values_list("pk", flat=True)
    for step_id in flying:
        tick = engine.step_advance(step_id=step_id)
        if tick.again is not None:
            delays.append(tick.again)
        if tick.dispatch:
            delays.append(0)
    if delays:
        return min(delays)
    state = Rollout.objects.filter(pk=rollout_id).values_list("state", flat=True).first()
    return 0 if state == RolloutState.RUNNING else None


def drive(rollout: Rollout, limit: float = 60.0, after_round: Callable[[], None] | None = None) -> Rollout:
    """Run the engine's ticks in this process until it stops (what the Celery task does, minus the queue);
    ``after_round()`` is called after every round, the last one included."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        delay = rollout_advance(rollout_id=rollout.pk)
        if after_round is not None:
            after_round()
        if delay is None:
            break
        time.sleep(min(delay, 0.05))
    rollout.refresh_from_db()
    return rollout


def start(plan: UpgradePlan, user: AnyUser | None, capture: Any, **kwargs: Any) -> Rollout:
    """Start ``plan`` as ``user`` with the tasks it queues on commit captured, not run (``capture`` is the
    ``django_capture_on_commit_callbacks`` fixture): the test drives the rollout itself."""
    with capture(execute=False):
        return services.plan_start(plan=plan, by=user, **kwargs)


def worker_nodes(cluster: Cluster) -> list[str]:
    """The names of ``cluster``'s worker nodes, as the last probe saw them."""
    return [n.name for n in ClusterNode.objects.filter(cluster=cluster).order_by("name") if not n.is_control_plane]
