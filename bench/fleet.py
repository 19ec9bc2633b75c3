"""Fleet scale in the production shape: the health sweep and the fleet page at N clusters.

A sandbox process serves N clusters (a share of them timing out or refusing); pksweb
runs on PostgreSQL and Redis with a real `celery worker` process running the
beat task's sweep and a real `uvicorn` process serving the pages. Measures:

- the whole sweep, as the worker runs it (target: within its 30 s interval), and the
  bound on how old a status can get (interval + the sweep's own duration; target 60 s);
- what one sweep asks of each cluster (target: one /readyz, one /version, one node list
  with resourceVersion=0, no cluster-wide pod list);
- the fleet page (p95 <= 150 ms, p99 <= 300 ms), its query count at N and at 10 clusters,
  and the paginated API list (p95 <= 100 ms);
- resident memory of the web and the worker process (<= 300 MiB each).

    python bench/fleet.py --clusters 1000 --nodes 10 --faulty 0.1 --runs 3 --page-requests 30
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root: tests.support, this checkout's apps
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import figure, percentile, print_figures, rss_mib, sandbox_endpoint, spread, write  # noqa: E402

from tests.support.stack import REDIS_URL, Stack  # noqa: E402

INTERVAL = 30.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clusters", type=int, default=1000)
    parser.add_argument("--nodes", type=int, default=10)
    parser.add_argument("--faulty", type=float, default=0.1, help="share of clusters timing out or refusing")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--page-requests", type=int, default=30)
    args = parser.parse_args()

    with Stack("fleet", PKSWEB_PROBE_CONNECT_TIMEOUT="2", PKSWEB_PROBE_READ_TIMEOUT="5") as stack:
        folder = stack.sandbox(clusters=args.clusters, nodes=args.nodes)
        stack.migrate(static=True)
        stack.manage("createuser", "bench", "--role", "operator", "--password-stdin", stdin="bench-passphrase-1\n")
        stack.sandbox_ready()
        configs = sorted(folder.glob("*.kubeconfig"))
        register_seconds = stack.register(configs)

        faulty = configs[: int(len(configs) * args.faulty)]
        for i, path in enumerate(faulty):
            server, token, verify = sandbox_endpoint(path)
            fault = {"blackhole": True} if i % 2 == 0 else {"unreachable": True}
            httpx.put(f"{server}/sandbox/faults", json=fault, headers={"Authorization": f"Bearer {token}"}, timeout=10, verify=verify)
        healthy_sample = [sandbox_endpoint(path) for path in configs[len(faulty):][:20]]

        worker = stack.worker()
        web = stack.web()
        stack.django()
        from celery import Celery
        from django.db import connection
        from django.db.models import Count, Max, Min
        from django.test.utils import CaptureQueriesContext

        from clusters.models import Cluster
        from clusters.sweep import SWEEP_LEASE
        from pksweb.models import Lease

        app = Celery(broker=REDIS_URL)
        # Registration queued a first probe of every cluster: let the worker finish those first.
        settle = time.perf_counter()
        while Cluster.objects.filter(last_probe_at__isnull=True).exists() and time.perf_counter() - settle < 600:
            time.sleep(0.5)
        time.sleep(1)
        sweeps, ages = [], []
        budget: dict[str, int] = {}
        for run in range(args.runs):
            for server, token, verify in healthy_sample:
                httpx.delete(f"{server}/sandbox/stats", headers={"Authorization": f"Bearer {token}"}, timeout=10, verify=verify)
            before = Cluster.objects.aggregate(m=Max("last_probe_at"))["m"]
            # Sweeps run back to back here; the lease that keeps a sweep to once per interval is the next interval's.
            Lease.objects.filter(name=SWEEP_LEASE).delete()
            began = time.perf_counter()
            app.send_task("clusters.tasks.health_sweep", queue=stack.queue)
            while True:
                time.sleep(0.25)
                oldest = Cluster.objects.aggregate(m=Min("last_probe_at"))["m"]
                if oldest is not None and before is not None and oldest > before:
                    break
                if time.perf_counter() - began > 600:
                    raise SystemExit("the sweep did not finish in 10 minutes; see " + str(stack.folder / "worker.log"))
            sweeps.append(time.perf_counter() - began)
            connection.close()
            if run == 0:
                for server, token, verify in healthy_sample:
                    stats = httpx.get(f"{server}/sandbox/stats", headers={"Authorization": f"Bearer {token}"}, timeout=10,
                                      verify=verify).json()
                    for key, value in stats.items():
                        budget[key] = max(budget.get(key, 0), value)
            ages.append(INTERVAL + sweeps[-1])  # a status is at most one interval plus one sweep old
        statuses = dict(Cluster.objects.order_by().values_list("status").annotate(n=Count("id")))
        worker_rss = rss_mib(worker.pid)

        stack.wait_web()
        client = stack.login("bench", "bench-passphrase-1")

        def timed(path: str, n: int) -> list[float]:
            client.get(path)
            times = []
            for _ in range(n):
                t = time.perf_counter()
                assert client.get(path).status_code == 200
                times.append(time.perf_counter() - t)
            return times

        page = timed("/clusters/", args.page_requests)
        api = timed("/api/clusters/", args.page_requests)
        web_rss = rss_mib(web.pid)

        from django.test import Client as DjangoClient

        from pksweb.models import User

        django_client = DjangoClient()
        django_client.force_login(User.objects.get(username="bench"))

        def queries() -> int:
            with CaptureQueriesContext(connection) as captured:
                django_client.get("/clusters/", HTTP_HOST="testserver")
            return len(captured.captured_queries)

        queries_n = queries()
        keep = list(Cluster.objects.order_by("pk").values_list("pk", flat=True)[:10])
        Cluster.objects.exclude(pk__in=keep).delete()
        queries_10 = queries()

    sweep_median, sweep_max = statistics.median(sweeps), max(sweeps)
    p95, p99, api95 = percentile(page, 95) * 1000, percentile(page, 99) * 1000, percentile(api, 95) * 1000
    per_cluster_ok = budget.get("readyz", 0) <= 1 and budget.get("version", 0) <= 1 and budget.get("node_list_rv0", 0) <= 1 \
        and not budget.get("node_list") and not budget.get("pod_list_cluster_wide")
    figures = [
        figure(f"health sweep, {args.clusters} clusters ({int(args.faulty * 100)}% faulty), median", round(sweep_median, 2), "s", "< 30 s", sweep_median < 30),
        figure("health sweep, slowest run", round(sweep_max, 2), "s", "< 30 s", sweep_max < 30),
        figure("oldest status (interval + sweep)", round(max(ages), 1), "s", "<= 60 s", max(ages) <= 60),
        figure("requests per cluster per sweep (max)", sum(budget.values()), "req", "1 readyz+1 version+1 nodes", per_cluster_ok),
        figure("fleet page p95", round(p95, 1), "ms", "<= 150 ms", p95 <= 150),
        figure("fleet page p99", round(p99, 1), "ms", "<= 300 ms", p99 <= 300),
        figure(f"fleet page queries at {args.clusters} / at 10", f"{queries_n}/{queries_10}", "", "equal", queries_n == queries_10),
        figure("cluster list API p95 (page of 50)", round(api95, 1), "ms", "<= 100 ms", api95 <= 100),
        figure("web process RSS", round(web_rss, 1), "MiB", "<= 300 MiB", web_rss <= 300),
        figure("worker process RSS", round(worker_rss, 1), "MiB", "<= 300 MiB", worker_rss <= 300),
    ]
    data = {"clusters": args.clusters, "nodes_per_cluster": args.nodes, "faulty": args.faulty, "register_seconds": round(register_seconds, 1),
            "sweep_seconds": [round(s, 2) for s in sweeps], "statuses": statuses, "requests_per_cluster": budget,
            "page_ms": [round(t * 1000, 1) for t in page], "api_ms": [round(t * 1000, 1) for t in api],
            "sweep_varies_over_20_percent": spread(sweeps) > 0.2}
    path = write("fleet", data, figures)
    print_figures(f"fleet: {args.clusters} clusters x {args.nodes} nodes, production shape (PostgreSQL, Redis, worker and web processes)",
                  figures)
    print(f"  statuses after the sweeps: {statuses}; requests per healthy cluster in one sweep: {budget}")
    if data["sweep_varies_over_20_percent"]:
        print(f"  note: the sweep time varied more than 20% between runs: {data['sweep_seconds']}")
    print(f"  raw numbers: {path}")


if __name__ == "__main__":
    main()
