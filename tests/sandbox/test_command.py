"""`manage.py sandbox` and the sandbox's Python API: reproducible fleets, kubeconfigs."""

from __future__ import annotations

import base64
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from django.core.management import call_command
from django.core.management.base import CommandError
from kubernetes import client, config

from sandbox import Sandbox
from tests.support.net import free_port

ROOT = Path(__file__).resolve().parents[2]


def test_same_seed_same_fleet():
    first, second = Sandbox(seed=3), Sandbox(seed=3)
    a = first.add_cluster("sandbox-1", nodes=3, pods_per_node=2)
    b = second.add_cluster("sandbox-1", nodes=3, pods_per_node=2)
    assert a.token == b.token
    assert [p["metadata"]["name"] for p in a.items("pods")] == [p["metadata"]["name"] for p in b.items("pods")]
    assert [n["metadata"]["uid"] for n in a.items("nodes")] == [n["metadata"]["uid"] for n in b.items("nodes")]
    other = Sandbox(seed=4).add_cluster("sandbox-1", nodes=3, pods_per_node=2)
    assert other.token != a.token


def test_command_serves_clusters_and_writes_kubeconfigs(tmp_path):
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "manage.py", "sandbox", "--port", str(port), "--clusters", "2", "--nodes", "3",
         "--versions", "1.30.4,1.31.2", "--out", str(tmp_path), "--seed", "5"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        deadline = time.monotonic() + 30
        for line in proc.stdout:  # type: ignore[union-attr]
            if line.strip() == "ready" or time.monotonic() > deadline:
                break
        paths = sorted(p.name for p in tmp_path.glob("*.kubeconfig"))
        assert paths == ["sandbox-1.kubeconfig", "sandbox-2.kubeconfig"]
        kubeconfig = yaml.safe_load((tmp_path / "sandbox-2.kubeconfig").read_text())
        cluster = kubeconfig["clusters"][0]["cluster"]
        assert cluster["server"] == f"https://127.0.0.1:{port}/c/sandbox-2"
        assert base64.b64decode(cluster["certificate-authority-data"]).startswith(b"-----BEGIN CERTIFICATE-----")
        assert "insecure-skip-tls-verify" not in cluster
        api = config.new_client_from_config(config_file=str(tmp_path / "sandbox-2.kubeconfig"))
        assert client.VersionApi(api).get_code().git_version == "v1.31.2"
        assert len(client.CoreV1Api(api).list_node().items) == 3
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--versions", "latest"], "--versions takes versions like 1.30.4,1.31.2; not latest"),
        (["--clusters", "0"], "must be at least 1"),
        (["--nodes", "1", "--control-planes", "2"], "--control-planes cannot exceed --nodes"),
    ],
)
def test_command_refuses_bad_options(args, message):
    with pytest.raises(CommandError, match=message):
        call_command("sandbox", *args)


def test_command_says_when_its_port_is_taken(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        started = time.monotonic()
        with pytest.raises(CommandError, match=f"cannot listen on 127.0.0.1:{port}"):
            call_command("sandbox", "--port", str(port), "--clusters", "1", "--nodes", "1", "--out", str(tmp_path))
        assert time.monotonic() - started < 10  # it used to wait 30 s for a server that could never start


def test_plain_http_only_when_asked():
    served = Sandbox(tls=False)
    served.add_cluster("plain", nodes=1, pods_per_node=0)
    with served:
        kubeconfig = served.kubeconfig("plain")
        assert kubeconfig["clusters"][0]["cluster"] == {"server": f"http://127.0.0.1:{served.port}/c/plain"}
        assert served.credential("plain")["ca_data"] == ""
        api = config.new_client_from_config_dict(kubeconfig)
        assert client.CoreV1Api(api).list_node().items
