"""Websocket consumers: live event streams rendered as htmx fragments.

One socket per page. At connect a consumer rejects anonymous users, asks the
policy which groups this user may join for this page (refusing the connection
when the page's subject is not theirs), joins them, then replays from the database
the events of those groups after the id the page last saw (``?after=<id>``), so a page
that reconnects misses nothing. When it missed more than a replay carries
(``selectors.REPLAY_LIMIT``), it is told to reload instead: patching a page that stale
would leave it wrong. A socket that names no cursor starts live, with nothing to catch
up from. Live events arrive as ids; the policy is asked per event.

Fan-out is the hot path (one event, hundreds of open pages), so consumers are async
and share work within the process: an event row is loaded once, and a fragment is
rendered once per page kind, page subject and audience (role and tenants), whoever
asks first; the others await the same result. Updates are coalesced per page: at most
one batch per subject per ``coalesce_seconds``, always ending on the latest state,
so a storm of changes cannot flood a browser. Every message carries the event ids
it accounts for (``data-events`` on the cursor), shown or superseded.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Any
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.template.loader import render_to_string
from django.utils import timezone

from pksweb import logs, metrics, policy, selectors
from pksweb.events import EVERYONE_GROUP, FLEET_GROUP, tenant_group
from pksweb.fanout import fanout, loop_local
from pksweb.models import Event
from pksweb.types import AnyUser

log = logging.getLogger(__name__)
CLOSE_UNAUTHENTICATED = 4401
CLOSE_FORBIDDEN = 4403
CLOSE_NOT_FOUND = 4404
# Like HTTP 410 Gone: what the page missed is more than a replay carries; it must reload.
CLOSE_STALE = 4410
# A page's cursor: an event id, within a bigint like every id pksweb accepts.
CURSOR = re.compile(r"[0-9]{1,18}")
# No channel of its own per socket: the process's fan-out (pksweb.fanout) hands sockets their groups' messages.
NO_CHANNEL_LAYER = "pksweb.no-channel-per-socket"
# Ids already sent on this socket, so an event that arrives both by replay and
# live (or through two groups) is sent once. Bounded: old ids cannot recur.
SENT_MEMORY = 2000
# How often a live socket re-checks that its user may still watch (role revoked, logged out).
RECHECK_SECONDS = 2.0


@dataclass(frozen=True)
class Missed:
    """What a reconnecting page missed, oldest first. ``replay_select`` chose the events to render from
    these; ``render_replayed`` may ask what else happened to a subject meanwhile."""

    events: list[Event]

    @cached_property
    def _kinds(self) -> dict[tuple[str, str], set[str]]:
        kinds: dict[tuple[str, str], set[str]] = {}
        for event in self.events:
            kinds.setdefault((event.subject_type, event.subject_id), set()).add(event.kind)
        return kinds

    def happened(self, subject_type: str, subject_id: str, kind: str) -> bool:
        """Whether an event of ``kind`` about that subject is among the missed ones."""
        return kind in self._kinds.get((subject_type, subject_id), set())


class _Shared:
    """Per event loop: event rows and rendered fragments, each computed once and awaited by all."""

    SIZE = 4096
    TTL = 60.0

    def __init__(self) -> None:
        self.entries: OrderedDict[Any, tuple[float, asyncio.Future[Any]]] = OrderedDict()

    async def get(self, key: Any, compute: Callable[[], Any]) -> Any:
        now = time.monotonic()
        entry = self.entries.get(key)
        if entry is None or now - entry[0] > self.TTL or (entry[1].done() and entry[1].exception() is not None):
            future = asyncio.get_running_loop().create_future()
            self.entries[key] = (now, future)
            while len(self.entries) > self.SIZE:
                self.entries.popitem(last=False)
            try:
                future.set_result(await database_sync_to_async(compute)())
            except Exception as exc:  # every waiter sees the failure; the next asker tries again
                future.set_exception(exc)
                future.exception()  # retrieved: no "never retrieved" warning
                raise
            return future.result()
        return await asyncio.shield(entry[1])


shared = loop_local(_Shared)


class _Guard:
    """Per event loop: every RECHECK_SECONDS, one look at the database for all open sockets —
    users still active with the same role and tenants, sessions still alive — and only the
    sockets whose user changed are re-authorized (or closed)."""

    def __init__(self) -> None:
        self.sockets: set[EventStreamConsumer] = set()
        self.task: asyncio.Task[None] | None = None

    def watch(self, socket: EventStreamConsumer) -> None:
        self.sockets.add(socket)
        if self.task is None or self.task.done():
            self.task = asyncio.get_running_loop().create_task(self._run())

    def forget(self, socket: EventStreamConsumer) -> None:
        self.sockets.discard(socket)

    async def _run(self) -> None:
        while self.sockets:
            await asyncio.sleep(RECHECK_SECONDS)
            try:
                await self.check()
            except Exception:
                log.exception("could not re-check the users of open pages; trying again")

    async def check(self) -> None:
        sockets = [s for s in self.sockets if not s.closed]
        keys = {s.user_key() for s in sockets}
        current = await database_sync_to_async(selectors.user_audiences)(keys=keys)
        for socket in sockets:
            found = current.get(socket.user_key())
            if found is None:
                await socket.revoke()
                continue
            user, audience = found
            if audience != socket.audience:
                allowed, audience = await database_sync_to_async(socket.reauthorize)(user)
                if not allowed:
                    await socket.revoke()
                    continue
                socket.scope["user"], socket.audience = user, audience


guard = loop_local(_Guard)


def _load_event(event_id: int) -> Event | None:
    return Event.objects.select_related("tenant").filter(pk=event_id).first()


class EventStreamConsumer(AsyncWebsocketConsumer):  # type: ignore[misc]  # channels has no types
    """Base: subclasses say which groups a user may watch and how events render.

    The hooks are plain (sync) methods run in a worker thread, so they may use the ORM.
    """

    tenant_id: int | None = None
    coalesce_seconds = 1.0
    channel_layer_alias = NO_CHANNEL_LAYER

    # ---- hooks ------------------------------------------------------------------------

    def watch_groups(self, user: AnyUser) -> list[str] | None:
        """Groups to join for ``user``, or None to refuse the connection.

        The base refuses everyone: a stream must say what it shows and to whom.
        """
        return None

    def render(self, event: Event) -> str | list[str]:
        """The HTML this page swaps in for ``event`` ('' to send nothing but the cursor).

        A list is sent as one message each: the browser parses each message on its own,
        and table rows parse only where a table part comes first.
        """
        return render_to_string("pksweb/_event_oob.html", {"event": event})

    def render_superseded(self, event: Event) -> str | list[str]:
        """For an event a newer one of the same subject follows in the same batch: the parts
        the newer render does not redo (by default all of it; current-state pages send less)."""
        return self.render(event)

    def replay_select(self, events: list[Event]) -> list[Event]:
        """Which missed events to render on (re)connect; pages showing current state coalesce."""
        return events

    def render_replayed(self, event: Event, missed: Missed) -> str | list[str]:
        """The HTML for ``event``, one ``replay_select`` chose from what the page ``missed`` (by default as
        if it arrived live)."""
        return self.render(event)

    def page_key(self) -> str:
        """What, besides the event and the audience, this page's fragments depend on."""
        return ""

    # ---- mechanics --------------------------------------------------------------------

    def _authorize(self, user: AnyUser) -> tuple[list[str] | None, str]:
        """(groups or None, audience key): everything policy decisions depend on, read now."""
        groups = self.watch_groups(user) if user is not None and user.is_authenticated and user.is_active else None
        return groups, selectors.audience_key(user)

    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        groups, self.audience = await database_sync_to_async(self._authorize)(user)
        if groups is None:
            await self.close(code=CLOSE_FORBIDDEN)
            return
        await self.accept()
        self.page = type(self).__name__.removesuffix("Consumer").lower()
        metrics.WEBSOCKETS_OPEN.labels(self.page).inc()
        # Lines logged for this socket (replay, sends) say whose page it is, under an id of its own.
        logs.bind(logs.Context(logs.request_id_from(None), user=user.get_username()))
        after = self._after()
        self.live_since = timezone.now()
        self.joined: list[str] = []
        self.sent: OrderedDict[int, None] = OrderedDict()
        # Never sent lower than the page's own: an event committed late arrives live with an older id.
        self.cursor = after or 0
        self.last_flush: dict[tuple[str, str], float] = {}
        self.held: dict[tuple[str, str], list[Event]] = {}
        self.timers: list[asyncio.TimerHandle] = []
        self.closed = False
        self.inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.reader = asyncio.get_running_loop().create_task(self._read_inbox())
        for group in groups:
            await fanout().join(group, self)
            self.joined.append(group)
        guard().watch(self)
        # Join first, replay second: an event committed in between arrives both
        # ways and is sent once; none falls in the gap.
        if after is not None:
            await self._replay(user, after)

    async def _replay(self, user: AnyUser, after: int) -> None:
        """What the page missed after ``after``, in its groups: sent oldest first, or, when it is more than a
        replay carries, a notice that makes the page reload (and the socket closes)."""
        replay = await database_sync_to_async(selectors.event_replay)(user=user, groups=self.joined, after=after)
        if not replay.complete:
            self.closed = True
            await self.send(text_data=await database_sync_to_async(render_to_string)(
                "pksweb/_live_stale.html", {"limit": selectors.REPLAY_LIMIT}))
            await self.close(code=CLOSE_STALE)
            return
        if not replay.events:
            return
        chosen = await database_sync_to_async(self.replay_select)(replay.events)
        # The events not rendered (superseded, or not shown on this page) still move the cursor on,
        # so the page's next reconnect does not count them again.
        shown = {event.pk for event in chosen}
        for event in replay.events:
            if event.pk not in shown:
                self._remember(event.pk)
        missed = Missed(replay.events)
        for event in sorted(chosen, key=lambda e: e.pk):
            await self._deliver([event], render=lambda chosen_event: self.render_replayed(chosen_event, missed))
        if not chosen:
            await self.send(text_data=self._cursor_html(replay.events))

    async def disconnect(self, code: int) -> None:
        self.closed = True
        if getattr(self, "page", None):
            metrics.WEBSOCKETS_OPEN.labels(self.page).dec()
            self.page = ""
        for timer in getattr(self, "timers", []):
            timer.cancel()
        guard().forget(self)
        for group in getattr(self, "joined", []):
            await fanout().leave(group, self)
        if getattr(self, "reader", None) is not None:
            self.reader.cancel()

    def deliver_local(self, message: dict[str, Any]) -> None:
        """From the process's fan-out: queue it; this socket's reader handles its messages in order."""
        self.inbox.put_nowait(message)

    async def _read_inbox(self) -> None:
        while True:
            message = await self.inbox.get()
            try:
                await self.event_message(message)
            except Exception:  # one bad event must not end the page's stream
                log.exception("could not send event %s to a page", message.get("id"))

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        """Pages only listen; anything they send is ignored."""

    async def event_message(self, message: dict[str, Any]) -> None:
        event_id = message["id"]
        if event_id in self.sent or self.closed:
            return
        event = await shared().get(("event", event_id), lambda: _load_event(event_id))
        if event is None or not policy.can(self.scope["user"], "view", event) or \
                (self.tenant_id is not None and event.tenant_id != self.tenant_id):
            return
        subject = (event.subject_type, event.subject_id)
        if subject in self.held:
            if all(held.pk != event.pk for held in self.held[subject]):
                self.held[subject].append(event)
            return
        loop = asyncio.get_running_loop()
        last = self.last_flush.get(subject)
        if last is not None and loop.time() - last < self.coalesce_seconds:
            self.held[subject] = [event]
            self.timers = [t for t in self.timers if not t.cancelled() and t.when() > loop.time()]
            self.timers.append(loop.call_at(last + self.coalesce_seconds, lambda: loop.create_task(self._flush(subject))))
            return
        self.last_flush[subject] = loop.time()
        await self._deliver([event])

    async def _flush(self, subject: tuple[str, str]) -> None:
        events = self.held.pop(subject, [])
        if events and not self.closed:
            self.last_flush[subject] = asyncio.get_running_loop().time()
            await self._deliver(events)

    def user_key(self) -> tuple[int, str]:
        session = self.scope.get("session")
        return self.scope["user"].pk, (session.session_key if session is not None else "") or ""

    async def revoke(self) -> None:
        """The user may no longer watch (signed out, deactivated, role or tenants changed so): close."""
        self.closed = True
        await self.close(code=CLOSE_FORBIDDEN)

    def reauthorize(self, user: AnyUser) -> tuple[bool, str]:
        """(still allowed, new audience) for ``user`` as loaded now; runs in a worker thread."""
        groups, audience = self._authorize(user)
        return groups is not None and sorted(groups) == sorted(self.joined), audience

    def _remember(self, event_id: int) -> None:
        self.sent[event_id] = None
        self.cursor = max(self.cursor, event_id)
        while len(self.sent) > SENT_MEMORY:
            self.sent.popitem(last=False)

    async def _rendered(self, kind: str, event: Event, render: Callable[[Event], str | list[str]], cache: bool) -> list[str]:
        if cache:
            key = (type(self).__name__, kind, self.page_key(), self.audience, event.pk)
            result = await shared().get(key, lambda: render(event))
        else:
            result = await database_sync_to_async(render)(event)
        return result if isinstance(result, list) else [result]

    async def _deliver(self, events: list[Event], render: Callable[[Event], str | list[str]] | None = None) -> None:
        """Send ``events`` (the last one rendered in full, the older ones as superseded); live events render
        through the process's shared cache, replayed ones (``render`` given) on their own."""
        cache = render is None
        events = list({e.pk: e for e in events if e.pk not in self.sent}.values())
        if not events:
            return
        *older, latest = events
        messages: list[str] = []
        for event in older:
            messages += await self._rendered("superseded", event, self.render_superseded, cache)
        messages += await self._rendered("latest", latest, render or self.render, cache)
        messages = _batched([m for m in dict.fromkeys(messages) if m]) or [""]
        for event in events:
            self._remember(event.pk)
        for message in messages[:-1]:
            await self.send(text_data=message)
        await self.send(text_data=messages[-1] + self._cursor_html(events))
        if cache:  # live, not replayed: how long after its publication the page got each event
            now = timezone.now()
            for event in events:
                metrics.EVENT_LAG.observe(max(0.0, (now - event.created_at).total_seconds()))

    def _cursor_html(self, events: list[Event]) -> str:
        """The page's cursor: the newest id it has accounted for, and the events this message accounts for."""
        ids = " ".join(str(e.pk) for e in events)
        return f'<span id="event-cursor" data-last="{self.cursor}" data-events="{ids}" hx-swap-oob="true" hidden></span>'

    def _after(self) -> int | None:
        """The page's cursor (``?after=<id>``): the newest event it has shown; None when it names none."""
        query = parse_qs(self.scope.get("query_string", b"").decode("latin-1"))
        raw = query.get("after", [""])[0]
        return int(raw) if CURSOR.fullmatch(raw) else None


TABLE_PARTS = ("<tr", "<tbody", "<thead", "<td")


def _batched(messages: list[str]) -> list[str]:
    """As few websocket messages as the browser can parse: each table part starts its own."""
    batched: list[str] = []
    for message in messages:
        table = message.lstrip().startswith(TABLE_PARTS)
        if batched and not table and not batched[-1].lstrip().startswith(TABLE_PARTS):
            batched[-1] += message
        else:
            batched.append(message)
    return batched


class UnknownRouteConsumer(AsyncWebsocketConsumer):  # type: ignore[misc]  # channels has no types
    """Any websocket path no page uses: closed with 4404, as an unknown URL is a 404, whoever asks.

    Accepted first, then closed: a close before the handshake completes reaches the client as an
    HTTP 403 (ASGI servers answer the upgrade request that way), and the code would be lost."""

    channel_layer_alias = NO_CHANNEL_LAYER

    async def connect(self) -> None:
        await self.accept()
        await self.close(code=CLOSE_NOT_FOUND)


class ActivityConsumer(EventStreamConsumer):
    """Everything the user may see: the fleet for the platform team, their tenants otherwise."""

    def watch_groups(self, user: AnyUser) -> list[str]:
        if policy.is_platform(user):
            return [FLEET_GROUP]
        return [tenant_group(tenant_id) for tenant_id in sorted(policy.tenant_ids(user))] + [EVERYONE_GROUP]
