"""Waiting for what simulated kubelets and worker threads do on timers; saying what service is missing."""

from __future__ import annotations

import os

import pytest


def require_service(what: str, how_to_start: str) -> None:
    """Under CI a missing service fails the test; elsewhere it skips, saying what to start."""
    message = f"{what} is not reachable: {how_to_start}"
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(message)
    pytest.skip(message)


def wait_for(predicate, timeout: float = 5.0, interval: float = 0.02, what: str = "condition"):
    """Poll until ``predicate()`` is truthy (simulated kubelets act on timers).

    The test database is SQLite's shared-cache memory database, whose table locks do not
    wait: a read while a worker thread writes the same table fails at once. Polling reads again.
    """
    import time

    from django.db import OperationalError

    deadline = time.monotonic() + timeout
    while True:
        try:
            value = predicate()
        except OperationalError as exc:
            if "is locked" not in str(exc):
                raise
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)
