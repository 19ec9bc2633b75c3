"""``python -m pksweb ROLE``, the image's entrypoint, run as a process from another folder: it names the roles
when given none it knows, migrates under a lock that lets several pods start at once, becomes the server it
starts (same process, so SIGTERM reaches uvicorn), and empties the Prometheus folder before a server starts."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psycopg
import pytest

from pksweb.__main__ import MIGRATE_LOCK_KEY, NUMBERS, ROLES, reset_metrics_dir
from tests.support.net import free_port
from tests.support.stack import PG_URL, Stack, base_env, require_services


def _pksweb(*args: str, env: dict[str, str], cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pksweb", *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)


@pytest.mark.parametrize("argv", [[], ["serve"], ["--web"]])
def test_an_unknown_role_exits_non_zero_naming_the_roles(argv, tmp_path):
    result = _pksweb(*argv, env=base_env(PKSWEB_DATA_DIR=str(tmp_path)), cwd=tmp_path, timeout=30)
    assert result.returncode == 2
    assert all(role in result.stderr for role in ROLES), result.stderr
    assert "usage: python -m pksweb" in result.stderr


def test_migrate_and_manage_on_sqlite(tmp_path):
    """No lock on SQLite (one writer, no concurrent pods); ``manage`` passes its arguments to Django."""
    env = base_env(PKSWEB_DATA_DIR=str(tmp_path / "data"))
    migrated = _pksweb("migrate", "--verbosity", "0", env=env, cwd=tmp_path)
    assert migrated.returncode == 0, migrated.stderr
    with sqlite3.connect(tmp_path / "data" / "pksweb.sqlite3") as db:
        assert db.execute("SELECT count(*) FROM django_migrations WHERE app = 'pksweb'").fetchone()[0] > 0
    unknown = _pksweb("manage", "no-such-command", env=env, cwd=tmp_path)
    assert unknown.returncode == 1 and "Unknown command: 'no-such-command'" in unknown.stderr


@pytest.mark.integration
def test_concurrent_migrations_wait_for_the_lock_and_both_succeed(tmp_path):
    """Two pods' init steps migrating a fresh PostgreSQL database at once: while the lock is held (here by the
    test) both wait; released, one migrates and the other then finds nothing to do. Both exit 0."""
    require_services()
    with Stack("migrate", tmp_path) as stack, psycopg.connect(PG_URL.rsplit("/", 1)[0] + f"/{stack.database}",
                                                                 autocommit=True) as holder:
        holder.execute("SELECT pg_advisory_lock(%s)", [MIGRATE_LOCK_KEY])
        procs = [subprocess.Popen([sys.executable, "-m", "pksweb", "migrate"], cwd=tmp_path, env=stack.env, text=True,
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT) for _ in range(2)]
        try:
            deadline = time.monotonic() + 60
            while _lock_waiters(holder) < 2:
                assert all(p.poll() is None for p in procs), [p.communicate()[0] for p in procs]
                assert time.monotonic() < deadline, "the migrations never waited for the lock"
                time.sleep(0.1)
            holder.execute("SELECT pg_advisory_unlock(%s)", [MIGRATE_LOCK_KEY])
            outputs = [p.communicate(timeout=120)[0] for p in procs]
        finally:
            for p in procs:
                p.kill()
        assert [p.returncode for p in procs] == [0, 0], outputs
        assert all("another process is migrating this database; waiting" in out for out in outputs), outputs
        assert sorted("No migrations to apply" in out for out in outputs) == [False, True], outputs
        applied = holder.execute("SELECT count(*), count(DISTINCT (app, name)) FROM django_migrations").fetchone()
        assert applied is not None and applied[0] == applied[1] > 0


def _lock_waiters(conn: psycopg.Connection) -> int:
    row = conn.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted "
                       "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())").fetchone()
    return int(row[0]) if row else 0


def test_web_becomes_uvicorn_and_ends_on_sigterm(tmp_path):
    """The role replaces the Python process that started it: the pid started is uvicorn's, and SIGTERM reaches
    uvicorn, which shuts down gracefully, with no parent in between."""
    port = free_port()
    env = base_env(PKSWEB_DATA_DIR=str(tmp_path), PORT=str(port), PKSWEB_WEB_WORKERS="1", PKSWEB_WEB_GRACE_SECONDS="5")
    proc = subprocess.Popen([sys.executable, "-m", "pksweb", "web", "--log-level", "info"], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, proc.communicate()[0]
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "web never answered /healthz"
            time.sleep(0.2)
        command = Path(f"/proc/{proc.pid}/cmdline").read_bytes().split(b"\0")
        assert command[1:4] == [b"-m", b"uvicorn", b"pksweb.asgi:application"], command
        assert [b"--host", b"0.0.0.0"] == command[4:6] and b"--proxy-headers" in command, command
        proc.send_signal(signal.SIGTERM)
        status, said = proc.wait(15), proc.communicate()[0]
        # uvicorn shuts down, then raises the signal again for its parent to see (-15); PID 1 in a container ignores that.
        assert "Finished server process" in said and status in (0, -signal.SIGTERM), (status, said)
    finally:
        proc.kill()
        proc.wait()


def test_the_metrics_folder_starts_empty(tmp_path, monkeypatch):
    folder = tmp_path / "metrics"
    (folder / "old").mkdir(parents=True)
    (folder / "old" / "counter_1.db").write_text("x")
    (folder / "gauge_all_7.db").write_text("x")
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(folder))
    reset_metrics_dir()
    assert folder.is_dir() and list(folder.iterdir()) == []
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path / "new" / "metrics"))
    reset_metrics_dir()
    assert (tmp_path / "new" / "metrics").is_dir()


def test_a_command_makes_a_missing_metrics_folder(tmp_path):
    """``manage`` in a new container (or beat, or an exec into a pod) has PROMETHEUS_MULTIPROC_DIR set but was not
    prepared by the entrypoint: it makes the folder rather than fail on the first figure without labels."""
    folder = tmp_path / "not-yet" / "metrics"
    env = base_env(PKSWEB_DATA_DIR=str(tmp_path / "data"), PROMETHEUS_MULTIPROC_DIR=str(folder))
    result = _pksweb("manage", "check", env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert folder.is_dir()


@pytest.mark.parametrize("role", ["web", "worker", "beat", "migrate", "manage"])
def test_a_role_with_an_incomplete_configuration_exits_in_one_line(role, tmp_path):
    """Production without its variables: one line naming what is missing, exit 1, at once. uvicorn's parent used
    to restart children dying of it forever (a pod that looks alive)."""
    env = base_env(PKSWEB_MODE="production", PKSWEB_DATA_DIR=str(tmp_path))
    began = time.monotonic()
    result = _pksweb(role, *(["check"] if role == "manage" else []), env=env, cwd=tmp_path, timeout=60)
    assert result.returncode == 1, result.stderr
    assert result.stderr.strip().splitlines() == [
        f"pksweb {role}: the configuration is incomplete: PKSWEB_SECRET_KEY is required when PKSWEB_MODE=production: "
        "set it to a long random string, e.g. from `python -c 'import secrets; print(secrets.token_urlsafe(50))'`."]
    assert time.monotonic() - began < 30


def test_migrate_waits_for_the_database_then_says_why_in_a_line(tmp_path):
    env = base_env(PKSWEB_DATA_DIR=str(tmp_path), DATABASE_URL=f"postgresql://postgres@127.0.0.1:{free_port()}/nothing",
                   PKSWEB_MIGRATE_WAIT_SECONDS="2")
    result = _pksweb("migrate", env=env, cwd=tmp_path, timeout=60)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith("pksweb migrate: the database did not answer: ") and "Traceback" not in result.stderr
    assert any(line.startswith("pksweb migrate: waiting for the database (") for line in lines[:-1]), lines


@pytest.mark.parametrize(("variable", "value"), [("PORT", "abc"), ("PORT", "99999"), ("PKSWEB_WEB_WORKERS", "two"),
                                                 ("PKSWEB_WORKER_CONCURRENCY", "0"), ("PKSWEB_MIGRATE_WAIT_SECONDS", "x"),
                                                 ("PKSWEB_WEB_GRACE_SECONDS", "-1")])
def test_the_entrypoints_numbers_are_checked_before_anything_starts(variable, value, tmp_path):
    env = base_env(PKSWEB_DATA_DIR=str(tmp_path), **{variable: value})
    result = _pksweb("web", env=env, cwd=tmp_path, timeout=60)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"pksweb web: the configuration is incomplete: {variable}={value!r} is not a whole number from "
        f"{NUMBERS[variable][1]} to {NUMBERS[variable][2]}: use e.g. {NUMBERS[variable][0]}."]
