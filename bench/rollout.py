"""Rollout overhead: pksweb's own time per node when the driver and drains take no time.

Production shape: PostgreSQL, Redis, a real `celery worker` process (thread pool) running
the rollout ticks; sandbox clusters in their own process whose nodes come back at once
and whose pods start at once. One rollout per cluster, all started together.

With ``--fleet N`` the sandbox serves N clusters in all (``--faulty`` of the others timing
out or refusing) and the worker runs Celery beat's health sweep every 30 s while the
rollouts run: the sweep must still finish within its interval and keep 99% of statuses
younger than 60 s.

    python bench/rollout.py --clusters 50 --nodes 5 --fleet 1000 --faulty 0.1
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root: tests.support, this checkout's apps
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import figure, percentile, print_figures, rss_mib, sandbox_endpoint, write  # noqa: E402

from tests.support.stack import Stack  # noqa: E402


def fault(path: Path, faults: dict) -> None:
    import httpx

    server, token, verify = sandbox_endpoint(path)
    httpx.put(f"{server}/sandbox/faults", json=faults, headers={"Authorization": f"Bearer {token}"}, timeout=10, verify=verify)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class SweepWatch:
    """Sweeps seen through their lease (held while one runs), and the p99 age of the fleet's statuses."""

    def __init__(self) -> None:
        self.running_since: float | None = None
        self.done: list[float] = []
        self.ages_p99: list[float] = []

    def sample(self) -> None:
        from django.utils import timezone

        from clusters.models import Cluster
        from clusters.sweep import SWEEP_LEASE
        from pksweb.models import Lease

        held = Lease.objects.filter(name=SWEEP_LEASE, expires_at__gt=timezone.now()).exists()
        now = time.perf_counter()
        if held and self.running_since is None:
            self.running_since = now
        elif not held and self.running_since is not None:
            self.done.append(now - self.running_since)
            self.running_since = None
        current = timezone.now()
        stamps = list(Cluster.objects.exclude(last_probe_at=None).values_list("last_probe_at", flat=True))
        if stamps and self.done:
            self.ages_p99.append(percentile([(current - at).total_seconds() for at in stamps], 99))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clusters", type=int, default=50)
    parser.add_argument("--nodes", type=int, default=5)
    parser.add_argument("--concurrency", type=int, default=8, help="worker threads")
    parser.add_argument("--fleet", type=int, default=1000, help="clusters in all, swept every 30 s while the rollouts run (0: none)")
    parser.add_argument("--faulty", type=float, default=0.1, help="share of the clusters not upgrading that time out or refuse")
    args = parser.parse_args()
    sweeping = args.fleet > args.clusters

    with Stack("rollout", PKSWEB_PROBE_CONNECT_TIMEOUT="2", PKSWEB_PROBE_READ_TIMEOUT="5") as stack:
        folder = stack.sandbox(clusters=max(args.fleet, args.clusters), nodes=args.nodes, extra=(
            "--pods-per-node", "0", "--node-ready-delay", "0", "--pod-start-delay", "0"))
        stack.migrate()
        stack.sandbox_ready()
        configs = sorted(folder.glob("*.kubeconfig"))
        upgrading, others = configs[:args.clusters], configs[args.clusters:]
        if others:
            stack.register(others)
            for i, path in enumerate(others[:int(len(others) * args.faulty)]):
                fault(path, {"blackhole": True} if i % 2 == 0 else {"unreachable": True})
        worker = stack.worker(pool="threads", concurrency=args.concurrency, beat=sweeping)
        stack.django()
        from clusters.models import Cluster
        from upgrades import services
        from upgrades.models import Rollout, RolloutStep

        operator, plans = stack.approved_plans(upgrading, drain_timeout_seconds=30, health_gate=True)
        sweeps = SweepWatch()
        if sweeping:  # start the rollouts once the first probes and sweep (of a never-probed fleet) are over
            while not sweeps.done or Cluster.objects.filter(last_probe_at=None).exists():
                sweeps.sample()
                time.sleep(0.25)
            sweeps = SweepWatch()
        cpu_before = cpu_seconds(worker.pid)
        began = time.perf_counter()
        rollouts = [services.plan_start(plan=plan, by=operator) for plan in plans]
        deadline = time.perf_counter() + float(os.environ.get("BENCH_ROLLOUT_DEADLINE", "600"))
        peak_rss = 0.0
        wall = None
        while wall is None or (sweeping and len(sweeps.done) < 2):
            peak_rss = max(peak_rss, rss_mib(worker.pid))
            if sweeping:
                sweeps.sample()
            if wall is None and not Rollout.objects.filter(pk__in=[r.pk for r in rollouts], state="running").exists():
                wall = time.perf_counter() - began
                cpu = cpu_seconds(worker.pid) - cpu_before
            if time.perf_counter() > deadline:
                raise SystemExit("rollouts did not finish in time")
            time.sleep(0.25)
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
    cpu_per_node = cpu / nodes if nodes else float("nan")
    figures = [
        figure("rollouts succeeded", f"{states.count('succeeded')}/{len(states)}", "", "all", states.count("succeeded") == len(states)),
        figure("node step wall time, median (0 s driver and drains)", round(median, 2), "s", "<= 1 s", median <= 1),
        figure("node step wall time, p95", round(percentile(durations, 95), 2), "s", "", None),
        figure(f"all {nodes} nodes of {args.clusters} clusters upgraded in", round(wall, 1), "s", "", None),
        figure("pksweb's own time per node (worker CPU" + (", sweeps included)" if sweeping else ")"), round(cpu_per_node, 3), "s",
               "<= 1 s", cpu_per_node <= 1),
        figure("worker threads held per node (wall x threads / nodes)", round(cost, 2), "s", "", None),
        figure("worker RSS, peak", round(peak_rss, 1), "MiB", "<= 300 MiB", peak_rss <= 300),
    ]
    if sweeping:
        slowest, oldest = max(sweeps.done), max(sweeps.ages_p99)
        figures += [
            figure(f"health sweep of {args.fleet} clusters during the rollouts, slowest", round(slowest, 1), "s", "< 30 s", slowest < 30),
            figure("status age p99 during the rollouts (max)", round(oldest, 1), "s", "<= 60 s", oldest <= 60),
        ]
    path = write("rollout", {"fleet": args.fleet, "sweep_seconds": sweeps.done, "status_age_p99_seconds": sweeps.ages_p99[-50:], "clusters": args.clusters, "nodes": args.nodes, "wall_seconds": wall, "step_seconds": durations,
                            "phase_seconds_median": {p: statistics.median(v) for p, v in phases.items()}}, figures)
    print_figures(f"rollout overhead: {args.clusters} clusters x {args.nodes} nodes upgrading at once, one worker ({args.concurrency} threads)"
                  + (f", {args.fleet}-cluster fleet swept alongside" if sweeping else ""), figures)
    print("  median seconds in each phase: " + ", ".join(f"{p} {statistics.median(v):.3f}" for p, v in phases.items()))
    for reason in reasons[:5]:
        print(f"  halted: {reason}")
    print(f"  raw numbers: {path}")


if __name__ == "__main__":
    main()
