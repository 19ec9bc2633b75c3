"""Readiness checks for ``/readyz``: is each dependency reachable right now?

Each check returns None when the part works, or a sentence saying what failed. Checks are bounded by short
timeouts so a dead dependency answers fast. ``/readyz`` answers anyone (the Ingress forwards it like every path),
so it names the failing part in fixed words and the server log keeps the driver's words (addresses, ports).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import redis
from django.conf import settings
from django.db import connection
from kombu import Connection

log = logging.getLogger(__name__)
TIMEOUT_SECONDS = 2.0


def check_database() -> str | None:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:  # any driver error means "not ready"; the text says which
        return f"database unreachable: {exc.__class__.__name__}: {exc}".strip()
    return None


def _redis_ping(url: str) -> None:
    client = redis.Redis.from_url(url, socket_connect_timeout=TIMEOUT_SECONDS, socket_timeout=TIMEOUT_SECONDS)
    try:
        client.ping()
    finally:
        client.close()


def check_channel_layer() -> str | None:
    config: dict[str, Any] = settings.CHANNEL_LAYERS["default"]
    hosts = config.get("CONFIG", {}).get("hosts", [])
    for host in hosts:
        url = host if isinstance(host, str) else host.get("address", "")
        try:
            _redis_ping(url)
        except redis.RedisError as exc:
            return f"channel layer (Redis) unreachable: {exc}"
    return None


def check_broker() -> str | None:
    url = settings.CELERY_BROKER_URL
    if url.startswith("memory://"):
        return None
    try:
        with Connection(url, connect_timeout=TIMEOUT_SECONDS) as conn:
            conn.ensure_connection(max_retries=1, interval_start=0, interval_step=0, timeout=int(TIMEOUT_SECONDS))
    except Exception as exc:  # kombu wraps transport errors in several types
        return f"Celery broker unreachable: {exc}"
    return None


CHECKS: dict[str, Callable[[], str | None]] = {
    "database": check_database,
    "channel_layer": check_channel_layer,
    "broker": check_broker,
}


# What /readyz says of a failing part: no address, port or driver text for a stranger to read.
PUBLIC = {
    "database": "database unreachable",
    "channel_layer": "channel layer (Redis) unreachable",
    "broker": "Celery broker unreachable",
}


def readiness() -> dict[str, str]:
    """Each part's state by name: "ok", or what fails in words that reveal nothing of the network (the details go
    to the server log)."""
    states = {}
    for name, check in CHECKS.items():
        failure = check()
        if failure:
            log.warning("readyz: %s", failure)
        states[name] = f"{PUBLIC[name]}: the server log says why" if failure else "ok"
    return states
