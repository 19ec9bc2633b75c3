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
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, figure, percentile, print_figures, rss_mib, write  # noqa: E402
from fleet import BIN, PG_URL, REDIS_URL, free_port, wait_line  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clusters", type=int, default=50)
    parser.add_argument("--nodes", type=int, default=5)
    parser.add_argument("--concurrency", type=int, default=8, help="worker threads")
    args = parser.parse_args()

    tag = uuid.uuid4().hex[:8]
    database = f"pksweb_bench_{tag}"
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{database}"')
    out = Path(tempfile.mkdtemp(prefix="rollout-bench-"))
    from cryptography.fernet import Fernet

    env = {**{k: v for k, v in os.environ.items() if not k.startswith(("PKSWEB_", "DATABASE_URL", "REDIS_URL"))},
           "PKSWEB_MODE": "production", "PKSWEB_SECRET_KEY": uuid.uuid4().hex * 2, "ALLOWED_HOSTS": "127.0.0.1",
           "DATABASE_URL": PG_URL.rsplit("/", 1)[0] + f"/{database}", "REDIS_URL": REDIS_URL,
           "PKSWEB_CREDENTIAL_KEYS": Fernet.generate_key().decode(), "PKSWEB_CHANNEL_PREFIX": f"bench-{tag}",
           "PKSWEB_CELERY_QUEUE": f"bench-{tag}", "PKSWEB_LOG_LEVEL": "WARNING", "DJANGO_SETTINGS_MODULE": "pksweb.settings"}
    procs: list[subprocess.Popen] = []
    try:
        sandbox = subprocess.Popen(
            [sys.executable, "manage.py", "sandbox", "--port", str(free_port()), "--clusters", str(args.clusters), "--nodes",
             str(args.nodes), "--pods-per-node", "0", "--out", str(out / "kubeconfigs"), "--heartbeat", "0",
             "--node-ready-delay", "0", "--pod-start-delay", "0"],
            cwd=ROOT, stdout=subprocess.PIPE, text=True, env={**env, "PKSWEB_MODE": "embedded", "PKSWEB_DATA_DIR": str(out)})
        procs.append(sandbox)
        subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True)
        wait_line(sandbox, "ready")
        worker = subprocess.Popen([str(BIN / "celery"), "-A", "pksweb", "worker", "--pool", "threads", "--concurrency",
                                   str(args.concurrency), "-Q", env["PKSWEB_CELERY_QUEUE"], "--without-mingle", "--without-gossip",
                                   "--loglevel", os.environ.get("BENCH_WORKER_LOGLEVEL", "WARNING")], cwd=ROOT, env=env, stdout=open(out / "worker.log", "wb"),  # noqa: SIM115
                                  stderr=subprocess.STDOUT)
        procs.append(worker)
        os.environ.update(env)
        sys.path.insert(0, str(ROOT))
        import django

        django.setup()
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
        for path in sorted((out / "kubeconfigs").glob("*.kubeconfig")):
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
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
        try:
            from django.db import connections

            connections.close_all()
        except Exception:  # Django may not have been set up when an early step failed
            pass
        with psycopg.connect(PG_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')

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
    path = write("rollout", {"clusters": args.clusters, "nodes": args.nodes, "wall_seconds": wall, "step_seconds": durations}, figures)
    print_figures(f"rollout overhead: {args.clusters} clusters x {args.nodes} nodes upgrading at once, one worker ({args.concurrency} threads)", figures)
    for reason in reasons[:5]:
        print(f"  halted: {reason}")
    print(f"  raw numbers: {path}")


if __name__ == "__main__":
    main()
