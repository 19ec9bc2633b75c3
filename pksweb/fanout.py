"""Process-local fan-out: one channel-layer subscription per group per process.

With a subscription per socket, one event watched by 500 pages costs 500 messages out
of Redis, 500 decodes and 500 dispatches in the ASGI process. Here the process joins
each group once, on one channel of its own, and hands every message to the sockets of
this process that watch the group (each socket keeps its own order in its inbox).

A push can be lost: Redis was down or restarting when the worker published, and the
channel layer reconnects silently. So the fan-out also reads the database, once per
process every ``PKSWEB_LIVE_CATCH_UP_SECONDS``: recent events that were not pushed to
it are handed to the same sockets as if they had been (each socket checks
the policy and skips what it sent already). Open pages catch up without reconnecting.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections import OrderedDict
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, Protocol, TypeVar

from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings
from django.utils import timezone

from pksweb import metrics, selectors
from pksweb.events import MESSAGE_TYPE

log = logging.getLogger(__name__)
T = TypeVar("T")


class Member(Protocol):
    live_since: datetime  # when the socket started listening; older events reached it by replay

    def deliver_local(self, message: dict[str, Any]) -> None: ...


SEEN_MEMORY = 20000  # event ids pushed or caught up lately (more than a catch-up window holds)
CATCH_UP_OVERLAP = timedelta(seconds=60)  # each look re-reads this much of the last (a transaction may commit late)


class Fanout:
    def __init__(self) -> None:
        self.layer = get_channel_layer()
        self.channel: str | None = None
        self.members: dict[str, set[Member]] = {}
        self.pump: asyncio.Task[None] | None = None
        self.watchdog: asyncio.Task[None] | None = None
        self.lock = asyncio.Lock()
        self.seen: OrderedDict[int, None] = OrderedDict()
        self.looked_until = timezone.now()

    async def join(self, group: str, member: Member) -> None:
        async with self.lock:
            if self.channel is None:
                self.channel = await self.layer.new_channel("fanout.")
                self.pump = asyncio.get_running_loop().create_task(self._pump())
                self.watchdog = asyncio.get_running_loop().create_task(self._catch_up_forever())
            if group not in self.members:
                await self.layer.group_add(group, self.channel)
                self.members[group] = set()
            self.members[group].add(member)

    async def leave(self, group: str, member: Member) -> None:
        async with self.lock:
            members = self.members.get(group)
            if members is None:
                return
            members.discard(member)
            if not members:
                del self.members[group]
                await self.layer.group_discard(group, self.channel)

    async def _pump(self) -> None:
        while True:
            try:
                message = await self.layer.receive(self.channel)
            except asyncio.CancelledError:
                raise
            except Exception:  # the layer lost its connection: pages replay from the database when they reconnect
                log.exception("the channel layer failed; retrying in 1 s")
                await asyncio.sleep(1)
                continue
            self._saw(message.get("id"))
            members = list(self.members.get(message.get("group", ""), ()))
            for member in members:
                member.deliver_local(message)
            metrics.FANOUT_DELIVERIES.labels("push").inc(len(members))

    def _saw(self, event_id: Any) -> None:
        if isinstance(event_id, int):
            self.seen[event_id] = None
            while len(self.seen) > SEEN_MEMORY:
                self.seen.popitem(last=False)

    async def catch_up(self) -> int:
        """Hand the sockets every recent event of their groups that no push brought; how many deliveries."""
        if not self.members:
            return 0
        grace = timedelta(seconds=settings.PKSWEB_LIVE_CATCH_UP_GRACE_SECONDS)  # a push normally arrives well within it
        until = timezone.now() - grace
        since = self.looked_until - CATCH_UP_OVERLAP
        recent = await database_sync_to_async(selectors.event_groups_between)(since=since, until=until)
        self.looked_until = max(self.looked_until, until)
        missed = 0
        for event_id, created_at, groups in recent:
            if event_id in self.seen:
                continue
            self._saw(event_id)
            for group in groups:
                for member in list(self.members.get(group, ())):
                    if created_at >= member.live_since:  # an older one was in the page or its replay
                        missed += 1
                        member.deliver_local({"type": MESSAGE_TYPE, "id": event_id, "group": group})
        if missed:
            metrics.FANOUT_DELIVERIES.labels("catch_up").inc(missed)
            log.warning("%d events were not pushed to this process (was the channel layer down?); delivered from the database",
                        missed)
        return missed

    async def _catch_up_forever(self) -> None:
        while True:
            await asyncio.sleep(settings.PKSWEB_LIVE_CATCH_UP_SECONDS)
            try:
                await self.catch_up()
            except asyncio.CancelledError:
                raise
            except Exception:  # the database may be down too; the next round tries again
                log.exception("could not read recent events to catch open pages up")


def loop_local(factory: Callable[[], T]) -> Callable[[], T]:
    """A getter of one ``factory()`` per running event loop (a process serves its sockets on one loop;
    tests run a loop each, and futures and tasks must not cross loops)."""
    instances: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, T] = weakref.WeakKeyDictionary()

    def get() -> T:
        loop = asyncio.get_running_loop()
        if loop not in instances:
            instances[loop] = factory()
        return instances[loop]

    return get


fanout = loop_local(Fanout)
