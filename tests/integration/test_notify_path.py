"""Notifications in the production shape: an event published by a process of its own (a management command) on
PostgreSQL, queued through Redis to a real `celery worker` process, sent by apprise to the real receiver process.
Prints the time from the event to its arrival at the receiver."""

from __future__ import annotations

import pytest

from tests.support.receiver import Receiver
from tests.support.stack import Stack

pytestmark = pytest.mark.integration

SCRIPT = """
import time
from django.db import transaction
from clusters.models import Cluster
from notifications.models import Subscription
from notifications.services import channel_create
from pksweb.events import publish
from pksweb.models import User

operator = User.objects.get(username="itop")
channel = channel_create(name="it-webhook", url="{url}", created_by=operator)
for kind in ("cluster_unreachable", "cluster_recovered"):
    Subscription.objects.create(user=operator, kind=kind, channel=channel)
cluster = Cluster.objects.create(name="it-notify", server="https://it.example:6443", credential_sealed="x")
for round in range(3):
    for old, new in (("healthy", "unreachable"), ("unreachable", "healthy")):
        with transaction.atomic():
            event = publish(kind="cluster.status_changed", message=f"Cluster it-notify is {{new}}", subject_type="cluster",
                            subject_id=cluster.pk, payload={{"old": old, "new": new}})
        print(event.pk, event.created_at.timestamp(), flush=True)
    time.sleep(1)
"""


def test_event_to_receiver_in_the_production_shape(stack: Stack):
    receiver = Receiver()
    try:
        out = stack.manage("shell", "-c", SCRIPT.format(url=receiver.url("it")))
        published = [float(line.split()[1]) for line in out.splitlines() if line[:1].isdigit() and len(line.split()) == 2]
        got = receiver.wait_for(2, "it", timeout=20)
        # three flaps: one 'unreachable' and one 'healthy' (the debounce), in order
        assert [r["body"]["title"] for r in got] == ["Cluster it-notify is unreachable", "Cluster it-notify is healthy"]
        latencies = [got[0]["at"] - published[0], got[1]["at"] - published[1]]
        print(f"\nevent → receiver (PostgreSQL, Redis, celery worker process): {', '.join(f'{s * 1000:.0f} ms' for s in latencies)}")
        assert max(latencies) < 2.0
    finally:
        receiver.stop()
