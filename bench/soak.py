"""Soak: rollouts that keep going while their worker is SIGKILLed again and again and Redis restarts.

The longer variant of ``tests/integration/test_rollout_crash.py``. Production shape:
PostgreSQL, a Redis of its own (so it can be killed), a `celery worker` with embedded
beat (whose poke restarts chains that went quiet), sandbox clusters in a process of
their own with pods to evict. One plan per cluster, all started together; the worker
is killed every ``--kill-every`` seconds (once it has moved a node on since the last
kill) and Redis is killed and restarted empty
``--redis-restarts`` times, spread over the run. At the end, read from the clusters
themselves: every node runs the target, was replaced exactly once, and none is left
cordoned. Drains may take 10 s: a worker killed mid-drain holds that node's lease for
the drain timeout (plus PKSWEB_ROLLOUT_LEASE_SECONDS) before another worker takes it on.

    python bench/soak.py --clusters 10 --nodes 5 --kill-every 4 --redis-restarts 2
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root: tests.support, this checkout's apps
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import figure, print_figures, write  # noqa: E402

from tests.support.redis_server import RedisServer  # noqa: E402
from tests.support.stack import Stack  # noqa: E402

TARGET = "1.31.2"  # what Stack.approved_plans upgrades to


def cluster_facts(path: Path) -> tuple[list[str], dict[str, int], list[str]]:
    """(nodes not at the target, times each node was replaced, nodes cordoned), read from the cluster."""
    from kubernetes import client, config

    api = config.new_client_from_config(str(path))
    core = client.CoreV1Api(api)
    nodes = core.list_node().items
    behind = [n.metadata.name for n in nodes if n.status.node_info.kubelet_version != f"v{TARGET}"]
    cordoned = [n.metadata.name for n in nodes if n.spec.unschedulable]
    replaced = {n.metadata.name: 0 for n in nodes}
    for event in core.list_namespaced_event("default").items:
        if event.reason == "NodeNotReady" and event.involved_object.name in replaced:
            replaced[event.involved_object.name] += 1
    api.close()
    return behind, replaced, cordoned


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clusters", type=int, default=10)
    parser.add_argument("--nodes", type=int, default=5)
    parser.add_argument("--pods-per-node", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=4, help="worker threads")
    parser.add_argument("--kill-every", type=float, default=4.0, help="seconds between SIGKILLs of the worker")
    parser.add_argument("--redis-restarts", type=int, default=2)
    parser.add_argument("--deadline", type=float, default=900, help="seconds the rollouts may take in all")
    args = parser.parse_args()

    redis = RedisServer(Path(tempfile.mkdtemp(prefix="soak-redis-")))
    with Stack("soak", REDIS_URL=redis.url, PKSWEB_ROLLOUT_POKE_SECONDS="1",
               PKSWEB_ROLLOUT_STALE_SECONDS="2", PKSWEB_ROLLOUT_LEASE_SECONDS="3", PKSWEB_BEAT_LEASE_SECONDS="3",
               PKSWEB_HEALTH_INTERVAL="3600") as stack:
        redis.start()
        try:
            folder = stack.sandbox(clusters=args.clusters, nodes=args.nodes, extra=(
                "--pods-per-node", str(args.pods_per_node), "--node-ready-delay", "0.5", "--pod-start-delay", "0.05"))
            stack.migrate()
            stack.sandbox_ready()
            configs = sorted(folder.glob("*.kubeconfig"))
            stack.django()
            from pksweb.models import Event
            from upgrades import services
            from upgrades.models import Rollout, RolloutStep

            operator, plans = stack.approved_plans(configs, drain_timeout_seconds=10, node_ready_timeout_seconds=120)

            def worker() -> subprocess.Popen:
                return stack.worker(pool="threads", concurrency=args.concurrency, beat=True, name=f"soak-{time.monotonic_ns()}")

            running = worker()
            began = time.perf_counter()
            ids = [services.plan_start(plan=plan, by=operator).pk for plan in plans]
            total = RolloutStep.objects.filter(rollout_id__in=ids).count()
            kills, restarts, interrupted, progress_at_kill = 0, 0, set(), 0
            next_kill = time.perf_counter() + args.kill_every
            restart_at = [total * (i + 1) / (args.redis_restarts + 1) for i in range(args.redis_restarts)]
            while Rollout.objects.filter(pk__in=ids, state="running").exists():
                if time.perf_counter() - began > args.deadline:
                    late = list(RolloutStep.objects.filter(rollout_id__in=ids).exclude(phase="done")
                                .values_list("node", "phase", "chain", "last_tick_at"))
                    raise SystemExit(f"the rollouts did not finish in {args.deadline:.0f} s ({kills} kills, {restarts} Redis "
                                     f"restarts); unfinished: {late}; logs in {stack.folder}")
                done = RolloutStep.objects.filter(rollout_id__in=ids, phase="done").count()
                if restart_at and done >= restart_at[0]:
                    restart_at.pop(0)
                    redis.kill()
                    time.sleep(3)
                    redis.start()
                    restarts += 1
                progress = Event.objects.filter(kind="rollout.step_changed").count()
                if time.perf_counter() >= next_kill and progress > progress_at_kill:  # the new worker got going: kill it
                    progress_at_kill = progress
                    interrupted |= set(RolloutStep.objects.filter(rollout_id__in=ids).exclude(phase__in=("pending", "done"))
                                       .values_list("phase", flat=True))
                    os.killpg(running.pid, signal.SIGKILL)  # the worker and its embedded beat
                    running.wait(10)
                    kills += 1
                    running = worker()
                    next_kill = time.perf_counter() + args.kill_every
                time.sleep(0.1)
            wall = time.perf_counter() - began
            states = list(Rollout.objects.filter(pk__in=ids).values_list("state", flat=True))
            reasons = sorted({r for r in Rollout.objects.filter(pk__in=ids).values_list("reason", flat=True) if r})
            behind, cordoned, replaced_once, nodes = [], [], 0, 0
            for path in configs:
                late, replaced, still = cluster_facts(path)
                behind += late
                cordoned += still
                nodes += len(replaced)
                replaced_once += sum(1 for count in replaced.values() if count == 1)
        finally:
            redis.kill()

    succeeded = states.count("succeeded")
    figures = [
        figure("rollouts succeeded", f"{succeeded}/{len(states)}", "", "all", succeeded == len(states)),
        figure("nodes replaced exactly once", f"{replaced_once}/{nodes}", "", "all", replaced_once == nodes),
        figure("nodes not at the target", len(behind), "", "0", not behind),
        figure("nodes left cordoned", len(cordoned), "", "0", not cordoned),
        figure("worker SIGKILLs", kills, "", "", None),
        figure("Redis restarts (empty)", restarts, "", "", None),
        figure(f"all {nodes} nodes upgraded in", round(wall, 1), "s", "", None),
    ]
    path = write("soak", {"clusters": args.clusters, "nodes": nodes, "kills": kills, "redis_restarts": restarts,
                          "phases_interrupted": sorted(interrupted), "states": states, "behind": behind, "cordoned": cordoned,
                          "replaced_once": replaced_once, "wall_seconds": wall}, figures)
    print_figures(f"soak: {args.clusters} clusters x {args.nodes} nodes, worker SIGKILLed every {args.kill_every:g} s, "
                  f"Redis restarted {args.redis_restarts} times", figures)
    print(f"  phases interrupted: {', '.join(sorted(interrupted))}")
    for reason in reasons[:5]:
        print(f"  halted: {reason}")
    print(f"  raw numbers: {path}")
    if succeeded != len(states) or replaced_once != nodes or behind or cordoned:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
