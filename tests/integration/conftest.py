"""Fixtures of the production-shaped tests: the session's stack and a Redis of a module's own.
The harness itself (Stack, make_stack, RedisServer) is in tests/support, shared with the benchmarks."""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest

from tests.support.redis_server import RedisServer
from tests.support.stack import Stack, make_stack
from tests.support.waits import require_service


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    yield from make_stack(tmp_path_factory.mktemp("stack"), with_worker=True)


@pytest.fixture(scope="module")
def own_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    if shutil.which("redis-server") is None:
        require_service("redis-server", "install Debian's redis-server package (the Redis restart test starts one of its own)")
    server = RedisServer(tmp_path_factory.mktemp("own-redis")).start()
    yield server
    server.kill()
