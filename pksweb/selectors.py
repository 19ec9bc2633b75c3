"""Reads for a person: querysets already scoped by the policy."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from django.contrib.sessions.models import Session
from django.db.models import Q, QuerySet
from django.utils import timezone

from pksweb import policy
from pksweb.events import EVERYONE_GROUP, FLEET_GROUP, FOR_EVERYONE, event_groups
from pksweb.models import Event, User, WorkerHeartbeat
from pksweb.types import AnyUser

REPLAY_LIMIT = 500


def event_list(*, user: AnyUser, tenant_id: int | None = None) -> QuerySet[Event]:
    """Events ``user`` may see, newest first, optionally of one tenant."""
    events = policy.restrict(user, Event.objects.select_related("tenant"), "view")
    if tenant_id is not None:
        events = events.filter(tenant_id=tenant_id)
    return events


@dataclass(frozen=True)
class Replay:
    """What a page missed: ``events`` oldest first; ``complete`` False when there was more than a replay carries."""

    events: list[Event]
    complete: bool


def event_replay(*, user: AnyUser, groups: Iterable[str], after: int, limit: int | None = None) -> Replay:
    """The newest ``limit`` (``REPLAY_LIMIT``) events after id ``after`` that ``user`` may see in ``groups``,
    oldest first, and whether they are all of them (for a reconnecting page).

    A group stands for the events sent to it (``pksweb.events.event_groups``): ``fleet`` every
    event, ``tenant.<id>`` that tenant's, any other ``<subject_type>.<id>`` that subject's. One
    query per group (the fleet alone when it is one of them), each newest first along an index
    (the primary key, ``event_tenant_id`` or ``event_subject_id``) and stopping after ``limit + 1``
    rows; they are merged here, an event in two groups counted once.
    """
    limit = REPLAY_LIMIT if limit is None else limit
    # The fleet's group is every event: with it, the other groups add nothing.
    filters = {FLEET_GROUP: Q()} if FLEET_GROUP in groups else {group: _group_filter(group) for group in groups}
    visible = event_list(user=user).filter(id__gt=after).order_by("-id")
    found: dict[int, Event] = {}
    for where in filters.values():
        for event in visible.filter(where)[: limit + 1]:
            found[event.pk] = event
    newest = sorted(found.values(), key=lambda event: event.pk, reverse=True)
    return Replay(events=newest[:limit][::-1], complete=len(newest) <= limit)


def _group_filter(group: str) -> Q:
    """The events ``pksweb.events.event_groups`` sends to ``group`` (but the fleet's, which is every event)."""
    if group == EVERYONE_GROUP:
        return FOR_EVERYONE
    kind, _, key = group.partition(".")
    if not key:
        raise ValueError(f"not a channel group of events: {group!r}")
    if kind == "tenant":
        return Q(tenant_id=int(key))
    return Q(subject_type=kind, subject_id=key)


def event_groups_between(*, since: datetime, until: datetime) -> list[tuple[int, datetime, list[str]]]:
    """(id, created_at, channel groups) of every event created in [since, until], oldest first (for catching open pages up)."""
    events = Event.objects.filter(created_at__gte=since, created_at__lte=until).order_by("id")
    fields = ("id", "created_at", "kind", "tenant_id", "subject_type", "subject_id")
    return [(event.pk, event.created_at, event_groups(event)) for event in events.only(*fields)]


def event_get_visible(*, user: AnyUser, event_id: int) -> Event | None:
    """One event if ``user`` may see it, else None."""
    return event_list(user=user).filter(pk=event_id).first()


def worker_last_seen() -> WorkerHeartbeat | None:
    return WorkerHeartbeat.objects.order_by("-seen_at").first()


def latest_event_id(*, user: AnyUser) -> int:
    """The newest event id ``user`` may see (a live page's starting cursor)."""
    return event_list(user=user).order_by("-id").values_list("id", flat=True).first() or 0


def user_audiences(*, keys: set[tuple[int, str]]) -> dict[tuple[int, str], tuple[User, str]]:
    """For (user id, session key) pairs: the user as now and their audience key, if both are still valid."""
    users = {u.pk: u for u in User.objects.filter(pk__in={k[0] for k in keys}, is_active=True)}
    sessions = set(Session.objects.filter(session_key__in={k[1] for k in keys if k[1]}, expire_date__gt=timezone.now())
                   .values_list("session_key", flat=True))
    # One query for every user, not two each: hand the policy what it would have read.
    policy.tenant_ids_prime(list(users.values()))
    result = {}
    for user_id, session_key in keys:
        user = users.get(user_id)
        if user is None or (session_key and session_key not in sessions):
            continue
        result[(user_id, session_key)] = (user, audience_key(user))
    return result


def audience_key(user: AnyUser) -> str:
    """Everything policy decisions about a page's fragments depend on: role and tenants."""
    return f"{getattr(user, 'role', '')}|{sorted(policy.tenant_ids(user))}|{sorted(policy.admin_tenant_ids(user))}"
