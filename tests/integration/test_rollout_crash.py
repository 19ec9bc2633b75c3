"""A real rollout survives its worker being killed with SIGKILL at many moments.

PostgreSQL, Redis, an ASGI server and celery worker processes (with embedded beat,
whose poke re-ticks a rollout that went quiet); the clusters are sandbox clusters served
from this process. The worker is killed again and again while the rollout runs; every
node must end at the target version, replaced exactly once, none left cordoned.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time

import httpx
import pytest
import yaml

from clusters.sandbox import Sandbox
from tests.integration.conftest import BIN, ROOT, Stack, make_stack

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def crash_stack(tmp_path_factory):
    yield from make_stack(tmp_path_factory.mktemp("crash"), with_worker=False, PKSWEB_ROLLOUT_POKE_SECONDS="1",
                          PKSWEB_ROLLOUT_STALE_SECONDS="2", PKSWEB_ROLLOUT_LEASE_SECONDS="3", PKSWEB_HEALTH_INTERVAL="3600")


def api(stack: Stack, user: str) -> httpx.Client:
    token = stack.manage("apitoken", user).strip()
    return httpx.Client(base_url=stack.url, headers={"Authorization": f"Token {token}"}, timeout=30)


def start_worker(stack: Stack, tmp) -> subprocess.Popen:
    log = open(tmp / "crash-worker.log", "ab")  # noqa: SIM115 - closed with the process
    return subprocess.Popen(
        [str(BIN / "celery"), "-A", "pksweb", "worker", "-B", "--pool", "solo", "-Q", stack.queue, "--loglevel", "INFO",
         "--without-mingle", "--without-gossip", "-n", f"crash-{time.monotonic_ns()}@%h", "-s", str(tmp / "beat-schedule")],
        cwd=ROOT, env=stack.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def test_rollout_resumes_after_sigkill_with_each_node_upgraded_once(crash_stack: Stack, tmp_path):
    sandbox = Sandbox(seed=11, heartbeat_seconds=0).start()
    try:
        sims = [sandbox.add_cluster(f"crash-{i}", nodes=3, pods_per_node=1, pod_start_delay=0.05, node_ready_delay=0.5)
                for i in (1, 2)]
        for sim in sims:
            path = tmp_path / f"{sim.name}.kubeconfig"
            path.write_text(yaml.safe_dump(sandbox.kubeconfig(sim.name)))
            crash_stack.manage("importclusters", str(path))
        crash_stack.manage("createuser", "crash-op", "--role", "operator", "--no-password")
        crash_stack.manage("createuser", "crash-boss", "--role", "approver", "--no-password")
        ops, boss = api(crash_stack, "crash-op"), api(crash_stack, "crash-boss")
        clusters = ops.get("/api/clusters/").json()["results"]
        for cluster in clusters:
            assert ops.patch(f"/api/clusters/{cluster['id']}/", json={"upgrade_driver": "sandbox"}).status_code == 200
            assert ops.post(f"/api/clusters/{cluster['id']}/probe/").json()["status"] == "healthy"
        ids = sorted(c["id"] for c in clusters)
        plan = ops.post("/api/upgrade-plans/", json={"name": "crash", "target_version": "1.31.2", "waves": [[ids[0]], [ids[1]]],
                                                     "drain_timeout_seconds": 10, "node_ready_timeout_seconds": 60}).json()
        assert plan["preflight"]["ok"], plan["preflight"]
        assert ops.post(f"/api/upgrade-plans/{plan['id']}/submit/").status_code == 200
        assert boss.post(f"/api/upgrade-plans/{plan['id']}/approve/", json={"revision": plan["revision"]}).status_code == 200
        rollout_id = ops.post(f"/api/upgrade-plans/{plan['id']}/start/").json()["id"]

        def signature(body):
            return [(step["order"], step["phase"]) for step in body["steps"]]

        kills, phases_killed = 0, set()
        rng = random.Random(5)
        deadline = time.monotonic() + 300
        worker = start_worker(crash_stack, tmp_path)
        try:
            last = signature(ops.get(f"/api/rollouts/{rollout_id}/").json())
            while time.monotonic() < deadline:
                rollout = ops.get(f"/api/rollouts/{rollout_id}/").json()
                if rollout["state"] != "running":
                    break
                now = signature(rollout)
                if now == last or kills >= 15:
                    time.sleep(0.1)
                    continue
                # The worker just made progress: kill it a moment later, mid-whatever it does next.
                last = now
                time.sleep(rng.uniform(0.0, 1.0))
                current = ops.get(f"/api/rollouts/{rollout_id}/").json()
                phases_killed |= {step["phase"] for step in current["steps"] if step["phase"] not in ("pending", "done")}
                os.killpg(worker.pid, signal.SIGKILL)
                worker.wait(10)
                kills += 1
                worker = start_worker(crash_stack, tmp_path)
        finally:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait(10)
        rollout = ops.get(f"/api/rollouts/{rollout_id}/").json()
        log_tail = (tmp_path / "crash-worker.log").read_text()[-3000:]
        assert rollout["state"] == "succeeded", f"{rollout['state']}: {rollout['reason']}\n{log_tail}"
        assert kills >= 10, f"only {kills} kills happened before the rollout finished"
        assert len(phases_killed) >= 2, f"the kills only hit {sorted(phases_killed)}"
        for sim in sims:
            for node in sim.items("nodes"):
                name = node["metadata"]["name"]
                assert node["status"]["nodeInfo"]["kubeletVersion"] == "v1.31.2", name
                assert not node["spec"].get("unschedulable"), f"{name} left cordoned"
                replaced = [e for e in sim.items("events", "default")
                            if e["involvedObject"]["name"] == name and e["reason"] == "NodeNotReady"]
                assert len(replaced) == 1, f"{name} was replaced {len(replaced)} times"
        print(f"\n{kills} SIGKILLs; phases interrupted: {sorted(phases_killed)}", file=sys.stderr)
    finally:
        sandbox.stop()
