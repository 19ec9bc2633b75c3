"""The event path end to end in the production shape.

A task run by a real `celery worker` process publishes an event; a websocket
client connected to a real ASGI server process receives the rendered fragment
through Redis. A client that was away replays what it missed from PostgreSQL.
"""

from __future__ import annotations

import re
import time
import uuid

import httpx
import pytest
from celery import Celery

from tests.support.stack import PASSWORD, Stack

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def session(stack: Stack) -> httpx.Client:
    return stack.login("itop", PASSWORD)  # it checks the sign-in answered 302


def send_announce(stack: Stack, author_id: int, message: str) -> None:
    app = Celery(broker=stack.env["REDIS_URL"])
    app.send_task("pksweb.tasks.announce", kwargs={"author_id": author_id, "message": message}, queue=stack.queue)
    app.close()


def open_socket(stack: Stack, session: httpx.Client, after: int | None = None):
    return stack.websocket("/ws/activity/" + (f"?after={after}" if after is not None else ""), session)


def test_ready_in_production_shape(stack: Stack):
    response = httpx.get(stack.url + "/readyz", timeout=10)
    assert response.status_code == 200, response.text
    assert response.json()["checks"] == {"database": "ok", "channel_layer": "ok", "broker": "ok"}


def test_worker_event_reaches_open_socket_then_replays_after_reconnect(stack: Stack, session: httpx.Client):
    me = session.get("/api/me/").json()
    first = f"from the worker {uuid.uuid4().hex[:8]}"
    latest = session.get("/api/events/", params={"limit": 1}).json()["results"][0]["id"]
    with open_socket(stack, session, after=latest) as ws:
        time.sleep(0.5)  # let the consumer join its group before the worker publishes
        send_announce(stack, me["id"], first)
        fragment = ws.recv(timeout=30)
    assert first in fragment, stack.log_tail()
    assert 'hx-swap-oob="afterbegin"' in fragment
    cursor = int(re.search(r'data-last="(\d+)"', fragment).group(1))

    # Away from the page: the worker publishes, nobody is connected to receive it.
    missed = f"while you were away {uuid.uuid4().hex[:8]}"
    send_announce(stack, me["id"], missed)
    deadline = time.monotonic() + 30
    while not session.get("/api/events/", params={"after": cursor}).json()["results"]:
        assert time.monotonic() < deadline, "the worker never stored the event\n" + stack.log_tail()
        time.sleep(0.2)

    with open_socket(stack, session, after=cursor) as ws:
        replayed = ws.recv(timeout=10)
    assert missed in replayed and first not in replayed


def test_websocket_without_session_is_refused(stack: Stack):
    from websockets.exceptions import InvalidStatus

    with pytest.raises(InvalidStatus) as exc:
        stack.websocket("/ws/activity/")
    assert exc.value.response.status_code == 403


@pytest.mark.parametrize("path", ["/ws/nope/", "/ws/", "/ws/clusters/abc/"])
def test_an_unknown_websocket_path_is_closed_with_4404_through_a_real_server(stack: Stack, session: httpx.Client, path):
    """Through uvicorn, not only in process: a close before the handshake would reach the client as HTTP 403."""
    from websockets.exceptions import ConnectionClosed

    with stack.websocket(path, session) as socket:
        with pytest.raises(ConnectionClosed) as closed:
            socket.recv(timeout=5)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4404
