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

from sandbox import Sandbox
from tests.support.redis_server import RedisServer
from tests.support.stack import Stack, make_stack

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def crash_stack(tmp_path_factory):
    yield from make_stack(tmp_path_factory.mktemp("crash"), with_worker=False, PKSWEB_ROLLOUT_POKE_SECONDS="1",
                          PKSWEB_ROLLOUT_STALE_SECONDS="2", PKSWEB_ROLLOUT_LEASE_SECONDS="3", PKSWEB_HEALTH_INTERVAL="3600")


def start_worker(stack: Stack) -> subprocess.Popen:
    """A worker with embedded beat, in a session of its own (os.killpg takes both); every one logs to crash-worker.log."""
    return stack.worker(name="crash-worker", beat=True)


PHASES = ("cordon", "drain", "upgrade", "wait_ready", "uncordon", "gate")


def start_rollout(stack: Stack, sandbox: Sandbox, tmp, prefix: str, latency_ms: float = 0,
                  drain_timeout: int = 10) -> tuple[httpx.Client, int, list]:
    """Two 3-node sandbox clusters registered, a two-wave plan approved and started; (operator API, rollout id, clusters)."""
    sims = [sandbox.add_cluster(f"{prefix}-{i}", nodes=3, pods_per_node=2, pod_start_delay=0.05, node_ready_delay=0.5)
            for i in (1, 2)]
    for sim in sims:
        path = tmp / f"{sim.name}.kubeconfig"
        path.write_text(yaml.safe_dump(sandbox.kubeconfig(sim.name)))
        stack.manage("importclusters", str(path))
    stack.manage("createuser", f"{prefix}-op", "--role", "operator", "--no-password")
    stack.manage("createuser", f"{prefix}-boss", "--role", "approver", "--no-password")
    ops, boss = stack.api(f"{prefix}-op"), stack.api(f"{prefix}-boss")
    clusters = [c for c in ops.get("/api/clusters/", params={"page_size": 100}).json()["results"] if c["name"].startswith(prefix)]
    for cluster in clusters:
        assert ops.patch(f"/api/clusters/{cluster['id']}/", json={"upgrade_driver": "sandbox"}).status_code == 200
        assert ops.post(f"/api/clusters/{cluster['id']}/probe/").json()["status"] == "healthy"
    ids = sorted(c["id"] for c in clusters)
    plan = ops.post("/api/upgrade-plans/", json={"name": prefix, "target_version": "1.31.2", "waves": [[ids[0]], [ids[1]]],
                                                 "drain_timeout_seconds": drain_timeout, "node_ready_timeout_seconds": 60}).json()
    assert plan["preflight"]["ok"], plan["preflight"]
    assert ops.post(f"/api/upgrade-plans/{plan['id']}/submit/").status_code == 200
    assert boss.post(f"/api/upgrade-plans/{plan['id']}/approve/", json={"revision": plan["revision"]}).status_code == 200
    for sim in sims:
        sim.faults.update({"latency_ms": latency_ms})  # every phase lasts long enough to be caught in it
    return ops, ops.post(f"/api/upgrade-plans/{plan['id']}/start/").json()["id"], sims


def assert_each_node_upgraded_once(sims) -> None:
    for sim in sims:
        for node in sim.items("nodes"):
            name = node["metadata"]["name"]
            assert node["status"]["nodeInfo"]["kubeletVersion"] == "v1.31.2", name
            assert not node["spec"].get("unschedulable"), f"{name} left cordoned"
            replaced = [e for e in sim.items("events", "default")
                        if e["involvedObject"]["name"] == name and e["reason"] == "NodeNotReady"]
            assert len(replaced) == 1, f"{name} was replaced {len(replaced)} times"


def test_rollout_resumes_after_sigkill_in_every_phase_with_each_node_upgraded_once(crash_stack: Stack, tmp_path):
    """First a kill in each phase (cordon, drain with its evictions, the driver call, the wait for Ready, uncordon,
    the health gate), then kills at random moments after progress."""
    sandbox = Sandbox(seed=11, heartbeat_seconds=0).start()
    try:
        ops, rollout_id, sims = start_rollout(crash_stack, sandbox, tmp_path, "crash", latency_ms=60)
        kills, phases_killed, unkilled = 0, set(), set(PHASES)
        rng = random.Random(5)
        deadline = time.monotonic() + 300
        worker = start_worker(crash_stack)

        def kill_and_restart() -> None:
            nonlocal worker, kills
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait(10)
            kills += 1
            worker = start_worker(crash_stack)

        def signature(body):
            return [(step["order"], step["phase"]) for step in body["steps"]]

        try:
            last = None
            while time.monotonic() < deadline:
                rollout = ops.get(f"/api/rollouts/{rollout_id}/").json()
                if rollout["state"] != "running":
                    break
                in_flight = {step["phase"] for step in rollout["steps"]} - {"pending", "done"}
                if in_flight & unkilled:
                    kill_and_restart()  # now, while a node is in a phase not yet interrupted
                    unkilled -= in_flight
                    phases_killed |= in_flight
                    continue
                now = signature(rollout)
                if unkilled or now == last or kills >= 15:
                    time.sleep(0.02)
                    continue
                # The worker just made progress: kill it a moment later, mid-whatever it does next.
                last = now
                time.sleep(rng.uniform(0.0, 1.0))
                current = ops.get(f"/api/rollouts/{rollout_id}/").json()
                phases_killed |= {step["phase"] for step in current["steps"] if step["phase"] not in ("pending", "done")}
                kill_and_restart()
        finally:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait(10)
        rollout = ops.get(f"/api/rollouts/{rollout_id}/").json()
        log_tail = (crash_stack.folder / "crash-worker.log").read_text()[-3000:]
        assert rollout["state"] == "succeeded", f"{rollout['state']}: {rollout['reason']}\n{log_tail}"
        assert not unkilled, f"the rollout finished before a kill in {sorted(unkilled)}"
        assert kills >= 10, f"only {kills} kills happened before the rollout finished"
        assert_each_node_upgraded_once(sims)
        print(f"\n{kills} SIGKILLs; phases interrupted: {sorted(phases_killed)}", file=sys.stderr)
    finally:
        sandbox.stop()


@pytest.fixture(scope="module")
def redis_stack(tmp_path_factory, own_redis: RedisServer):
    yield from make_stack(tmp_path_factory.mktemp("redis-restart"), with_worker=False, REDIS_URL=own_redis.url,
                          PKSWEB_ROLLOUT_POKE_SECONDS="1", PKSWEB_ROLLOUT_STALE_SECONDS="2", PKSWEB_ROLLOUT_LEASE_SECONDS="3",
                          PKSWEB_HEALTH_INTERVAL="3600")


def test_rollout_resumes_after_redis_restarts_mid_rollout(redis_stack: Stack, own_redis: RedisServer, tmp_path):
    """Redis (broker and channel layer) is killed while nodes are in flight and comes back empty five seconds later:
    queued tasks are gone, the worker reconnects, beat's poke restarts the quiet chains from the database."""
    sandbox = Sandbox(seed=13, heartbeat_seconds=0).start()
    worker = start_worker(redis_stack)
    try:
        ops, rollout_id, sims = start_rollout(redis_stack, sandbox, tmp_path, "redis", latency_ms=60)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            steps = ops.get(f"/api/rollouts/{rollout_id}/").json()["steps"]
            if any(step["phase"] == "drain" for step in steps):
                break
            time.sleep(0.02)
        else:
            pytest.fail("no node reached the drain phase")
        own_redis.kill()
        time.sleep(5)
        own_redis.start()
        deadline = time.monotonic() + 180
        rollout = ops.get(f"/api/rollouts/{rollout_id}/").json()
        while rollout["state"] == "running" and time.monotonic() < deadline:
            time.sleep(0.5)
            rollout = ops.get(f"/api/rollouts/{rollout_id}/").json()
        log_tail = (redis_stack.folder / "crash-worker.log").read_text()[-3000:]
        assert rollout["state"] == "succeeded", f"{rollout['state']}: {rollout['reason']}\n{log_tail}"
        assert_each_node_upgraded_once(sims)
        assert worker.poll() is None, "the worker died with Redis instead of reconnecting"
    finally:
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait(10)
        sandbox.stop()


def test_a_worker_killed_mid_drain_holds_the_node_one_lease_period_not_the_drain_timeout(crash_stack: Stack, tmp_path):
    """The step's lease is renewed while the drain runs, not taken for the whole drain timeout: a worker killed in a
    five-minute drain is taken over within one lease period (3 s here), and the page says so."""
    sandbox = Sandbox(seed=17, heartbeat_seconds=0).start()
    worker = start_worker(crash_stack)
    try:
        ops, rollout_id, sims = start_rollout(crash_stack, sandbox, tmp_path, "held", drain_timeout=300)
        for sim in sims:
            sim.faults.update({"frozen_pdbs": ["*"]})  # the drain waits on the budgets
            sim.refresh_budgets()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            steps = ops.get(f"/api/rollouts/{rollout_id}/").json()["steps"]
            # A worker node: its pods are under the frozen budgets (a control plane's drain has nothing to wait for).
            draining = [step for step in steps if step["phase"] == "drain" and not step["control_plane"]]
            if draining:
                break
            time.sleep(0.05)
        else:
            pytest.fail("no worker node reached the drain phase")
        time.sleep(1.0)  # well into the drain
        order = draining[0]["order"]
        still = next(s for s in ops.get(f"/api/rollouts/{rollout_id}/").json()["steps"] if s["order"] == order)
        assert still["phase"] == "drain", "the drain should wait on the frozen budgets"
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait(10)
        killed_at = time.monotonic()
        for sim in sims:
            sim.faults.update({"frozen_pdbs": []})
            sim.refresh_budgets()
        worker = start_worker(crash_stack)
        while time.monotonic() - killed_at < 120:
            step = next(s for s in ops.get(f"/api/rollouts/{rollout_id}/").json()["steps"] if s["order"] == order)
            if step["phase"] != "drain":
                break
            time.sleep(0.1)
        held = time.monotonic() - killed_at
        assert step["phase"] != "drain", f"the node was still held {held:.0f} s after its worker died"
        assert held < 30, f"the node was held {held:.0f} s after its worker died (lease 3 s)"
        taken = ops.get("/api/events/", params={"kind": "rollout.step_taken_over"}).json()["results"]
        assert taken and "another worker takes it over" in taken[0]["message"]
        print(f"\nA node whose worker died mid-drain moved on {held:.1f} s later (drain timeout 300 s)", file=sys.stderr)
        ops.post(f"/api/rollouts/{rollout_id}/abort/")
    finally:
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait(10)
        sandbox.stop()
