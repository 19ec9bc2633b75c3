"""Rollout overhead: pksweb's own time per node when the driver and drains take no time.

Production shape: PostgreSQL, Redis, a real `celery worker` process (thread pool) running
the rollout ticks; sandbox clusters in their own process whose nodes come back at once
and whose pods start at once. One rollout per cluster, all started together.

    python bench/rollout.py --clusters 50 --nodes 5
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import figure, percentile, print_figures, rss_mib, write  # noqa: E402
from _stack import Stack  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clusters", type=int, default=50)
    parser.add_argument("--nodes", type=int, default=5)
    parser.add_argument("--concurrency", type=int, default=8, help="worker threads")
    args = parser.parse_args()

    with Stack("rollout") as stack:
        folder = stack.sandbox(clusters=args.clusters, nodes=args.nodes, extra=(
            "--pods-per-node", "0", "--node-ready-delay", "0", "--pod-start-delay", "0"))
        stack.migrate()
        stack.sandbox_ready()
        worker = stack.worker(pool="threads", concurrency=args.concurrency)
        stack.django()
        from django.db import transaction

        from clusters.kube import parse_kubeconfig
        from clusters.models import Cluster
        from clusters.services import cluster_probe, cluster_register
        from pksweb.choices import Role
        from pksweb.services import user_create
        from upgrades import services
        from upgrades.models import Rollout, RolloutStep

        operator = user_create(username="bench-op", role=Role.OPERATOR, password=None)
        approver = user_create(username="bench-boss", role=Role.APPROVER, password=None)
        clusters = []
        for path in sorted(folder.glob("*.kubeconfig")):
            context, credential = parse_kubeconfig(path.read_text())
            with transaction.atomic():
                cluster = cluster_register(name=context, credential=credential, context=context, created_by=None, check=False)
            Cluster.objects.filter(pk=cluster.pk).update(upgrade_driver="sandbox")
            clusters.append(cluster_probe(cluster=Cluster.objects.get(pk=cluster.pk)))
        plans = []
        for cluster in clusters:
            plan = services.plan_create(author=operator, name=f"bench {cluster.name}", target_version="1.31.2",
                                        waves=[[cluster.pk]], drain_timeout_seconds=30, health_gate=True)
            plan = services.plan_submit(plan=plan, by=operator)
            plans.append(services.plan_decide(plan=plan, approver=approver, revision=plan.revision, decision="approve"))
        began = time.perf_counter()
        rollouts = [services.plan_start(plan=plan, by=operator) for plan in plans]
        deadline = time.perf_counter() + float(os.environ.get("BENCH_ROLLOUT_DEADLINE", "600"))
        peak_rss = 0.0
        while Rollout.objects.filter(pk__in=[r.pk for r in rollouts], state="running").exists():
            peak_rss = max(peak_rss, rss_mib(worker.pid))
            if time.perf_counter() > deadline:
                raise SystemExit("rollouts did not finish in 30 minutes")
            time.sleep(0.5)
        wall = time.perf_counter() - began
        states = list(Rollout.objects.filter(pk__in=[r.pk for r in rollouts]).values_list("state", flat=True))
        reasons = sorted({r for r in Rollout.objects.filter(pk__in=[r.pk for r in rollouts]).values_list("reason", flat=True) if r})
        durations = [(s.finished_at - s.started_at).total_seconds() for s in RolloutStep.objects.filter(phase="done")]
        # Where a node's time goes: from each phase's event to the next one's, per step.
        from pksweb.models import Event

        marks: dict[int, list[tuple[float, str]]] = {}
        for created, payload in Event.objects.filter(kind="rollout.step_changed").values_list("created_at", "payload"):
            marks.setdefault(payload["step"], []).append((created.timestamp(), payload["phase"]))
        phases: dict[str, list[float]] = {}
        for stamps in marks.values():
            stamps.sort()
            for (at, phase), (later, _) in zip(stamps, stamps[1:], strict=False):
                phases.setdefault(phase, []).append(later - at)

    nodes = args.clusters * args.nodes
    median = statistics.median(durations) if durations else float("nan")
    cost = wall * args.concurrency / nodes if nodes else float("nan")
    figures = [
        figure("rollouts succeeded", f"{states.count('succeeded')}/{len(states)}", "", "all", states.count("succeeded") == len(states)),
        figure("node step wall time, median (0 s driver and drains)", round(median, 2), "s", "<= 1 s", median <= 1),
        figure("node step wall time, p95", round(percentile(durations, 95), 2), "s", "", None),
        figure(f"all {nodes} nodes of {args.clusters} clusters upgraded in", round(wall, 1), "s", "", None),
        figure("worker thread-seconds per node", round(cost, 2), "s", "<= 1 s", cost <= 1),
        figure("worker RSS, peak", round(peak_rss, 1), "MiB", "<= 300 MiB", peak_rss <= 300),
    ]
    path = write("rollout", {"clusters": args.clusters, "nodes": args.nodes, "wall_seconds": wall, "step_seconds": durations,
                            "phase_seconds_median": {p: statistics.median(v) for p, v in phases.items()}}, figures)
    print_figures(f"rollout overhead: {args.clusters} clusters x {args.nodes} nodes upgrading at once, one worker ({args.concurrency} threads)", figures)
    print("  median seconds in each phase: " + ", ".join(f"{p} {statistics.median(v):.3f}" for p, v in phases.items()))
    for reason in reasons[:5]:
        print(f"  halted: {reason}")
    print(f"  raw numbers: {path}")


if __name__ == "__main__":
    main()
