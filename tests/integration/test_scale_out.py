"""The production shape scaled out, as separate processes, behaves as one installation.

Two uvicorn web processes (one process each, ports of their own), two celery workers (threads, names of their
own), one beat (then a second), PostgreSQL, Redis, and a sandbox process serving four clusters of four nodes.
The tests run in this order on one stack (each says what it leaves behind):

1. an event a worker publishes reaches pages open on both web processes; web A is killed: only its sockets
   drop, they reconnect to web B, replay from the last event they saw and lose nothing;
2. a rollout over three clusters of four nodes is shared by both workers; one is killed (SIGKILL) mid-rollout
   and every node is still upgraded exactly once (the sandbox counts each node's replacements);
3. a worker given SIGTERM while it drains a node hands the task back: the other worker goes on with it;
4. a second beat doubles no periodic work, and takes over when the first dies.

The figures the issue asks for (events seen on each web process, nodes upgraded by each worker, time taken)
are printed (``pytest -s``). Short periods come from the environment (pokes, leases, heartbeat).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psycopg
import pytest
from celery import Celery
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection

from tests.support.net import free_port, wait_http
from tests.support.sandbox_http import set_faults, upgrades_per_node
from tests.support.stack import PASSWORD, Stack, require_services

pytestmark = pytest.mark.integration

VERSION = "1.31.2"
SOFT_SHUTDOWN = 2.0
BEAT_LEASE = 2.0
ENV = {"PKSWEB_ROLLOUT_POKE_SECONDS": "1", "PKSWEB_ROLLOUT_STALE_SECONDS": "2", "PKSWEB_ROLLOUT_LEASE_SECONDS": "3",
       "PKSWEB_HEALTH_INTERVAL": "3600", "PKSWEB_HEARTBEAT_SECONDS": "1", "PKSWEB_BEAT_LEASE_SECONDS": str(BEAT_LEASE),
       "PKSWEB_WORKER_SOFT_SHUTDOWN_SECONDS": str(SOFT_SHUTDOWN)}
DRIVER_CALL = re.compile(r"([^\s\"]+/[^\s\"]+): the sandbox driver replaces the node")  # plain or JSON lines
SENT_HEARTBEAT = "Sending due task worker-heartbeat"
LEADS = "leads: it sends the periodic tasks"


@dataclass
class Shape:
    stack: Stack
    web_b_port: int
    webs: dict[str, subprocess.Popen[bytes]]
    workers: dict[str, subprocess.Popen[bytes]]
    beats: dict[str, subprocess.Popen[bytes]]
    configs: list[Path]
    ops: httpx.Client
    boss: httpx.Client
    ids: dict[str, int]
    figures: list[str] = field(default_factory=list)

    def log(self, name: str) -> str:
        path = self.stack.folder / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def worker(self, name: str) -> subprocess.Popen[bytes]:
        self.workers[name] = self.stack.worker(name=name, pool="threads", concurrency=4)
        return self.workers[name]


@pytest.fixture(scope="module")
def shape(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shape]:
    began = time.monotonic()
    require_services()
    with Stack("scale", tmp_path_factory.mktemp("scale"), log_level="INFO", **ENV) as stack:
        kubeconfigs = stack.sandbox(clusters=4, nodes=4, extra=("--pods-per-node", "2", "--node-ready-delay", "0.3",
                                                                "--pod-start-delay", "0.05"))
        stack.migrate(static=True)
        port_b = free_port()
        webs = {"web-a": stack.web(name="web-a"), "web-b": stack.web(name="web-b", port=port_b)}
        beats = {"beat-1": stack.beat(name="beat-1")}
        stack.sandbox_ready()
        configs = sorted(kubeconfigs.glob("*.kubeconfig"))
        ops, boss, ids = stack.fleet_api(configs)
        stack.manage("createuser", "itop", "--role", "operator", "--password-stdin", stdin=PASSWORD + "\n")
        shape = Shape(stack, port_b, webs, {}, beats, configs, ops, boss, ids)
        for name in ("worker-1", "worker-2"):
            shape.worker(name)
        stack.wait_web(60)
        wait_http(stack.url_of(port_b) + "/healthz", webs["web-b"], seconds=60, explain=stack.log_tail)
        for client in (ops, boss):  # web A is killed by the first test: the API goes through web B
            client.base_url = httpx.URL(stack.url_of(port_b))
        shape.figures.append(f"stack of 2 web, 2 workers, beat, sandbox started in {time.monotonic() - began:.1f} s")
        yield shape
        shape.figures.append(f"whole module: {time.monotonic() - began:.1f} s")
        print("\nscale-out figures:\n  " + "\n  ".join(shape.figures))


# ---- 1. two web processes ----------------------------------------------------------------------------------------


@dataclass
class Page:
    """A page's live socket: the events it accounted for (``data-events``) and the text it received."""

    web: str
    socket: ClientConnection
    cursor: int
    events: list[int] = field(default_factory=list)
    text: str = ""
    seen_on: Counter[str] = field(default_factory=Counter)

    def read_until(self, *markers: str, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while not all(m in self.text for m in markers):
            message = self.socket.recv(timeout=max(0.1, deadline - time.monotonic()))
            assert isinstance(message, str)
            self.text += message
            for last, ids in re.findall(r'data-last="(\d+)" data-events="([\d ]*)"', message):
                self.cursor = max(self.cursor, int(last))
                self.events += [int(i) for i in ids.split()]
                self.seen_on[self.web] += len(ids.split())


def announce(stack: Stack, author_id: int, message: str) -> None:
    """A worker publishes: the announcement task, sent to the stack's queue."""
    app = Celery(broker=stack.env["REDIS_URL"])
    app.send_task("pksweb.tasks.announce", kwargs={"author_id": author_id, "message": message}, queue=stack.queue)
    app.close()


def test_pages_on_both_web_processes_get_a_workers_event_and_a_killed_ones_pages_replay_on_the_other(shape: Shape):
    stack = shape.stack
    session = stack.login("itop", PASSWORD)
    author = session.get("/api/me/").json()["id"]
    latest = session.get("/api/events/", params={"limit": 1}).json()["results"]
    start = latest[0]["id"] if latest else 0
    ports = {"web-a": None, "web-b": shape.web_b_port}
    with ExitStack() as sockets:
        pages = [Page(web, sockets.enter_context(stack.websocket(f"/ws/activity/?after={start}", session, port=ports[web])),
                      start) for web in ("web-a", "web-b") for _ in range(3)]
        events_seen(shape, stack, session, author, pages, sockets)


def events_seen(shape: Shape, stack: Stack, session: httpx.Client, author: int, pages: list[Page], sockets: ExitStack) -> None:
    time.sleep(0.5)  # the consumers join their groups
    tag = uuid.uuid4().hex[:6]
    first, *away, last = (f"scale {tag} event {i}" for i in range(1, 5))
    announce(stack, author, first)
    for page in pages:
        page.read_until(first)

    shape.webs["web-a"].kill()  # a crash: no close frame, no reconnect hint
    shape.webs["web-a"].wait(10)
    moved = [p for p in pages if p.web == "web-a"]
    stayed = [p for p in pages if p.web == "web-b"]
    for page in moved:
        with pytest.raises(ConnectionClosed):
            page.socket.recv(timeout=10)
    for message in away:  # published while web A's pages are away
        announce(stack, author, message)
    for page in stayed:
        page.read_until(*away)
    for page in moved:  # the page reconnects to the web process that is left, from the last event it saw
        page.web = "web-b"
        page.socket = sockets.enter_context(stack.websocket(f"/ws/activity/?after={page.cursor}", session, port=shape.web_b_port))
        page.read_until(*away, timeout=10)
    time.sleep(0.5)
    announce(stack, author, last)
    for page in pages:
        page.read_until(last)
        page.socket.close()

    for page in stayed:
        assert page.socket.close_code == 1000 or page.socket.close_code is None  # closed by us, at the end only
    for page in pages:
        assert all(page.text.count(m) == 1 for m in (first, *away, last)), page.text[-2000:]
        assert len(page.events) == len(set(page.events)), f"an event reached a page twice: {page.events}"
    seen = sum((p.seen_on for p in pages), Counter())
    shape.figures.append(f"events seen through sockets (every event a page accounted for): web-a {seen['web-a']}, web-b "
                         f"{seen['web-b']}; of the 4 announcements, 3 pages x 1 on web-a, 3 x 4 + 3 x 3 on web-b (web-a killed "
                         f"after the 1st; its pages replayed the 2 they missed on web-b)")


# ---- 2. two workers share a rollout; one is killed --------------------------------------------------------------


def start_rollout(shape: Shape, configs: list[Path], name: str, drain_timeout: int = 30) -> int:
    ids = [shape.ids[path.stem] for path in configs]
    for cluster in ids:
        assert shape.ops.post(f"/api/clusters/{cluster}/probe/").json()["status"] == "healthy"
    plan = shape.ops.post("/api/upgrade-plans/", json={"name": name, "target_version": VERSION, "waves": [ids],
                                                       "drain_timeout_seconds": drain_timeout,
                                                       "node_ready_timeout_seconds": 60}).json()
    assert plan["preflight"]["ok"], plan["preflight"]
    assert shape.ops.post(f"/api/upgrade-plans/{plan['id']}/submit/").status_code == 200
    assert shape.boss.post(f"/api/upgrade-plans/{plan['id']}/approve/", json={"revision": plan["revision"]}).status_code == 200
    return int(shape.ops.post(f"/api/upgrade-plans/{plan['id']}/start/").json()["id"])


def rollout(shape: Shape, rollout_id: int) -> dict:
    return shape.ops.get(f"/api/rollouts/{rollout_id}/").json()


def wait_finished(shape: Shape, rollout_id: int, seconds: float = 90) -> dict:
    deadline = time.monotonic() + seconds
    body = rollout(shape, rollout_id)
    while body["state"] == "running" and time.monotonic() < deadline:
        time.sleep(0.25)
        body = rollout(shape, rollout_id)
    assert body["state"] == "succeeded", f"{body['state']}: {body['reason']}\n{shape.stack.log_tail()}"
    return body


def driver_calls(shape: Shape) -> dict[str, list[str]]:
    """Each worker's nodes, as its log names them when it asks the driver to replace one."""
    return {name: DRIVER_CALL.findall(shape.log(name)) for name in shape.workers}


def assert_each_node_upgraded_once(configs: list[Path]) -> int:
    nodes = 0
    for path in configs:
        for node, (upgraded, replaced) in upgrades_per_node(path, VERSION).items():
            assert upgraded, f"{node} is not at v{VERSION}, or was left cordoned"
            assert replaced == 1, f"{node} was replaced {replaced} times"
            nodes += 1
    return nodes


def test_a_rollout_is_shared_by_both_workers_and_one_killed_mid_rollout_loses_no_node(shape: Shape):
    configs = shape.configs[:3]
    began = time.monotonic()
    rollout_id = start_rollout(shape, configs, "scale-out")
    deadline = time.monotonic() + 60
    while not all(driver_calls(shape).values()):  # both workers have asked for a node's replacement
        assert time.monotonic() < deadline and rollout(shape, rollout_id)["state"] == "running", \
            f"the rollout was not shared: {driver_calls(shape)}"
        time.sleep(0.05)
    before_kill = {name: len(calls) for name, calls in driver_calls(shape).items()}
    os.killpg(shape.workers["worker-1"].pid, signal.SIGKILL)  # mid-rollout, whatever it was doing
    shape.workers["worker-1"].wait(10)
    body = wait_finished(shape, rollout_id)
    took = time.monotonic() - began

    assert all(step["phase"] == "done" for step in body["steps"]) and len(body["steps"]) == 12
    assert assert_each_node_upgraded_once(configs) == 12
    calls = driver_calls(shape)
    assert {node for names in calls.values() for node in names} == {f"{s['cluster_name']}/{s['node']}" for s in body["steps"]}
    shape.figures.append(f"rollout of 3 clusters x 4 nodes in {took:.1f} s: nodes upgraded by worker-1 {len(calls['worker-1'])} "
                         f"(SIGKILLed after {before_kill['worker-1']}, worker-2 then at {before_kill['worker-2']}), "
                         f"by worker-2 {len(calls['worker-2'])}; the sandbox replaced each of the 12 nodes once")


# ---- 3. SIGTERM: the task goes back to the queue ----------------------------------------------------------------


def step_lease_holder(shape: Shape, rollout_id: int) -> int | None:
    """The pid of the worker holding a step lease of the rollout (the engine's holder is host:pid:clock)."""
    with psycopg.connect(shape.stack.env["DATABASE_URL"]) as conn:
        row = conn.execute("SELECT holder FROM pksweb_lease WHERE name LIKE %s AND expires_at > now()",
                           (f"rollout.{rollout_id}.step.%",)).fetchone()
    return int(row[0].split(":")[1]) if row else None


def test_a_worker_given_sigterm_mid_drain_hands_the_task_back_to_the_other_worker(shape: Shape):
    """Late acknowledgement and the soft shutdown: the drain (stuck behind frozen budgets) stops after the soft
    shutdown time, releases the node's lease and rejects its message with requeue; the other worker receives
    that same message and goes on with the drain. Leaves worker-2 or worker-3 running."""
    shape.worker("worker-3")
    config = shape.configs[3]
    set_faults(config, frozen_pdbs=["*"])
    rollout_id = start_rollout(shape, [config], "sigterm", drain_timeout=120)
    pids = {proc.pid: name for name, proc in shape.workers.items() if proc.poll() is None}
    deadline = time.monotonic() + 60
    while True:
        steps = rollout(shape, rollout_id)["steps"]
        holder = step_lease_holder(shape, rollout_id)
        if holder in pids and any(s["phase"] == "drain" and not s["control_plane"] for s in steps):
            break
        assert time.monotonic() < deadline, f"no worker node reached a drain: {steps}"
        time.sleep(0.1)
    time.sleep(0.5)
    stopping, other = pids[holder], next(name for name in pids.values() if name != pids[holder])
    shape.workers[stopping].send_signal(signal.SIGTERM)
    signalled = time.monotonic()
    while step_lease_holder(shape, rollout_id) != shape.workers[other].pid:
        assert time.monotonic() - signalled < 20, f"{other} never took the drain over\n{shape.stack.log_tail()}"
        time.sleep(0.05)
    taken = time.monotonic() - signalled
    shape.workers[stopping].wait(20)
    exited = time.monotonic() - signalled
    assert [s for s in rollout(shape, rollout_id)["steps"] if s["phase"] == "drain"], "the drain should still wait"

    assert "is handed back: this worker is shutting down" in shape.log(stopping), shape.log(stopping)[-3000:]
    handed = re.findall(r"Task upgrades\.tasks\.step_tick\[([0-9a-f-]+)\] reject requeue=True", shape.log(stopping))
    if handed:  # its own message went back (else the task had gone on from another node: it queued a new one)
        assert f"Task upgrades.tasks.step_tick[{handed[-1]}] received" in shape.log(other), "the other worker never got it"
    # Handed back, not taken over: the dispatcher's takeover of a quiet step (the poke) did not happen.
    taken_over = shape.ops.get("/api/events/", params={"kind": "rollout.step_taken_over"}).json()["results"]
    assert [e for e in taken_over if e["payload"].get("rollout") == rollout_id] == []
    assert taken < SOFT_SHUTDOWN + 3, f"the drain was taken over {taken:.1f} s after SIGTERM (soft shutdown {SOFT_SHUTDOWN} s)"
    set_faults(config, frozen_pdbs=[])
    wait_finished(shape, rollout_id)
    assert assert_each_node_upgraded_once([config]) == 4
    shape.figures.append(f"SIGTERM to {stopping} mid-drain: {other} held the node {taken:.1f} s later, {stopping} "
                         f"exited after {exited:.1f} s (soft shutdown {SOFT_SHUTDOWN:.0f} s)")


# ---- 4. two beats -----------------------------------------------------------------------------------------------


def wait_log(shape: Shape, name: str, text: str, seconds: float = 30) -> float:
    began = time.monotonic()
    while text not in shape.log(name):
        assert time.monotonic() - began < seconds, f"{name} never logged {text!r}:\n{shape.log(name)[-2000:]}"
        time.sleep(0.05)
    return time.monotonic() - began


def test_a_second_beat_doubles_no_periodic_work_and_takes_over_when_the_first_dies(shape: Shape):
    """The heartbeat is due every second: two beats for N seconds send it about N times, not 2N."""
    wait_log(shape, "beat-1", LEADS)
    shape.beats["beat-2"] = shape.stack.beat(name="beat-2")
    wait_log(shape, "beat-2", "stands by")
    counts = {name: shape.log(name).count(SENT_HEARTBEAT) for name in shape.beats}
    window = 6.0
    time.sleep(window)
    sent = {name: shape.log(name).count(SENT_HEARTBEAT) - counts[name] for name in shape.beats}
    assert sent["beat-2"] == 0, "the standby sent periodic tasks"
    assert window - 2 <= sent["beat-1"] <= window + 1, f"{sent} heartbeats in {window:.0f} s, one due every second"

    shape.beats["beat-1"].kill()
    shape.beats["beat-1"].wait(10)
    takeover = wait_log(shape, "beat-2", LEADS, seconds=BEAT_LEASE * 4)
    before = shape.log("beat-2").count(SENT_HEARTBEAT)
    time.sleep(3)
    assert shape.log("beat-2").count(SENT_HEARTBEAT) - before >= 2, "the new leader sends no heartbeat"
    assert takeover <= BEAT_LEASE + 1.5, f"the standby took {takeover:.1f} s to lead (lease {BEAT_LEASE:.0f} s)"
    shape.figures.append(f"two beats for {window:.0f} s sent {sent['beat-1'] + sent['beat-2']} heartbeats (one due every second); "
                         f"the standby led {takeover:.1f} s after the leader was killed (lease {BEAT_LEASE:.0f} s)")
