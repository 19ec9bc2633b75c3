"""Live fleet and cluster pages over websockets."""

from __future__ import annotations

import pytest
from channels.db import database_sync_to_async

from clusters.operations import node_operation_execute, node_operation_start
from clusters.sweep import cluster_probe
from pksweb.consumers import CLOSE_FORBIDDEN
from tests.support.sockets import socket

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.asyncio]


async def test_tenant_admin_cannot_watch_the_fleet(tenant_admin):
    connected, code = await (await socket("/ws/fleet/", tenant_admin)).connect()
    assert not connected and code == CLOSE_FORBIDDEN


async def test_unknown_cluster_is_refused(viewer):
    connected, code = await (await socket("/ws/clusters/999999/", viewer)).connect()
    assert not connected and code == CLOSE_FORBIDDEN


async def test_fleet_row_turns_unreachable_live(viewer, registered, sandbox_cluster):
    communicator = await socket(f"/ws/fleet/?after={await database_sync_to_async(_latest)()}", viewer)
    assert (await communicator.connect())[0]
    sandbox_cluster.faults.update({"unreachable": True})
    await database_sync_to_async(cluster_probe)(cluster=registered)
    row = await communicator.receive_from(timeout=5)
    assert row.startswith(f'<tr id="cluster-{registered.pk}" data-status="unreachable" hx-swap-oob="true">')  # a message of its own
    html = row + await communicator.receive_from(timeout=5)
    assert f'<tr id="cluster-{registered.pk}" data-status="unreachable" hx-swap-oob="true">' in html
    assert 'id="fleet-counts"' in html and "<b>1</b> unreachable" in html
    assert 'id="event-cursor"' in html
    await communicator.disconnect()


async def test_fleet_replay_coalesces_per_cluster(viewer, registered, sandbox_cluster):
    before = await database_sync_to_async(_latest)()
    for faults in ({"unreachable": True}, {"unreachable": False}, {"unreachable": True}):
        sandbox_cluster.faults.update(faults)
        await database_sync_to_async(cluster_probe)(cluster=registered)
    communicator = await socket(f"/ws/fleet/?after={before}", viewer)
    assert (await communicator.connect())[0]
    html = await communicator.receive_from(timeout=5) + await communicator.receive_from(timeout=5)
    assert 'data-status="unreachable"' in html
    assert await communicator.receive_nothing(timeout=0.3)  # three status changes, one row
    await communicator.disconnect()


async def test_cluster_page_follows_a_drain(operator, registered, sandbox_cluster):
    communicator = await socket(f"/ws/clusters/{registered.pk}/?after={await database_sync_to_async(_latest)()}", operator)
    assert (await communicator.connect())[0]
    node = f"{sandbox_cluster.name}-w-1"
    operation = await database_sync_to_async(_start)(registered, node, operator)
    queued = await communicator.receive_from(timeout=5)
    assert "cluster.operation_queued" in queued and f'<tr id="operation-{operation.pk}" data-state="queued"' in queued
    await database_sync_to_async(node_operation_execute)(operation_id=operation.pk)
    messages = []
    while True:
        message = await communicator.receive_from(timeout=5)
        messages.append(message)
        if "cluster.operation_finished" in message:
            break
    final = messages[-1]
    assert f'<tr id="operation-{operation.pk}" data-state="succeeded"' in final
    assert 'id="nodes" hx-swap-oob="true"' in final and "cordoned" in final
    assert any("cluster.operation_progress" in m for m in messages)
    await communicator.disconnect()


def _latest() -> int:
    from pksweb.models import Event

    return Event.objects.order_by("-id").values_list("id", flat=True).first() or 0


def _start(cluster, node, user):
    from django.db import transaction

    with transaction.atomic():
        return node_operation_start(cluster=cluster, node=node, kind="drain", requested_by=user)


async def test_a_cluster_page_replays_its_own_events_past_the_fleets_noise(operator, registered):
    """Away while the rest of the fleet was busy: the page is replayed its cluster's events, not the fleet's
    oldest ones filtered down to nothing."""
    from pksweb.events import publish
    from pksweb.selectors import REPLAY_LIMIT

    before = await database_sync_to_async(_latest)()
    await database_sync_to_async(_noise)(REPLAY_LIMIT + 100)
    mine = [await database_sync_to_async(publish)(kind="cluster.note", message=f"about this one {i}", subject_type="cluster",
                                                  subject_id=registered.pk, subject_label=registered.name) for i in range(2)]
    communicator = await socket(f"/ws/clusters/{registered.pk}/?after={before}", operator)
    assert (await communicator.connect())[0]
    html = await _until_cursor(communicator)
    assert "about this one 0" in html and f'data-last="{mine[0].pk}"' in html
    html = await _until_cursor(communicator)
    assert "about this one 1" in html and f'data-last="{mine[1].pk}"' in html
    assert await communicator.receive_nothing(timeout=0.3)  # and no reload: the noise is not this page's
    await communicator.disconnect()


async def test_a_replay_moves_the_cursor_past_events_the_page_does_not_show(viewer, registered, sandbox_cluster):
    """The fleet page renders cluster events only; the announcement after them still moves its cursor, or every
    reconnect would count it again."""
    from pksweb.events import publish

    before = await database_sync_to_async(_latest)()
    sandbox_cluster.faults.update({"unreachable": True})
    await database_sync_to_async(cluster_probe)(cluster=registered)
    note = await database_sync_to_async(publish)(kind="system.announcement", message="not a row of the fleet")
    communicator = await socket(f"/ws/fleet/?after={before}", viewer)
    assert (await communicator.connect())[0]
    html = await _until_cursor(communicator)
    assert 'data-status="unreachable"' in html and f'data-last="{note.pk}"' in html
    assert await communicator.receive_nothing(timeout=0.3)
    await communicator.disconnect()


async def _until_cursor(communicator) -> str:
    """The messages of one delivery, up to the one carrying the cursor."""
    html = ""
    while 'id="event-cursor"' not in html:
        html += await communicator.receive_from(timeout=5)
    return html


def _noise(count: int) -> None:
    from pksweb.models import Event

    Event.objects.bulk_create([Event(kind="cluster.status_changed", message=f"another cluster {i}", subject_type="cluster",
                                     subject_id="999999") for i in range(count)])


async def test_cluster_page_follows_node_changes_a_probe_sees(operator, registered, sandbox_cluster):
    """Cordoned with kubectl, upgraded by someone else, a node joined: the next probe puts each on the open page
    (the node table followed readiness only, and stayed stale until a reload)."""
    await database_sync_to_async(cluster_probe)(cluster=registered)  # the page was opened on a cluster already seen
    communicator = await socket(f"/ws/clusters/{registered.pk}/?after={await database_sync_to_async(_latest)()}", operator)
    assert (await communicator.connect())[0]
    node = f"{sandbox_cluster.name}-w-1"
    sandbox_cluster.upgrade_node(f"{sandbox_cluster.name}-w-2", "1.30.9", delay=0)
    sandbox_cluster.patch("nodes", "", node, lambda n: {**n, "spec": {**n.get("spec", {}), "unschedulable": True}})
    sandbox_cluster.add_node(f"{sandbox_cluster.name}-w-77")
    await database_sync_to_async(cluster_probe)(cluster=registered)
    html = ""
    while "nodes_changed" not in html:
        html += await communicator.receive_from(timeout=5)
    while not await communicator.receive_nothing(timeout=1.5):
        html += await communicator.receive_from(timeout=5)
    assert f"{node} cordoned" in html and f"{sandbox_cluster.name}-w-2 now runs v1.30.9" in html, [line for line in html.splitlines() if "message" in line]
    assert f"{sandbox_cluster.name}-w-77 joined" in html
    table = html[html.rindex('id="nodes" hx-swap-oob="true"'):]
    assert "v1.30.9" in table and f"{sandbox_cluster.name}-w-77" in table
    await communicator.disconnect()
