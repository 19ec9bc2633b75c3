"""A production-shaped pksweb: PostgreSQL, Redis, a `celery worker` and an ASGI server.

Each test session gets its own database and its own queue/channel prefix, so it
never touches anything else on the shared services.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import psycopg
import pytest
import redis
from cryptography.fernet import Fernet

from tests.support.net import free_port
from tests.support.waits import require_service

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
PG_URL = os.environ.get("PKSWEB_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("PKSWEB_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
PASSWORD = "integration-passphrase-1"


@dataclass
class Stack:
    url: str
    env: dict[str, str]
    queue: str
    logs: Path

    def manage(self, *args: str, stdin: str | None = None) -> str:
        result = subprocess.run(
            [sys.executable, "manage.py", *args], cwd=ROOT, env=self.env, input=stdin,
            capture_output=True, text=True, timeout=120,
        )
        assert result.returncode == 0, f"manage.py {' '.join(args)} failed:\n{result.stderr}"
        return result.stdout

    def log_tail(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text()[-3000:]}" for p in sorted(self.logs.glob("*.log")))


def _services_up() -> None:
    try:
        psycopg.connect(PG_URL, connect_timeout=3).close()
    except psycopg.Error as exc:
        require_service("PostgreSQL", f"start it on 127.0.0.1:5432 with trust auth ({exc.__class__.__name__}: {exc})")
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3).ping()
    except redis.RedisError as exc:
        require_service("Redis", f"start redis-server on 127.0.0.1:6379 ({exc})")


def _wait_http(url: str, proc: subprocess.Popen[bytes], stack: Stack, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"server exited with {proc.returncode}\n{stack.log_tail()}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    pytest.fail(f"{url} did not answer within {seconds}s\n{stack.log_tail()}")


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    yield from make_stack(tmp_path_factory.mktemp("stack"), with_worker=True)


def make_stack(tmp: Path, *, with_worker: bool, **extra_env: str) -> Iterator[Stack]:
    """A fresh database, migrated; an ASGI server; and (``with_worker``) a celery worker."""
    _services_up()
    tag = uuid.uuid4().hex[:10]
    database = f"pksweb_it_{tag}"
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{database}"')
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("PKSWEB_", "DATABASE_URL", "REDIS_URL"))},
        "PKSWEB_MODE": "production",
        "PKSWEB_SECRET_KEY": uuid.uuid4().hex * 2,
        "PKSWEB_CREDENTIAL_KEYS": Fernet.generate_key().decode(),
        "DATABASE_URL": PG_URL.rsplit("/", 1)[0] + f"/{database}",
        "REDIS_URL": REDIS_URL,
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "PKSWEB_SECURE_COOKIES": "0",
        "PKSWEB_CELERY_QUEUE": f"pksweb-it-{tag}",
        "PKSWEB_CHANNEL_PREFIX": f"pksweb-it-{tag}",
        "PKSWEB_STATIC_ROOT": str(tmp / "static"),
        "PYTHONUNBUFFERED": "1",
        **extra_env,
    }
    stack = Stack(url=f"http://127.0.0.1:{port}", env=env, queue=env["PKSWEB_CELERY_QUEUE"], logs=tmp)
    procs: list[subprocess.Popen[bytes]] = []
    try:
        stack.manage("migrate", "--noinput")
        stack.manage("collectstatic", "--noinput")
        stack.manage("createuser", "itop", "--role", "operator", "--password-stdin", stdin=PASSWORD + "\n")
        # The process commands the README gives for production.
        worker_cmd = [str(BIN / "celery"), "-A", "pksweb", "worker", "--loglevel", "INFO", "--pool", "solo",
                      "-Q", stack.queue, "-n", f"it-{tag}@%h", "--without-mingle", "--without-gossip"]
        server_cmd = [str(BIN / "uvicorn"), "pksweb.asgi:application", "--host", "127.0.0.1", "--port", str(port)]
        for name, cmd in ((("worker", worker_cmd),) if with_worker else ()) + (("server", server_cmd),):
            log = open(tmp / f"{name}.log", "wb")  # noqa: SIM115 - closed with the process
            procs.append(subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT))
        _wait_http(stack.url + "/healthz", procs[-1], stack)
        yield stack
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
        with psycopg.connect(PG_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


# ---- a Redis of a test's own, to kill and restart --------------------------------------


def start_redis(port: int, tmp) -> subprocess.Popen:
    """A Redis of this test's own (no persistence, as a restarted cache loses what it held)."""
    proc = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                             "--dir", str(tmp)], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return proc
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError(f"redis-server did not start on port {port}")


@pytest.fixture(scope="module")
def own_redis(tmp_path_factory):
    if shutil.which("redis-server") is None:
        require_service("redis-server", "install Debian's redis-server package (the Redis restart test starts one of its own)")
    folder = tmp_path_factory.mktemp("own-redis")
    port = free_port()
    state = {"port": port, "proc": start_redis(port, folder), "dir": folder}
    yield state
    state["proc"].kill()
    state["proc"].wait(10)


