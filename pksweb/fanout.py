"""Process-local fan-out: one channel-layer subscription per group per process.

With a subscription per socket, one event watched by 500 pages costs 500 messages out
of Redis, 500 decodes and 500 dispatches in the ASGI process. Here the process joins
each group once, on one channel of its own, and hands every message to the sockets of
this process that watch the group (each socket keeps its own order in its inbox).
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from channels.layers import get_channel_layer

log = logging.getLogger(__name__)
T = TypeVar("T")


class Member(Protocol):
    def deliver_local(self, message: dict[str, Any]) -> None: ...


class Fanout:
    def __init__(self) -> None:
        self.layer = get_channel_layer()
        self.channel: str | None = None
        self.members: dict[str, set[Member]] = {}
        self.pump: asyncio.Task | None = None
        self.lock = asyncio.Lock()

    async def join(self, group: str, member: Member) -> None:
        async with self.lock:
            if self.channel is None:
                self.channel = await self.layer.new_channel("fanout.")
                self.pump = asyncio.get_running_loop().create_task(self._pump())
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
            for member in list(self.members.get(message.get("group", ""), ())):
                member.deliver_local(message)


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
