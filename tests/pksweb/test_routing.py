"""Websocket routes: an unknown path or a malformed cursor is answered with a close code, never an exception."""

from __future__ import annotations

import asyncio
import re
import string

import pytest
from channels.testing import WebsocketCommunicator
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pksweb.asgi import application
from pksweb.consumers import CLOSE_FORBIDDEN, CLOSE_NOT_FOUND, CLOSE_UNAUTHENTICATED
from tests.support.sockets import ORIGIN, session_cookie

pytestmark = pytest.mark.django_db(transaction=True)

# What the pages use (pksweb.routing), written out as the rule a test holds it to.
KNOWN = re.compile(r"/ws/(fleet|activity)/|/ws/(clusters|tenants|rollouts)/[0-9]{1,18}/")
PAGE_WIDE = re.compile(r"/ws/(fleet|activity)/")


async def _outcome(path: str, cookie: bytes | None, query: str = "") -> tuple[bool, int | None]:
    headers = [ORIGIN, (b"host", b"localhost")] + ([(b"cookie", cookie)] if cookie else [])
    communicator = WebsocketCommunicator(application, path + (f"?{query}" if query else ""), headers=headers)
    connected, code = await communicator.connect(timeout=5)
    if connected:
        # Accepted, then closed at once: what a client sees is the close code. (Peek: receive_output's
        # timeout would cancel a page that stays open.)
        await asyncio.sleep(0.05)
        first = communicator.output_queue.get_nowait() if not communicator.output_queue.empty() else None
        if first is not None and first["type"] == "websocket.close":
            return False, first.get("code")
        await communicator.disconnect()
    return connected, code


@pytest.mark.asyncio
@pytest.mark.parametrize("path", ["/", "/ws/", "/ws/nope/", "/ws/fleet", "/ws/fleet/x/", "/ws/clusters/abc/",
                                  "/ws/clusters/1/extra/", "/ws/tenants/-1/", "/ws/rollouts/1.5/", "/ws/clusters/1%2F/",
                                  "/ws/clusters/9999999999999999999/", "/ws/tenants/" + "9" * 5000 + "/",
                                  "/ws/clusters/\u0661/", "/static/pksweb/live.js", "/ws/activity/\x00/"])
@pytest.mark.parametrize("who", ["anonymous", "operator"])
async def test_an_unknown_websocket_path_is_closed_with_4404(path, who, operator):
    from channels.db import database_sync_to_async

    cookie = await database_sync_to_async(session_cookie)(operator) if who == "operator" else None
    assert await _outcome(path, cookie) == (False, CLOSE_NOT_FOUND)


PATH_TEXT = st.text(alphabet=st.sampled_from(string.ascii_letters + string.digits + "/._-%~")
                    | st.characters(blacklist_characters="?#"), max_size=25)
PATHS = st.one_of(
    st.builds(lambda prefix, tail: prefix + tail,
              st.sampled_from(["/", "/ws/", "/ws/fleet/", "/ws/activity/", "/ws/clusters/", "/ws/tenants/", "/ws/rollouts/"]),
              PATH_TEXT),
    st.builds(lambda kind, number, end: f"/ws/{kind}/{number}{end}", st.sampled_from(["clusters", "tenants", "rollouts"]),
              st.integers(min_value=0, max_value=10**25), st.sampled_from(["/", "", "//", "/x/"])),
)
CURSORS = st.one_of(st.none(), st.integers(min_value=-10, max_value=10**30).map(str), st.text(max_size=30),
                    st.sampled_from(["\u00b2", "\u0663", "1e5", "0x10", " 7", "+7", "9" * 5000, "%FF%FE"]))


@given(path=PATHS, cursor=CURSORS, signed_in=st.booleans())
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_any_path_and_cursor_get_a_close_code_or_a_page(operator, path, cursor, signed_in):
    """Whatever a browser or a script asks for: a known page opens (or is refused as today: 4401 for anonymous
    users, 4403 for a subject that is not there), anything else is closed with 4404; nothing raises."""
    from urllib.parse import quote, unquote, urlparse

    cookie = session_cookie(operator) if signed_in else None
    query = f"after={quote(cursor)}" if cursor is not None else ""
    connected, code = asyncio.run(_outcome(path, cookie, query))
    # The path a server hands the application: percent-escapes decoded and, as the test communicator parses it,
    # without the ";params" of its last segment.
    path = unquote(urlparse(path).path)
    if not KNOWN.fullmatch(path):
        assert (connected, code) == (False, CLOSE_NOT_FOUND)
    elif not signed_in:
        assert (connected, code) == (False, CLOSE_UNAUTHENTICATED)
    elif PAGE_WIDE.fullmatch(path):
        assert connected
    else:
        assert (connected, code) == (False, CLOSE_FORBIDDEN)  # no cluster, tenant or rollout of that id exists
