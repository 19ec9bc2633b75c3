"""End to end through the one publish path: an event committed → the hook → a real Celery worker (threads, in this
process, on the in-memory broker) → apprise → the real receiver process. Timing figures are printed (-s)."""

from __future__ import annotations

import time

import pytest
from django.db import connection, transaction

from notifications.choices import DeliveryState, NotifyKind
from notifications.models import Delivery
from pksweb.events import publish

# On PostgreSQL only (make test's second pass): the suite's SQLite is one shared-cache memory database, where a
# worker thread's write meets "database table is locked" at once instead of waiting, and four worker threads
# writing deliveries side by side retried past the test's patience. Neither PostgreSQL nor the embedded server's
# SQLite file (WAL, a 20 s busy timeout) fails that way.
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.postgres,
              pytest.mark.skipif(connection.vendor == "sqlite", reason="end to end on PostgreSQL only (see above)")]


@pytest.fixture
def worker():
    from celery.contrib.testing.worker import start_worker

    from pksweb.celery import app

    app.control.purge()
    with start_worker(app, pool="threads", concurrency=4, perform_ping_check=False, loglevel="WARNING", shutdown_timeout=10) as w:
        yield w


def status(cluster, old, new):
    started = time.perf_counter()
    with transaction.atomic():
        event = publish(kind="cluster.status_changed", message=f"Cluster {cluster.name} is {new}", subject_type="cluster",
                        subject_id=cluster.pk, subject_label=cluster.name, payload={"old": old, "new": new})
    return event, time.perf_counter() - started


def settle(count, timeout=45.0):
    """Until every delivery is decided and sent or failed (generous: a SQLite table lock in a worker thread is
    retried after 1, 2, 4 … s)."""
    deadline = time.monotonic() + timeout
    while Delivery.objects.filter(state__in=(DeliveryState.QUEUED, DeliveryState.RETRYING)).exists() or \
            Delivery.objects.count() < count:
        assert time.monotonic() < deadline, list(Delivery.objects.values_list("state", "channel_name"))
        time.sleep(0.05)


def test_a_hung_receiver_delays_neither_the_event_path_nor_other_channels(worker, receiver, cluster, operator, channel_for, subscribe):
    slow, fast = channel_for("slow"), channel_for("fast")
    subscribe(operator, NotifyKind.CLUSTER_UNREACHABLE, slow)
    subscribe(operator, NotifyKind.CLUSTER_UNREACHABLE, fast)
    receiver.fault("slow", hang=30)
    event, publish_seconds = status(cluster, "healthy", "unreachable")
    got = receiver.wait_for(1, "fast", timeout=10)
    assert [r["body"]["title"] for r in got] == ["Cluster prod-eu is unreachable"]
    latency = got[0]["at"] - event.created_at.timestamp()
    print(f"\npublish+commit {publish_seconds * 1000:.1f} ms; event → receiver {latency * 1000:.0f} ms (beside a hung channel)")
    assert publish_seconds < 0.5 and latency < 2.0  # the hung channel times out after 1 s, twice: neither waits for it
    settle(2)
    failed = Delivery.objects.get(channel_name="slow")
    assert failed.state == DeliveryState.FAILED and failed.attempts == 2 and failed.reason
    assert Delivery.objects.get(channel_name="fast").state == DeliveryState.SENT


def test_exactly_the_expected_messages_in_order(worker, receiver, cluster, operator, channel_for, subscribe):
    from upgrades.models import Rollout, UpgradePlan

    ops = channel_for("ops")
    for kind in (NotifyKind.ROLLOUT_STARTED, NotifyKind.ROLLOUT_HALTED, NotifyKind.ROLLOUT_FINISHED,
                 NotifyKind.CLUSTER_UNREACHABLE, NotifyKind.CLUSTER_RECOVERED):
        subscribe(operator, kind, ops)
    plan = UpgradePlan.objects.create(name="to 1.31", target_version="1.31.2", waves=[[cluster.pk]], author=operator)
    rollout = Rollout.objects.create(plan=plan, revision="r", state="running")
    latencies = []
    for kind, message in (("rollout.started", "Rollout of to 1.31 to 1.31.2 started"),
                          ("rollout.step_changed", "prod-eu/w-1: cordoned"),  # nobody is told of steps
                          ("rollout.halted", "Rollout of to 1.31 halted: node w-1 did not become Ready in 600 s"),
                          ("rollout.aborted", "Rollout of to 1.31 aborted")):
        with transaction.atomic():
            event = publish(kind=kind, message=message, subject_type="rollout", subject_id=rollout.pk, subject_label=plan.name)
        if kind != "rollout.step_changed":
            got = receiver.wait_for(len(latencies) + 1, "ops", timeout=30)
            latencies.append(got[-1]["at"] - event.created_at.timestamp())
    # a flapping cluster, through the worker: ten times down and up within a second
    for _ in range(10):
        status(cluster, "healthy", "unreachable")
        status(cluster, "unreachable", "healthy")
    settle(23)
    time.sleep(0.3)
    assert [r["body"]["title"] for r in receiver.received("ops")] == [
        "Rollout of to 1.31 to 1.31.2 started", "Rollout of to 1.31 halted: node w-1 did not become Ready in 600 s",
        "Rollout of to 1.31 aborted", "Cluster prod-eu is unreachable", "Cluster prod-eu is healthy"]
    assert Delivery.objects.filter(state=DeliveryState.SUPPRESSED).count() == 18
    latencies.sort()
    print(f"\nevent → receiver: median {latencies[len(latencies) // 2] * 1000:.0f} ms, max {latencies[-1] * 1000:.0f} ms")
