"""The audit trail's integrity: events are sealed into a hash chain, and the chain can be verified.

Each sealed event carries ``digest = sha256(previous digest + the event's content)``, in id
order. Editing, deleting or inserting an event anywhere in the sealed past breaks every
digest after it, which ``audit_verify`` (and ``manage.py auditverify``) reports.

Sealing runs after the fact (beat, every PKSWEB_AUDIT_SEAL_SECONDS) rather than in
``publish``: chaining at write time would serialize every event-writing transaction in the
fleet behind one lock. Only events older than ``SEAL_DELAY`` are sealed, so every
transaction that could still commit an earlier id has ended; an unsealed event found
behind the sealed head was written by a transaction that lasted longer than that, and
verification names it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from pksweb.leases import lease_acquire, lease_release
from pksweb.models import Event

SEAL_DELAY = timedelta(seconds=60)
SEAL_BATCH = 5000
GENESIS = "0" * 64


def content(event: Event) -> str:
    """What the digest covers: everything an event says (its id included, so none can move)."""
    return json.dumps({
        "id": event.pk, "kind": event.kind, "message": event.message, "actor_id": event.actor_id, "actor_name": event.actor_name,
        "subject_type": event.subject_type, "subject_id": event.subject_id, "subject_label": event.subject_label,
        "tenant_id": event.tenant_id, "payload": event.payload, "created_at": event.created_at.isoformat(),
    }, sort_keys=True, default=str, separators=(",", ":"))


def digest(previous: str, event: Event) -> str:
    return hashlib.sha256((previous + content(event)).encode()).hexdigest()


def audit_seal(*, delay: timedelta = SEAL_DELAY) -> int:
    """Seal the events old enough to be final, in id order, onto the chain; returns how many."""
    holder = f"seal-{timezone.now().timestamp()}"
    if not lease_acquire(name="pksweb.audit_seal", holder=holder, seconds=120):
        return 0
    try:
        head = Event.objects.exclude(digest="").order_by("-id").values_list("id", "digest").first()
        head_id, previous = head if head else (0, GENESIS)
        batch = list(Event.objects.filter(id__gt=head_id, digest="", created_at__lt=timezone.now() - delay).order_by("id")[:SEAL_BATCH])
        with transaction.atomic():
            for event in batch:
                previous = digest(previous, event)
                Event.objects.filter(pk=event.pk, digest="").update(digest=previous)
        return len(batch)
    finally:
        lease_release(name="pksweb.audit_seal", holder=holder)


@dataclass
class Verification:
    sealed: int = 0
    unsealed: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def audit_verify() -> Verification:
    """Recompute the chain from the first sealed event; every break is a problem named by event id."""
    result = Verification()
    previous = GENESIS
    head_id = 0
    for event in Event.objects.exclude(digest="").order_by("id").iterator(chunk_size=2000):
        expected = digest(previous, event)
        if event.digest != expected:
            result.problems.append(f"event {event.pk} does not match the chain: it, or an event sealed before it, "
                                   "was edited, removed or inserted after sealing")
            expected = event.digest  # go on from what is stored, so one change is reported once
        previous, head_id = expected, event.pk
        result.sealed += 1
    behind = Event.objects.filter(digest="", id__lt=head_id).values_list("id", flat=True)[:20]
    for event_id in behind:
        result.problems.append(f"event {event_id} is older than the sealed head but unsealed (written late, or inserted)")
    result.unsealed = Event.objects.filter(digest="").count()
    return result
