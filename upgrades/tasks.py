"""Celery tasks of upgrades: thin, they take ids and call the rollout engine (``upgrades.engine``).

This is the only module that queues engine work, and nothing in the app imports it but the wiring
(``upgrades/apps.py`` registers ``enqueue`` with the engine): the engine and the services say what
should run next (a ``Dispatch``, a ``StepTick``, a ``Work`` handed over after commit) and the tasks
queue it. How far one task takes a node is the engine's ``TASK_BUDGET``.
"""

from __future__ import annotations

import logging

from celery import shared_task

from pksweb.leases import WorkerStopping
from pksweb.shutdown import hand_back
from upgrades import engine

# After a node's step ends, the task goes on with the next node the dispatcher starts, up to this many
# nodes, before it hands over to a new task (no queue round trip between nodes).
NODES_PER_TASK = 4
log = logging.getLogger(__name__)


def enqueue(work: engine.Work) -> None:
    """Queue engine work: the dispatcher of each rollout, then a tick of each step chain."""
    for rollout_id in work.rollouts:
        rollout_tick.apply_async((rollout_id,), countdown=0)
    for step_id, chain in work.steps:
        step_tick.apply_async((step_id, chain))


@shared_task(name="upgrades.tasks.rollout_tick", ignore_result=True, acks_late=True, time_limit=300, soft_time_limit=290)
def rollout_tick(rollout_id: int) -> None:
    """Let the dispatcher start the nodes that may start; safe twice (it holds the rollout's row lock)."""
    _dispatch(rollout_id, keep=False)


def _dispatch(rollout_id: int, *, keep: bool) -> tuple[int, int] | None:
    """Queue the step chains the dispatcher started; with ``keep``, hand the first back to run here."""
    dispatch = engine.rollout_dispatch(rollout_id=rollout_id)
    if dispatch.again is not None:
        rollout_tick.apply_async((rollout_id,), countdown=dispatch.again)
    steps = list(dispatch.steps)
    kept = steps.pop(0) if keep and steps else None
    for step_id, chain in steps:
        step_tick.apply_async((step_id, chain))
    return kept


@shared_task(name="upgrades.tasks.step_tick", ignore_result=True, acks_late=True, time_limit=7200, soft_time_limit=7100)
def step_tick(step_id: int, chain: int) -> None:
    """Move one node on and schedule its next tick. Safe twice: a lease lets one worker act, and a
    tick of a chain that was replaced stops. When the node is done, the dispatcher runs here and now,
    and this task goes on with the next node it starts (no queue round trip between nodes). A worker that is
    shutting down hands the node back to the queue, mid-phase: this task's own message when it is still on its
    first node, else a new tick of the node it went on with."""
    at = [step_id, chain]
    try:
        _steps(at)
    except WorkerStopping as exc:
        if at == [step_id, chain]:
            raise hand_back(exc) from None
        log.warning("%s (as a new task: this one had gone on from another node)", exc)
        step_tick.apply_async((at[0], at[1]))


def _steps(at: list[int]) -> None:
    """The ticks of ``step_tick``; ``at`` is the (step, chain) it is on, updated when it goes on with the next node."""
    step_id, chain = at
    for _ in range(NODES_PER_TASK):
        tick = engine.step_advance(step_id=step_id, chain=chain, budget=engine.TASK_BUDGET)
        if tick.again is not None:
            step_tick.apply_async((step_id, chain), countdown=tick.again)
        if not tick.dispatch:
            return
        rollout_id = engine.step_rollout_id(step_id)
        following = _dispatch(rollout_id, keep=True) if rollout_id is not None else None
        if following is None:
            return
        step_id, chain = at[:] = following
    step_tick.apply_async((step_id, chain))


@shared_task(name="upgrades.tasks.rollouts_poke", ignore_result=True, time_limit=60, soft_time_limit=55)
def rollouts_poke() -> int:
    """Beat: tick running rollouts that went quiet (a worker died mid-step, a task was lost), and the
    uncordons an abort left to do."""
    work = engine.rollouts_due()
    enqueue(work)
    return len(work.rollouts)
