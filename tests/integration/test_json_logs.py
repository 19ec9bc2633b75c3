"""In production (JSON logs, the default) every line the processes write is a JSON object with the fields pksweb's
own lines have, from start to SIGTERM: uvicorn's supervising parent and its two workers as ``python -m pksweb web``
starts them (one worker killed and replaced on the way), the Celery worker and beat; and none is longer than the
bound (pksweb.logformat), not even the lines about a 60,000-character path."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from pksweb.logformat import LINE_BYTES
from tests.support.net import free_port, wait_http
from tests.support.stack import Stack, require_services

pytestmark = pytest.mark.integration

FIELDS = {"timestamp", "level", "logger", "message", "process", "request_id", "user", "task_name", "task_id"}


def _workers(pid: int) -> list[int]:
    """uvicorn's worker processes under ``pid`` (not multiprocessing's resource tracker beside them)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat, command = (entry / "stat").read_text(), (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid and b"spawn_main" in command:
                found.append(int(entry.name))
    return found


def _wait_for(path: Path, text: str, proc: subprocess.Popen[bytes], seconds: float = 45) -> None:
    deadline = time.monotonic() + seconds
    while text not in path.read_text(errors="replace"):
        assert proc.poll() is None and time.monotonic() < deadline, f"no {text!r} in {path.name}:\n{path.read_text()[-3000:]}"
        time.sleep(0.2)


def test_every_line_of_web_worker_and_beat_is_bounded_json(tmp_path, caplog):
    require_services()
    caplog.set_level(logging.WARNING, logger="httpx")  # its line for the long path would fill a failure's report
    with Stack("jsonlogs", tmp_path, log_level="INFO") as stack:
        stack.migrate()
        port = free_port()
        env = {**stack.env, "PORT": str(port), "PKSWEB_WEB_WORKERS": "2", "PKSWEB_WEB_GRACE_SECONDS": "3",
               "PKSWEB_DATA_DIR": str(tmp_path / "data"), "PKSWEB_WORKER_CONCURRENCY": "2",
               "TMPDIR": str(tmp_path)}  # where the entrypoint writes uvicorn's log configuration
        (tmp_path / "data").mkdir()  # the image's /data: beat opens its schedule file there before making the folder
        out = {role: tmp_path / f"{role}.out" for role in ("web", "worker", "beat")}
        procs = {}
        for role, path in out.items():
            with open(path, "wb") as file:
                procs[role] = subprocess.Popen([sys.executable, "-m", "pksweb", role], cwd=tmp_path, env=env,
                                               stdout=file, stderr=subprocess.STDOUT)
            stack.procs.append(procs[role])  # stopped with the stack if the test fails on the way
        web = procs["web"]
        wait_http(f"http://127.0.0.1:{port}/healthz", web, seconds=60, explain=lambda: out["web"].read_text())
        assert httpx.get(f"http://127.0.0.1:{port}/no/such/page/", timeout=10).status_code == 404
        assert httpx.get(f"http://127.0.0.1:{port}/{'a' * 60_000}", timeout=10).status_code in (404, 414)
        _wait_for(out["worker"], "ready.", procs["worker"])
        _wait_for(out["beat"], "beat: Starting", procs["beat"])
        os.kill(_workers(web.pid)[0], signal.SIGKILL)  # uvicorn's parent says so and starts another
        _wait_for(out["web"], "died", web)
        wait_http(f"http://127.0.0.1:{port}/healthz", web, seconds=30, explain=lambda: out["web"].read_text())
        for proc in procs.values():
            proc.send_signal(signal.SIGTERM)
        for proc in procs.values():
            proc.wait(45)

    for role, path in out.items():
        lines = [line for line in path.read_bytes().decode().splitlines() if line.strip()]
        assert lines, role
        for line in lines:
            assert len(line.encode()) <= LINE_BYTES, f"{role}: a line of {len(line.encode())} bytes"
            try:
                record = json.loads(line)
            except ValueError:
                pytest.fail(f"{role} wrote a line that is not JSON: {line[:300]!r}")
            assert isinstance(record, dict) and FIELDS <= set(record), f"{role}: {line[:300]}"
    said = out["web"].read_text()
    for what in ("Uvicorn running on", "Started parent process", "Started server process", "died",
                 "Received SIGTERM", "Stopping parent process", "more characters)"):
        assert what in said, what
    assert len(list(tmp_path.glob("pksweb-uvicorn-logging-*.json"))) == 1  # in the temporary folder, one per start
    assert "celery@" in out["worker"].read_text() and "beat: Starting" in out["beat"].read_text()
