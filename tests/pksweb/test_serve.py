"""``manage.py serve`` (what ``make run`` runs) with its embedded sandbox fleet: a taken port
(PKSWEB_SANDBOX_PORT) moves the fleet elsewhere, says where, and the dashboard serves."""

from __future__ import annotations

import io
import os
import queue
import re
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
import yaml
from kubernetes import client, config

from pksweb.management.commands.serve import Command
from tests.support.net import free_port

ROOT = Path(__file__).resolve().parents[2]


def test_serve_moves_the_sandbox_fleet_off_a_taken_port(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PKSWEB_", "DATABASE_URL", "REDIS_URL"))}
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        env.update({"PKSWEB_DATA_DIR": str(tmp_path), "PYTHONUNBUFFERED": "1", "PKSWEB_SANDBOX_CLUSTERS": "1",
                    "PKSWEB_SANDBOX_PORT": str(busy)})
        subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v0"], cwd=ROOT, env=env, check=True, timeout=120)
        web = free_port()
        proc = subprocess.Popen([sys.executable, "manage.py", "serve", "--port", str(web)], cwd=ROOT, env=env, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout], daemon=True).start()  # type: ignore[union-attr]
        try:
            started, said = time.monotonic(), []
            while not any("pksweb is serving on" in line for line in said):
                assert proc.poll() is None, "".join(said)
                assert time.monotonic() - started < 25, "".join(said)  # it used to hang 30 s and die
                try:
                    said.append(lines.get(timeout=0.5))
                except queue.Empty:
                    pass
            text = "".join(said)
            assert f"Port {busy} for the sandbox fleet is not free" in text and "PKSWEB_SANDBOX_PORT" in text
            moved = re.search(r"sandbox fleet: 1 clusters on https://127\.0\.0\.1:(\d+)/c/<name>", text)
            assert moved and int(moved.group(1)) != busy, text
            kubeconfig = yaml.safe_load((tmp_path / "sandbox" / "sandbox-1.kubeconfig").read_text())
            assert kubeconfig["clusters"][0]["cluster"]["server"] == f"https://127.0.0.1:{moved.group(1)}/c/sandbox-1"
            nodes = client.CoreV1Api(config.new_client_from_config_dict(kubeconfig)).list_node().items
            assert len(nodes) == 5
            deadline = time.monotonic() + 20
            while True:
                try:
                    if httpx.get(f"http://127.0.0.1:{web}/healthz", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                assert time.monotonic() < deadline and proc.poll() is None, "the dashboard did not serve"
                time.sleep(0.2)
        finally:
            proc.terminate()
            proc.wait(15)


def test_serve_goes_on_without_the_fleet_when_it_cannot_listen_at_all(monkeypatch):
    from sandbox import Sandbox

    def refuse(self):
        raise OSError(98, "Address already in use")

    monkeypatch.setattr(Sandbox, "start", refuse)
    out = io.StringIO()
    assert Command(stdout=out)._start_sandbox(1, free_port()) is None
    assert "serving the fleet on another port" in out.getvalue() and "serving without it" in out.getvalue()


def test_sandbox_start_reports_a_taken_port_at_once_and_can_try_another():
    from sandbox import Sandbox

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        sandbox = Sandbox(port=taken.getsockname()[1], tls=False)
        cluster = sandbox.add_cluster("moving", nodes=1, pods_per_node=0)
        started = time.monotonic()
        with pytest.raises(OSError):
            sandbox.start()
        assert time.monotonic() - started < 5
        sandbox.port = 0
        with sandbox:
            assert sandbox.port != taken.getsockname()[1]
            assert httpx.get(f"{sandbox.url}/c/moving/version").json()["gitVersion"] == "v1.30.4"
            cluster.upgrade_node("moving-cp-1", "1.31.2", delay=0.05)  # timers run on the loop it kept
            deadline = time.monotonic() + 5
            while cluster.server_version != "1.31.2":
                assert time.monotonic() < deadline
                time.sleep(0.05)
