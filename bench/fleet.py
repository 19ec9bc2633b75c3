"""Fleet scale in the production shape: the health sweep and the fleet page at N clusters.

A sandbox process serves N clusters; pksweb runs on PostgreSQL and Redis (production
settings) in this process. Measures:

- the whole health sweep (the same service the beat-scheduled Celery task runs), target < 30 s at 1,000;
- the fleet page's server time (p50/p95/p99 over repeated requests), target p95 <= 150 ms at 1,000,
  and its query count at N and at 10 clusters (must not grow).

    python bench/fleet.py --clusters 1000 --nodes 10 --runs 3 --page-requests 30
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
from _common import ROOT, percentile, spread, write  # noqa: E402

PG_URL = os.environ.get("PKSWEB_BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("PKSWEB_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clusters", type=int, default=1000)
    parser.add_argument("--nodes", type=int, default=10)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--page-requests", type=int, default=30)
    parser.add_argument("--workers", type=int, default=None, help="sweep threads (default: PKSWEB_SWEEP_WORKERS)")
    args = parser.parse_args()

    tag = uuid.uuid4().hex[:8]
    database = f"pksweb_bench_{tag}"
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{database}"')
    out = Path(tempfile.mkdtemp(prefix="fleet-bench-"))
    from cryptography.fernet import Fernet

    os.environ.update({
        "PKSWEB_MODE": "production", "PKSWEB_SECRET_KEY": uuid.uuid4().hex * 2, "ALLOWED_HOSTS": "testserver,127.0.0.1",
        "DATABASE_URL": PG_URL.rsplit("/", 1)[0] + f"/{database}", "REDIS_URL": REDIS_URL,
        "PKSWEB_CREDENTIAL_KEYS": Fernet.generate_key().decode(), "PKSWEB_CHANNEL_PREFIX": f"bench-{tag}",
        "PKSWEB_LOG_LEVEL": "WARNING", "DJANGO_SETTINGS_MODULE": "pksweb.settings", "PKSWEB_STATIC_ROOT": str(out / "static"),
    })
    port = free_port()
    sandbox = subprocess.Popen(
        [sys.executable, "manage.py", "sandbox", "--port", str(port), "--clusters", str(args.clusters), "--nodes", str(args.nodes),
         "--out", str(out), "--heartbeat", "0"], cwd=ROOT, stdout=subprocess.PIPE, text=True,
        env={**os.environ, "PKSWEB_MODE": "embedded", "PKSWEB_DATA_DIR": str(out)})
    try:
        subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, check=True)
        subprocess.run([sys.executable, "manage.py", "collectstatic", "--noinput", "-v0"], cwd=ROOT, check=True)
        import django

        sys.path.insert(0, str(ROOT))
        django.setup()
        from django.db import connection
        from django.test import Client
        from django.test.utils import CaptureQueriesContext

        from clusters.kube import parse_kubeconfig
        from clusters.models import Cluster
        from clusters.services import cluster_register, fleet_sweep
        from pksweb.choices import Role
        from pksweb.services import user_create

        for line in sandbox.stdout:  # type: ignore[union-attr]
            if line.strip() == "ready":
                break
        operator = user_create(username="bench-operator", role=Role.OPERATOR, password=None)
        started = time.perf_counter()
        for path in sorted(out.glob("*.kubeconfig")):
            context, credential = parse_kubeconfig(path.read_text())
            cluster_register(name=context, credential=credential, context=context, created_by=operator, check=False)
        register_seconds = time.perf_counter() - started

        sweeps, statuses = [], {}
        for _ in range(args.runs):
            report = fleet_sweep(workers=args.workers)
            sweeps.append(report.seconds)
            statuses = {"healthy": report.healthy, "degraded": report.degraded, "unreachable": report.unreachable,
                        "probed": report.probed}

        client = Client()
        client.force_login(operator)

        def page_times(n: int) -> tuple[list[float], int]:
            times = []
            client.get("/clusters/")  # warm
            with CaptureQueriesContext(connection) as queries:
                client.get("/clusters/")
            count = len(queries.captured_queries)  # read now: later requests may reset the log
            for _ in range(n):
                t = time.perf_counter()
                response = client.get("/clusters/")
                times.append(time.perf_counter() - t)
                assert response.status_code == 200
            return times, count

        times, queries_n = page_times(args.page_requests)
        api_times = []
        for _ in range(args.page_requests):
            t = time.perf_counter()
            assert client.get("/api/clusters/").status_code == 200
            api_times.append(time.perf_counter() - t)
        keep = list(Cluster.objects.order_by("pk").values_list("pk", flat=True)[:10])
        Cluster.objects.exclude(pk__in=keep).delete()
        _, queries_10 = page_times(3)
    finally:
        sandbox.terminate()
        sandbox.wait(10)
        from django.db import connections

        connections.close_all()
        with psycopg.connect(PG_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')

    sweep_median = statistics.median(sweeps)
    p95 = percentile(times, 95) * 1000
    figures = {
        "clusters": args.clusters, "nodes_per_cluster": args.nodes, "register_seconds": round(register_seconds, 1),
        "sweep_seconds": [round(s, 2) for s in sweeps], "sweep_seconds_median": round(sweep_median, 2), "last_sweep": statuses,
        "page_ms_p50": round(percentile(times, 50) * 1000, 1), "page_ms_p95": round(p95, 1),
        "page_ms_p99": round(percentile(times, 99) * 1000, 1), "page_queries": queries_n, "page_queries_at_10": queries_10,
        "api_ms_p95": round(percentile(api_times, 95) * 1000, 1),
        "sweep_varies_over_20_percent": spread(sweeps) > 0.2,
    }
    path = write("fleet", figures)
    print(f"fleet: {args.clusters} clusters x {args.nodes} nodes (PostgreSQL + Redis, sandbox in its own process)")
    print(f"  health sweep       {figures['sweep_seconds_median']} s median of {args.runs} {figures['sweep_seconds']}   "
          f"target < 30 s   {'pass' if sweep_median < 30 else 'short'}   ({statuses})")
    print(f"  fleet page         p50 {figures['page_ms_p50']} ms, p95 {figures['page_ms_p95']} ms, p99 {figures['page_ms_p99']} ms   "
          f"target p95 <= 150 ms   {'pass' if p95 <= 150 else 'short'}")
    print(f"  fleet page queries {queries_n} at {args.clusters} clusters, {queries_10} at 10   "
          f"{'pass' if queries_n == queries_10 else 'short'}")
    print(f"  API list (page of 50) p95 {figures['api_ms_p95']} ms")
    if figures["sweep_varies_over_20_percent"]:
        print("  note: the sweep time varied more than 20% between runs")
    print(f"  raw numbers: {path}")


if __name__ == "__main__":
    main()
