"""Embedded mode: a task run by a Celery worker thread inside the server process
reaches an open websocket through the in-process channel layer."""

from __future__ import annotations

import pytest
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer

from pksweb.celery import app as celery_app
from pksweb.channel_layers import EmbeddedChannelLayer
from pksweb.tasks import announce
from tests.support.sockets import socket

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.asyncio]


async def test_event_from_worker_thread_reaches_open_page(operator, celery_worker_thread):
    assert isinstance(get_channel_layer(), EmbeddedChannelLayer)
    assert celery_app.conf.broker_url.startswith("memory://")
    communicator = await socket("/ws/activity/", operator)
    assert (await communicator.connect())[0]
    await database_sync_to_async(announce.delay)(author_id=operator.pk, message="from the worker thread")
    html = await communicator.receive_from(timeout=15)
    assert "from the worker thread" in html and 'hx-swap-oob="afterbegin"' in html
    await communicator.disconnect()
