"""Websocket consumers through the real ASGI stack (origin check, session auth, routing)."""

from __future__ import annotations

import pytest
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer

from pksweb.consumers import CLOSE_FORBIDDEN, CLOSE_UNAUTHENTICATED
from pksweb.events import FLEET_GROUP, publish
from tests.support.sockets import socket

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.asyncio]

async def publish_async(**kwargs):
    return await database_sync_to_async(publish)(**kwargs)


async def test_anonymous_is_refused():
    connected, code = await (await socket("/ws/activity/")).connect()
    assert not connected and code == CLOSE_UNAUTHENTICATED


async def test_foreign_origin_is_refused(operator):
    communicator = await socket("/ws/activity/", operator, origin=(b"origin", b"http://evil.example"))
    connected, _ = await communicator.connect()
    assert not connected


async def test_missing_origin_is_refused(operator):
    connected, _ = await (await socket("/ws/activity/", operator, origin=None)).connect()
    assert not connected


async def test_operator_receives_published_event_as_fragment(operator):
    communicator = await socket("/ws/activity/", operator)
    connected, _ = await communicator.connect()
    assert connected
    event = await publish_async(kind="system.announcement", message="hello fleet")
    html = await communicator.receive_from(timeout=3)
    assert '<ul id="event-list" hx-swap-oob="afterbegin">' in html
    assert f'id="event-{event.pk}"' in html and "hello fleet" in html
    assert f'<span id="event-cursor" data-last="{event.pk}" data-events="{event.pk}" hx-swap-oob="true"' in html
    await communicator.disconnect()


async def test_tenant_admin_may_not_join_another_tenants_group(tenant_admin, other_tenant):
    connected, code = await (await socket(f"/ws/tenants/{other_tenant.pk}/", tenant_admin)).connect()
    assert not connected and code == CLOSE_FORBIDDEN


async def test_unknown_tenant_is_refused_like_a_forbidden_one(tenant_admin):
    connected, code = await (await socket("/ws/tenants/999999/", tenant_admin)).connect()
    assert not connected and code == CLOSE_FORBIDDEN


async def test_tenant_stream_carries_only_that_tenants_events(tenant_admin, tenant, other_tenant):
    communicator = await socket(f"/ws/tenants/{tenant.pk}/", tenant_admin)
    assert (await communicator.connect())[0]
    await publish_async(kind="system.notice", message="fleet only")
    await publish_async(kind="tenant.notice", message="globex only", tenant=other_tenant)
    await publish_async(kind="tenant.notice", message="acme news", tenant=tenant)
    html = await communicator.receive_from(timeout=3)
    assert "acme news" in html
    assert await communicator.receive_nothing(timeout=0.3)
    await communicator.disconnect()


async def test_tenant_admin_activity_stream_is_scoped(tenant_admin, tenant, other_tenant):
    communicator = await socket("/ws/activity/", tenant_admin)
    assert (await communicator.connect())[0]
    await publish_async(kind="system.notice", message="fleet only")
    await publish_async(kind="tenant.notice", message="globex only", tenant=other_tenant)
    assert await communicator.receive_nothing(timeout=0.3)
    await publish_async(kind="tenant.notice", message="acme news", tenant=tenant)
    assert "acme news" in await communicator.receive_from(timeout=3)
    await communicator.disconnect()


async def test_reconnect_replays_what_was_missed_once(operator):
    seen = await publish_async(kind="system.notice", message="already shown")
    missed_1 = await publish_async(kind="system.notice", message="missed one")
    missed_2 = await publish_async(kind="system.notice", message="missed two")
    communicator = await socket(f"/ws/activity/?after={seen.pk}", operator)
    assert (await communicator.connect())[0]
    first, second = await communicator.receive_from(timeout=3), await communicator.receive_from(timeout=3)
    assert "missed one" in first and "missed two" in second
    assert f'data-last="{missed_2.pk}"' in second
    # The same event arriving live after its replay is not sent again.
    await get_channel_layer().group_send(FLEET_GROUP, {"type": "event.message", "id": missed_1.pk})
    assert await communicator.receive_nothing(timeout=0.3)
    live = await publish_async(kind="system.notice", message="live now")
    assert f'id="event-{live.pk}"' in await communicator.receive_from(timeout=3)
    await communicator.disconnect()


async def test_replay_respects_the_policy(tenant_admin, tenant, other_tenant):
    await publish_async(kind="tenant.notice", message="globex secret", tenant=other_tenant)
    await publish_async(kind="tenant.notice", message="acme replayed", tenant=tenant)
    communicator = await socket("/ws/activity/?after=0", tenant_admin)
    assert (await communicator.connect())[0]
    assert "acme replayed" in await communicator.receive_from(timeout=3)
    assert await communicator.receive_nothing(timeout=0.3)
    await communicator.disconnect()


async def test_a_burst_on_one_subject_arrives_coalesced_and_complete(operator):
    import time

    communicator = await socket("/ws/activity/", operator)
    assert (await communicator.connect())[0]
    burst = [await publish_async(kind="cluster.status_changed", message=f"flap {i}", subject_type="cluster", subject_id=7)
             for i in range(5)]
    first = await communicator.receive_from(timeout=3)
    assert "flap 0" in first and f'data-events="{burst[0].pk}"' in first
    began = time.monotonic()
    batch = await communicator.receive_from(timeout=3)
    assert time.monotonic() - began > 0.5, "the rest of the burst was not held back"
    # One message for the rest of the second, every line in it, the cursor on the newest.
    assert all(f"flap {i}" in batch for i in range(1, 5))
    assert f'data-last="{burst[-1].pk}" data-events="{" ".join(str(e.pk) for e in burst[1:])}"' in batch
    assert await communicator.receive_nothing(timeout=0.3)
    # Another subject is not held back by this one.
    other = await publish_async(kind="cluster.status_changed", message="elsewhere", subject_type="cluster", subject_id=8)
    assert f'data-events="{other.pk}"' in await communicator.receive_from(timeout=0.5)
    await communicator.disconnect()


async def test_pages_of_one_audience_share_one_render(operator, monkeypatch):
    from pksweb.consumers import ActivityConsumer

    renders = []
    original = ActivityConsumer.render

    def counting(self, event):
        renders.append(event.pk)
        return original(self, event)

    monkeypatch.setattr(ActivityConsumer, "render", counting)
    pages = [await socket("/ws/activity/", operator) for _ in range(5)]
    for page in pages:
        assert (await page.connect())[0]
    event = await publish_async(kind="system.announcement", message="to everyone")
    for page in pages:
        assert f'data-events="{event.pk}"' in await page.receive_from(timeout=3)
        await page.disconnect()
    assert renders == [event.pk]


async def _closed_within(communicator, seconds: float) -> int:
    import time

    deadline = time.monotonic() + seconds
    while True:  # events the change itself published may come first
        output = await communicator.receive_output(timeout=max(0.01, deadline - time.monotonic()))
        if output["type"] == "websocket.close":
            return output["code"]


async def test_a_revoked_role_stops_the_stream_within_seconds(operator, tenant):
    from pksweb.choices import Role
    from pksweb.models import User
    from tenants.services import membership_add

    communicator = await socket("/ws/fleet/", operator)
    assert (await communicator.connect())[0]

    def demote():
        User.objects.filter(pk=operator.pk).update(role=Role.TENANT_ADMIN)
        membership_add(tenant=tenant, user=User.objects.get(pk=operator.pk), role="admin")

    await database_sync_to_async(demote)()
    assert await _closed_within(communicator, 5) == CLOSE_FORBIDDEN


async def test_signing_out_stops_the_stream_within_seconds(operator):
    from django.contrib.sessions.models import Session

    communicator = await socket("/ws/activity/", operator)
    assert (await communicator.connect())[0]
    await database_sync_to_async(lambda: Session.objects.all().delete())()
    assert await _closed_within(communicator, 5) == CLOSE_FORBIDDEN


async def test_a_role_change_that_still_allows_the_page_keeps_it_open_and_renders_for_the_new_role(operator):
    from pksweb.choices import Role
    from pksweb.models import User

    communicator = await socket("/ws/activity/", operator)
    assert (await communicator.connect())[0]
    await database_sync_to_async(lambda: User.objects.filter(pk=operator.pk).update(role=Role.VIEWER))()
    assert await communicator.receive_nothing(timeout=3)  # still open after a re-check
    event = await publish_async(kind="system.announcement", message="still here")
    assert f'data-events="{event.pk}"' in await communicator.receive_from(timeout=3)
    await communicator.disconnect()


async def test_an_open_page_catches_up_on_an_event_whose_push_was_lost(operator, settings, monkeypatch):
    """Redis was down when the event was published (the push is dropped): the process's fan-out finds it in the
    database and the open page receives it once, without reconnecting. A page that opened later does not."""
    from pksweb import events

    settings.PKSWEB_LIVE_CATCH_UP_SECONDS = 0.2
    settings.PKSWEB_LIVE_CATCH_UP_GRACE_SECONDS = 0
    early = await socket("/ws/activity/", operator)
    assert (await early.connect())[0]
    monkeypatch.setattr(events, "_push", lambda event_id, groups: None)
    lost = await publish_async(kind="system.announcement", message="published while Redis was down")
    late = await socket(f"/ws/activity/?after={lost.pk}", operator)  # rendered after the event: it is in the page
    assert (await late.connect())[0]
    html = await early.receive_from(timeout=3)
    assert f'id="event-{lost.pk}"' in html and "published while Redis was down" in html
    assert await early.receive_nothing(timeout=0.6)  # once, though the fan-out looks again
    assert await late.receive_nothing(timeout=0.1)
    await early.disconnect()
    await late.disconnect()


# ---- what a reconnecting page is replayed -----------------------------------------------------

def _bulk_events(count: int, **fields) -> list:
    from pksweb.models import Event

    return Event.objects.bulk_create([Event(kind="system.notice", message=f"missed {i}", **fields) for i in range(count)])


async def _close_code(communicator) -> int:
    output = await communicator.receive_output(timeout=3)
    assert output["type"] == "websocket.close", output
    return output["code"]


async def test_a_page_that_missed_more_than_a_replay_carries_is_told_to_reload(operator):
    from pksweb.consumers import CLOSE_STALE
    from pksweb.selectors import REPLAY_LIMIT

    seen = await publish_async(kind="system.notice", message="already shown")
    await database_sync_to_async(_bulk_events)(REPLAY_LIMIT + 1)
    communicator = await socket(f"/ws/activity/?after={seen.pk}", operator)
    assert (await communicator.connect())[0]
    notice = await communicator.receive_from(timeout=3)
    assert notice.startswith('<span class="badge" id="live-status" data-state="stale" hx-swap-oob="true"')
    assert "event-cursor" not in notice  # the page's cursor stays where it was: it has not caught up
    assert await _close_code(communicator) == CLOSE_STALE  # nothing replayed after it


async def test_up_to_the_limit_is_replayed_oldest_first_and_one_more_means_reload(operator, monkeypatch):
    from pksweb import selectors
    from pksweb.consumers import CLOSE_STALE

    monkeypatch.setattr(selectors, "REPLAY_LIMIT", 4)
    seen = await publish_async(kind="system.notice", message="already shown")
    missed = [await publish_async(kind="system.notice", message=f"missed {i}") for i in range(4)]
    communicator = await socket(f"/ws/activity/?after={seen.pk}", operator)
    assert (await communicator.connect())[0]
    for event in missed:
        html = await communicator.receive_from(timeout=3)
        assert f'id="event-{event.pk}"' in html and f'data-last="{event.pk}"' in html
    assert await communicator.receive_nothing(timeout=0.3)
    await communicator.disconnect()

    await publish_async(kind="system.notice", message="one too many")
    again = await socket(f"/ws/activity/?after={seen.pk}", operator)
    assert (await again.connect())[0]
    assert 'data-state="stale"' in await again.receive_from(timeout=3)
    assert await _close_code(again) == CLOSE_STALE


async def test_a_socket_without_a_cursor_starts_live(operator):
    """It has shown nothing to catch up from: the fleet's history is not replayed at it."""
    await publish_async(kind="system.notice", message="old news")
    for query in ("", "?after=", "?after=abc"):
        communicator = await socket(f"/ws/activity/{query}", operator)
        assert (await communicator.connect())[0]
        assert await communicator.receive_nothing(timeout=0.3)
        await communicator.disconnect()


async def test_the_cursor_never_moves_back_for_an_event_committed_late(operator):
    """An event whose id is below the page's cursor (its transaction committed after the page was drawn) is
    shown, but the page's cursor stays where it was: moving it back would replay what the page has."""
    late = await publish_async(kind="system.notice", message="committed late")
    newer = await publish_async(kind="system.notice", message="drawn in the page")
    communicator = await socket(f"/ws/activity/?after={newer.pk}", operator)
    assert (await communicator.connect())[0]
    await get_channel_layer().group_send(FLEET_GROUP, {"type": "event.message", "id": late.pk, "group": FLEET_GROUP})
    html = await communicator.receive_from(timeout=3)
    assert f'id="event-{late.pk}"' in html and f'data-last="{newer.pk}" data-events="{late.pk}"' in html
    await communicator.disconnect()


async def test_an_announcement_for_everyone_reaches_tenant_admins_live_and_on_replay(tenant_admin, tenant, other_tenant, operator):
    """Found by the hostile review: an announcement posted for everyone reached the platform team only."""
    from pksweb.selectors import event_list
    from pksweb.services import announcement_post

    communicator = await socket("/ws/activity/", tenant_admin)
    assert (await communicator.connect())[0]
    await database_sync_to_async(announcement_post)(author=operator, message="maintenance tonight for everyone")
    assert "maintenance tonight for everyone" in await communicator.receive_from(timeout=3)
    await database_sync_to_async(announcement_post)(author=operator, message="only for globex", tenant=other_tenant)
    await publish_async(kind="system.notice", message="fleet business")
    assert await communicator.receive_nothing(timeout=0.3)
    await communicator.disconnect()
    seen = await database_sync_to_async(lambda: [e.message for e in event_list(user=tenant_admin)])()
    assert "maintenance tonight for everyone" in seen and "only for globex" not in seen and "fleet business" not in seen
    replayed = await socket("/ws/activity/?after=0", tenant_admin)
    assert (await replayed.connect())[0]
    assert "maintenance tonight for everyone" in await replayed.receive_from(timeout=3)
    await replayed.disconnect()
