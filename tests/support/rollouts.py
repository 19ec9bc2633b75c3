"""Driving a rollout in the test process, as the Celery task would."""

from __future__ import annotations

import time

from upgrades import services
from upgrades.models import Rollout


def drive(rollout: Rollout, limit: float = 60.0) -> Rollout:
    """Run the engine's ticks in this process until it stops (what the Celery task does, minus the queue)."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        delay = services.rollout_advance(rollout_id=rollout.pk)
        if delay is None:
            break
        time.sleep(min(delay, 0.05))
    rollout.refresh_from_db()
    return rollout
