"""The channel layer of the embedded mode (``make run``).

Channels' ``InMemoryChannelLayer`` keeps its queues on the ASGI server's event
loop. In embedded mode the Celery worker runs in a thread of the same process and
publishes through ``async_to_sync``, which runs on a loop of its own: touching the
queues from there is not thread-safe and can leave a waiting consumer asleep. This
layer hands such sends to the loop its consumers live on.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

from channels.layers import InMemoryChannelLayer


class EmbeddedChannelLayer(InMemoryChannelLayer):  # type: ignore[misc]  # channels has no types
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._home: asyncio.AbstractEventLoop | None = None

    async def new_channel(self, prefix: str = "specific.") -> str:
        self._home = asyncio.get_running_loop()
        channel: str = await super().new_channel(prefix)
        return channel

    async def _on_home(self, call: Callable[..., Coroutine[Any, Any, Any]], *args: Any) -> Any:
        home = self._home
        here = asyncio.get_running_loop()
        if home is None or home is here or home.is_closed() or not home.is_running():
            return await call(*args)
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(call(*args), home))

    async def send(self, channel: str, message: dict[str, Any]) -> None:
        await self._on_home(super().send, channel, message)

    async def group_send(self, group: str, message: dict[str, Any]) -> None:
        await self._on_home(super().group_send, group, message)
