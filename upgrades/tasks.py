"""Celery tasks of upgrades: thin, they take ids and call the engine."""

from __future__ import annotations

from celery import shared_task

from upgrades import services


@shared_task(name="upgrades.tasks.rollout_tick", ignore_result=True, acks_late=True, time_limit=7200, soft_time_limit=7100)
def rollout_tick(rollout_id: int) -> None:
    """Advance a rollout by one step and schedule the next tick. Safe twice: a lease lets one worker act."""
    delay = services.rollout_advance(rollout_id=rollout_id)
    if delay is not None:
        rollout_tick.apply_async((rollout_id,), countdown=delay)


@shared_task(name="upgrades.tasks.rollouts_poke", ignore_result=True, time_limit=60, soft_time_limit=55)
def rollouts_poke() -> int:
    """Beat: tick running rollouts that went quiet (a worker died mid-step, a task was lost)."""
    return services.rollouts_poke()
