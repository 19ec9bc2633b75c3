"""Celery tasks of upgrades: thin, they take ids and call the engine (see upgrades.services)."""

from __future__ import annotations

from celery import shared_task

from upgrades import services

# Phases due at once (cordon → drain → driver call) run in one task, up to this many.
PHASES_PER_TASK = 8


@shared_task(name="upgrades.tasks.rollout_tick", ignore_result=True, acks_late=True, time_limit=300, soft_time_limit=290)
def rollout_tick(rollout_id: int) -> None:
    """Let the dispatcher start the nodes that may start; safe twice (it holds the rollout's row lock)."""
    dispatch = services.rollout_dispatch(rollout_id=rollout_id)
    for step_id, chain in dispatch.steps:
        step_tick.apply_async((step_id, chain))
    if dispatch.again is not None:
        rollout_tick.apply_async((rollout_id,), countdown=dispatch.again)


@shared_task(name="upgrades.tasks.step_tick", ignore_result=True, acks_late=True, time_limit=7200, soft_time_limit=7100)
def step_tick(step_id: int, chain: int) -> None:
    """Move one node one phase on and schedule its next tick. Safe twice: a lease lets one worker act,
    and a tick of a chain that was replaced stops."""
    tick = services.step_advance(step_id=step_id, chain=chain, budget=PHASES_PER_TASK)
    if tick.again is not None:
        step_tick.apply_async((step_id, chain), countdown=tick.again)
    if tick.dispatch:
        rollout_tick(services.step_rollout_id(step_id))  # here and now: the next node starts without a queue round trip


@shared_task(name="upgrades.tasks.rollouts_poke", ignore_result=True, time_limit=60, soft_time_limit=55)
def rollouts_poke() -> int:
    """Beat: tick running rollouts that went quiet (a worker died mid-step, a task was lost)."""
    return services.rollouts_poke()
