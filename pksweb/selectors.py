"""Reads for a person: querysets already scoped by the policy."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet

from pksweb import policy
from pksweb.models import Event, WorkerHeartbeat

REPLAY_LIMIT = 500


def event_list(*, user: Any, tenant_id: int | None = None) -> QuerySet[Event]:
    """Events ``user`` may see, newest first, optionally of one tenant."""
    events = policy.restrict(user, Event.objects.select_related("tenant"), "view")
    if tenant_id is not None:
        events = events.filter(tenant_id=tenant_id)
    return events


def event_replay(*, user: Any, after: int, tenant_id: int | None = None) -> list[Event]:
    """Events after id ``after`` that ``user`` may see, oldest first (for a reconnecting page)."""
    events = event_list(user=user, tenant_id=tenant_id).filter(id__gt=after).order_by("id")
    return list(events[:REPLAY_LIMIT])


def event_get_visible(*, user: Any, event_id: int) -> Event | None:
    """One event if ``user`` may see it, else None."""
    return event_list(user=user).filter(pk=event_id).first()


def worker_last_seen() -> WorkerHeartbeat | None:
    return WorkerHeartbeat.objects.order_by("-seen_at").first()


def latest_event_id(*, user: Any) -> int:
    """The newest event id ``user`` may see (a live page's starting cursor)."""
    return event_list(user=user).order_by("-id").values_list("id", flat=True).first() or 0
