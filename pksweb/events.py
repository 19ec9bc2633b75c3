"""The one publish path: every state change a page shows goes through ``publish``.

``publish`` stores an ``Event`` row (durable: timeline, audit, replay) and, when
the surrounding transaction commits, tells the channel groups that watch its
subject. Consumers receive only the event id, load it, check the policy and
render the fragment for their user. Nothing is sent for a rolled-back change.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import partial
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction
from django.db.models import Q

from pksweb.choices import SubjectType
from pksweb.models import Event, User
from pksweb.text import bound, bound_payload
from pksweb.types import AnyUser

log = logging.getLogger(__name__)

FLEET_GROUP = "fleet"
# Announcements posted for everyone (no tenant) reach tenant admins too, through this group.
EVERYONE_GROUP = "everyone"
ANNOUNCEMENT = "system.announcement"
MESSAGE_TYPE = "event.message"


def tenant_group(tenant_id: int) -> str:
    return f"tenant.{tenant_id}"


def subject_group(subject_type: str, subject_id: str | int) -> str:
    return f"{subject_type}.{subject_id}"


# An announcement an operator posted for everyone, tenant admins included: as a query, and for one event.
FOR_EVERYONE = Q(kind=ANNOUNCEMENT, tenant__isnull=True)


def for_everyone(event: Event) -> bool:
    return event.kind == ANNOUNCEMENT and event.tenant_id is None


def event_groups(event: Event) -> list[str]:
    """The groups that care: the fleet, the event's tenant, and its subject."""
    groups = [FLEET_GROUP]
    if for_everyone(event):
        groups.append(EVERYONE_GROUP)
    if event.tenant_id is not None:
        groups.append(tenant_group(event.tenant_id))
    if event.subject_id and event.subject_type not in (SubjectType.SYSTEM, SubjectType.TENANT):
        groups.append(subject_group(event.subject_type, event.subject_id))
    return groups


def publish(
    *,
    kind: str,
    message: str,
    actor: AnyUser | None = None,
    subject_type: str = SubjectType.SYSTEM,
    subject_id: str | int = "",
    subject_label: str = "",
    tenant: Any = None,
    payload: dict[str, Any] | None = None,
) -> Event:
    """Store an event and push it to its groups after the transaction commits.

    ``kind`` carries a prefix naming its area (``system.announcement``,
    ``rollout.step_changed``). Call it from services only, inside their transaction.
    The message, label and payload often carry words from a cluster, a command or a
    person: they are bounded here (cut with a marker), so the state change this event
    explains never fails because of them.
    """
    person = actor if isinstance(actor, User) and actor.is_authenticated else None
    event = Event(
        kind=kind,
        message=bound(message, _limit("message")),
        actor=person,
        actor_name=bound(person.get_username(), _limit("actor_name")) if person is not None else "",
        subject_type=subject_type,
        subject_id=str(subject_id),
        subject_label=bound(subject_label, _limit("subject_label")),
        tenant=tenant,
        payload=bound_payload(payload or {}),
    )
    event.full_clean()
    event.save()
    groups = event_groups(event)
    transaction.on_commit(partial(_committed, event, groups), robust=True)
    return event


# Called with each committed event (an app above the core registers one in its AppConfig.ready(): the core imports
# none of them). A listener must return at once — queue a task, never do the work — because it runs in the
# request or task that published.
Listener = Callable[[Event], None]
_listeners: list[Listener] = []


def after_commit(listener: Listener) -> None:
    """Call ``listener(event)`` after each published event's transaction commits (once per listener)."""
    if listener not in _listeners:
        _listeners.append(listener)


def _committed(event: Event, groups: list[str]) -> None:
    """After the commit: push to the pages, then tell the listeners (each failure logged, none stops the others)."""
    _push(event.pk, groups)
    for listener in _listeners:
        try:
            listener(event)
        except Exception:
            log.exception("a listener of event %s failed; the event is stored and shown all the same", event.pk)


def _limit(field: str) -> int:
    column = Event._meta.get_field(field)
    return int(getattr(column, "max_length", 0) or 0)


def _push(event_id: int, groups: list[str]) -> None:
    """Tell each group about a committed event.

    A failure here loses no event: it is stored, and a page that reconnects
    replays it. It is logged, never swallowed silently.
    """
    layer = get_channel_layer()
    if layer is None:
        return
    for group in groups:
        try:
            async_to_sync(layer.group_send)(group, {"type": MESSAGE_TYPE, "id": event_id, "group": group})
        except Exception:
            log.exception("could not push event %s to group %s; pages will replay it on reconnect", event_id, group)
