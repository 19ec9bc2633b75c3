"""Websocket clients through the real ASGI stack, signed in as a user."""

from __future__ import annotations

from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.test import Client

from pksweb.asgi import application

ORIGIN = (b"origin", b"http://localhost")


def session_cookie(user) -> bytes:
    client = Client()
    client.force_login(user)
    return f"sessionid={client.cookies['sessionid'].value}".encode()


async def socket(path: str, user=None, origin=ORIGIN) -> WebsocketCommunicator:
    headers = [origin, (b"host", b"localhost")] if origin is not None else [(b"host", b"localhost")]
    if user is not None:
        headers.append((b"cookie", await database_sync_to_async(session_cookie)(user)))
    return WebsocketCommunicator(application, path, headers=headers)


async def admitted(communicator: WebsocketCommunicator) -> bool:
    """Whether the socket was let in: accepted and not closed at once (an unknown path is accepted,
    then closed with 4404, so that the client sees a code instead of an HTTP 403)."""
    connected, _ = await communicator.connect()
    if not connected:
        return False
    if not await communicator.receive_nothing(timeout=0.05, interval=0.01):
        output = await communicator.output_queue.get()
        if output["type"] == "websocket.close":
            return False
        communicator.output_queue.put_nowait(output)
    await communicator.disconnect()
    return True


async def closed_within(communicator: WebsocketCommunicator, seconds: float) -> int:
    """The close code the socket gets within ``seconds`` (frames sent before it are skipped)."""
    import time

    deadline = time.monotonic() + seconds
    while True:  # events the change itself published may come first
        output = await communicator.receive_output(timeout=max(0.01, deadline - time.monotonic()))
        if output["type"] == "websocket.close":
            return int(output["code"])
