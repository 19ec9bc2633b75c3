"""Thin tasks: fan out a subject's new events, drain a channel, sweep what a lost task left."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from celery import shared_task
from django.db import OperationalError
from django.db.models import Exists, OuterRef
from django.utils import timezone

from notifications.choices import WAITING_STATES
from notifications.delivery import channel_drain
from notifications.fanout import EVENT_KINDS, Decided, event_fanout, gate_settle
from notifications.models import Delivery, Fanout
from pksweb.leases import lease_acquire, lease_release
from pksweb.models import Event

LOOKBACK = timedelta(hours=1)  # older events are history, not news
# A database that blinks (a lock, a failover) is waited out: 1, 2, 4 … 30 s, without end (the rows decide what is done).
ON_DB_ERROR: dict[str, Any] = {"autoretry_for": (OperationalError,), "retry_backoff": 1, "retry_backoff_max": 30,
                               "retry_jitter": False}


def _pending(**subject: str) -> list[Event]:
    done = Fanout.objects.filter(event_id=OuterRef("pk"))
    return list(Event.objects.filter(kind__in=EVENT_KINDS, created_at__gte=timezone.now() - LOOKBACK, **subject)
                .filter(~Exists(done)).order_by("pk"))


@shared_task(bind=True, max_retries=None, ignore_result=True, **ON_DB_ERROR)
def notify_subject(self: Any, subject_type: str, subject_id: str) -> None:
    """Fan out every new event about one subject, oldest first, one worker per subject at a time (so a cluster's
    'unreachable' is decided before its 'recovered')."""
    name, holder = f"notify.fanout.{subject_type}.{subject_id}"[:100], uuid.uuid4().hex
    if not lease_acquire(name=name, holder=holder, seconds=60):
        raise self.retry(countdown=0.2)
    decisions = []
    try:
        for event in _pending(subject_type=subject_type, subject_id=subject_id):
            decisions.append(event_fanout(event=event))
    finally:
        lease_release(name=name, holder=holder)
    _follow(decisions)


def _follow(decisions: list[Decided]) -> None:
    """Each fan-out committed on its own: the rows are there for the sender, and the settles for the held news."""
    for channel_id in sorted({c for d in decisions for c in d.queued}):
        notify_channel.delay(channel_id)
    for key, wait in dict(h for d in decisions for h in d.held).items():
        notify_settle.apply_async((key,), countdown=wait + 0.05)


@shared_task(ignore_result=True, **ON_DB_ERROR)
def notify_settle(key: str) -> None:
    """A debounce window ended: send the latest held-back news about its subject if it differs from the last sent."""
    _follow([gate_settle(key=key)])


@shared_task(bind=True, max_retries=None, ignore_result=True, **ON_DB_ERROR)
def notify_channel(self: Any, channel_id: int) -> None:
    """Send what waits on one channel; come back after the backoff when a send failed."""
    wait = channel_drain(channel_id=channel_id)
    if wait is not None:
        raise self.retry(countdown=max(wait, 0.05))


@shared_task(ignore_result=True)
def notify_sweep() -> None:
    """Beat, every minute: subjects with events nobody fanned out (a lost task), channels with messages waiting, and
    fan-out marks too old to matter."""
    for subject_type, subject_id in {(e.subject_type, e.subject_id) for e in _pending()}:
        notify_subject.delay(subject_type, subject_id)
    for channel_id in set(Delivery.objects.filter(state__in=WAITING_STATES, channel__isnull=False).values_list("channel_id", flat=True)):
        notify_channel.delay(channel_id)
    # Marks of events past the lookback are never asked about again.
    Fanout.objects.filter(done_at__lt=timezone.now() - 2 * LOOKBACK).delete()
