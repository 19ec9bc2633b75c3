"""Credential key rotation without downtime, in the production shape.

The documented procedure: deploy with the new key first and the old one after it
(every process reads both), run ``manage.py rotatekeys``, then drop the old key. Here
the web server already runs with ``new,old`` while clusters were sealed with ``old``;
requests that decrypt credentials (probe now, for every cluster, over and over) run
during the rotation and all succeed; afterwards the new key alone opens every one.
"""

from __future__ import annotations

import threading

import httpx
import pytest
import yaml
from cryptography.fernet import Fernet

from sandbox import Sandbox
from tests.support.stack import Stack, make_stack

pytestmark = pytest.mark.integration

OLD, NEW = Fernet.generate_key().decode(), Fernet.generate_key().decode()
CLUSTERS = 40


@pytest.fixture(scope="module")
def rotating_stack(tmp_path_factory):
    yield from make_stack(tmp_path_factory.mktemp("rotation"), with_worker=False, PKSWEB_CREDENTIAL_KEYS=f"{NEW},{OLD}",
                          PKSWEB_HEALTH_INTERVAL="3600")


def manage_with_keys(stack: Stack, keys: str, *args: str) -> str:
    return stack.manage(*args, timeout=300, PKSWEB_CREDENTIAL_KEYS=keys)


def test_key_rotation_under_load_loses_no_request(rotating_stack: Stack, tmp_path):
    sandbox = Sandbox(seed=17, heartbeat_seconds=0).start()
    try:
        merged = {"apiVersion": "v1", "kind": "Config", "clusters": [], "users": [], "contexts": [], "preferences": {}}
        for i in range(CLUSTERS):
            sandbox.add_cluster(f"rot-{i}", nodes=2, pods_per_node=0)
            one = sandbox.kubeconfig(f"rot-{i}")
            for key in ("clusters", "users", "contexts"):
                merged[key] += one[key]
        merged["current-context"] = "rot-0"
        path = tmp_path / "fleet.kubeconfig"
        path.write_text(yaml.safe_dump(merged))
        manage_with_keys(rotating_stack, OLD, "importclusters", str(path), "--all")  # sealed with the old key only
        rotating_stack.manage("createuser", "rot-op", "--role", "operator", "--no-password")
        api = rotating_stack.api("rot-op")
        ids = [c["id"] for c in api.get("/api/clusters/", params={"page_size": 200}).json()["results"]]
        assert len(ids) == CLUSTERS

        answers: list[tuple[int, int]] = []
        stop = threading.Event()

        def load() -> None:
            with httpx.Client(base_url=rotating_stack.url, headers=api.headers, timeout=30) as client:
                while not stop.is_set():
                    for cluster_id in ids:
                        response = client.post(f"/api/clusters/{cluster_id}/probe/")
                        answers.append((response.status_code, response.json().get("status") == "healthy"))

        threads = [threading.Thread(target=load) for _ in range(3)]
        for thread in threads:
            thread.start()
        try:
            while len(answers) < 20:
                threading.Event().wait(0.05)
            before = len(answers)
            report = manage_with_keys(rotating_stack, f"{NEW},{OLD}", "rotatekeys")
            during = len(answers) - before
        finally:
            stop.set()
            for thread in threads:
                thread.join(60)
        assert f"re-encrypted {CLUSTERS} credential(s)" in report
        assert during > 0, "no request ran while the keys rotated"
        failed = [a for a in answers if a != (200, True)]
        assert not failed, f"{len(failed)} of {len(answers)} probes failed during the rotation: {failed[:5]}"
        # The old key can go: the new one alone opens every credential.
        opened = manage_with_keys(rotating_stack, NEW, "shell", "-c",
                                  "from clusters.models import Cluster; from clusters.connect import cluster_credential; "
                                  "print(sum(1 for c in Cluster.objects.all() if cluster_credential(c).token))")
        assert opened.strip().splitlines()[-1] == str(CLUSTERS)
    finally:
        sandbox.stop()
