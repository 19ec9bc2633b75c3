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
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx
import psycopg
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, figure, percentile, print_figures, rss_mib, spread, write  # noqa: E402

PG_URL = os.environ.get("PKSWEB_BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("PKSWEB_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
BIN = Path(sys.executable).parent
INTERVAL = 30.0


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_line(proc: subprocess.Popen, text: str, limit: float = 600) -> None:
    deadline = time.monotonic() + limit
    for line in proc.stdout:  # type: ignore[union-attr]
        if line.strip() == text or time.monotonic() > deadline:
            return
    raise SystemExit("a helper process exited early")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clusters", type=int, default=1000)
    parser.add_argument("--nodes", type=int, default=10)
    parser.add_argument("--faulty", type=float, default=0.1, help="share of clusters timing out or refusing")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--page-requests", type=int, default=30)
    args = parser.parse_args()

    tag = uuid.uuid4().hex[:8]
    database = f"pksweb_bench_{tag}"
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{database}"')
    out = Path(tempfile.mkdtemp(prefix="fleet-bench-"))
    from cryptography.fernet import Fernet

    env = {**{k: v for k, v in os.environ.items() if not k.startswith(("PKSWEB_", "DATABASE_URL", "REDIS_URL"))},
           "PKSWEB_MODE": "production", "PKSWEB_SECRET_KEY": uuid.uuid4().hex * 2, "ALLOWED_HOSTS": "testserver,127.0.0.1",
           "DATABASE_URL": PG_URL.rsplit("/", 1)[0] + f"/{database}", "REDIS_URL": REDIS_URL, "PKSWEB_SECURE_COOKIES": "0",
           "PKSWEB_CREDENTIAL_KEYS": Fernet.generate_key().decode(), "PKSWEB_CHANNEL_PREFIX": f"bench-{tag}",
           "PKSWEB_CELERY_QUEUE": f"bench-{tag}", "PKSWEB_LOG_LEVEL": "WARNING", "PKSWEB_STATIC_ROOT": str(out / "static"),
           "PKSWEB_PROBE_CONNECT_TIMEOUT": "2", "PKSWEB_PROBE_READ_TIMEOUT": "5"}

    def manage(*cmd: str, stdin: str | None = None) -> str:
        return subprocess.run([sys.executable, "manage.py", *cmd], cwd=ROOT, env=env, check=True, capture_output=True,
                              text=True, input=stdin).stdout

    procs: list[subprocess.Popen] = []
    sandbox_port, web_port = free_port(), free_port()
    try:
        sandbox = subprocess.Popen(
            [sys.executable, "manage.py", "sandbox", "--port", str(sandbox_port), "--clusters", str(args.clusters),
             "--nodes", str(args.nodes), "--out", str(out / "kubeconfigs"), "--heartbeat", "0"],
            cwd=ROOT, stdout=subprocess.PIPE, text=True, env={**env, "PKSWEB_MODE": "embedded", "PKSWEB_DATA_DIR": str(out)})
        procs.append(sandbox)
        manage("migrate", "-v0")
        manage("collectstatic", "--noinput", "-v0")
        manage("createuser", "bench", "--role", "operator", "--password-stdin", stdin="bench-passphrase-1\n")
        wait_line(sandbox, "ready")
        configs = sorted((out / "kubeconfigs").glob("*.kubeconfig"))
        # Register without connecting first (a faulty cluster could not be registered otherwise).
        register = ("import sys, yaml\nfrom clusters.kube import parse_kubeconfig\nfrom clusters.services import cluster_register\n"
                    "for path in sys.argv[1:]:\n    context, credential = parse_kubeconfig(open(path).read())\n"
                    "    cluster_register(name=context, credential=credential, context=context, created_by=None, check=False)\n")
        started = time.perf_counter()
        manage("shell", "-c", f"import sys; sys.argv = [''] + {[str(p) for p in configs]!r}\n" + register)
        register_seconds = time.perf_counter() - started

        faulty = configs[: int(len(configs) * args.faulty)]
        for i, path in enumerate(faulty):
            config = yaml.safe_load(path.read_text())
            server, token = config["clusters"][0]["cluster"]["server"], config["users"][0]["user"]["token"]
            fault = {"blackhole": True} if i % 2 == 0 else {"unreachable": True}
            httpx.put(f"{server}/sandbox/faults", json=fault, headers={"Authorization": f"Bearer {token}"}, timeout=10)
        healthy_sample = []
        for path in configs[len(faulty):][:20]:
            config = yaml.safe_load(path.read_text())
            healthy_sample.append((config["clusters"][0]["cluster"]["server"], config["users"][0]["user"]["token"]))

        worker_log = open(out / "worker.log", "wb")  # noqa: SIM115 - closed at exit
        worker = subprocess.Popen([str(BIN / "celery"), "-A", "pksweb", "worker", "--pool", "solo", "-Q", env["PKSWEB_CELERY_QUEUE"],
                                   "--without-mingle", "--without-gossip", "--loglevel", "WARNING"], cwd=ROOT, env=env,
                                  stdout=worker_log, stderr=subprocess.STDOUT)
        procs.append(worker)
        web_log = open(out / "web.log", "wb")  # noqa: SIM115 - closed at exit
        web = subprocess.Popen([str(BIN / "uvicorn"), "pksweb.asgi:application", "--port", str(web_port), "--log-level", "warning"],
                               cwd=ROOT, env=env, stdout=web_log, stderr=subprocess.STDOUT)
        procs.append(web)

        import django

        os.environ.update(env)
        os.environ["DJANGO_SETTINGS_MODULE"] = "pksweb.settings"
        sys.path.insert(0, str(ROOT))
        django.setup()
        from celery import Celery
        from django.db import connection
        from django.db.models import Count, Max, Min
        from django.test.utils import CaptureQueriesContext

        from clusters.models import Cluster

        app = Celery(broker=REDIS_URL)
        # Registration queued a first probe of every cluster: let the worker finish those first.
        settle = time.perf_counter()
        while Cluster.objects.filter(last_probe_at__isnull=True).exists() and time.perf_counter() - settle < 600:
            time.sleep(0.5)
        time.sleep(1)
        sweeps, ages = [], []
        budget: dict[str, int] = {}
        for run in range(args.runs):
            for server, token in healthy_sample:
                httpx.delete(f"{server}/sandbox/stats", headers={"Authorization": f"Bearer {token}"}, timeout=10)
            before = Cluster.objects.aggregate(m=Max("last_probe_at"))["m"]
            began = time.perf_counter()
            app.send_task("clusters.tasks.health_sweep", queue=env["PKSWEB_CELERY_QUEUE"])
            while True:
                time.sleep(0.25)
                oldest = Cluster.objects.aggregate(m=Min("last_probe_at"))["m"]
                if oldest is not None and before is not None and oldest > before:
                    break
                if time.perf_counter() - began > 600:
                    raise SystemExit("the sweep did not finish in 10 minutes; see " + str(out / "worker.log"))
            sweeps.append(time.perf_counter() - began)
            connection.close()
            if run == 0:
                for server, token in healthy_sample:
                    stats = httpx.get(f"{server}/sandbox/stats", headers={"Authorization": f"Bearer {token}"}, timeout=10).json()
                    for key, value in stats.items():
                        budget[key] = max(budget.get(key, 0), value)
            ages.append(INTERVAL + sweeps[-1])  # a status is at most one interval plus one sweep old
        statuses = dict(Cluster.objects.order_by().values_list("status").annotate(n=Count("id")))
        worker_rss = rss_mib(worker.pid)

        client = httpx.Client(base_url=f"http://127.0.0.1:{web_port}", timeout=30)
        client.get("/accounts/login/")
        client.post("/accounts/login/", data={"username": "bench", "password": "bench-passphrase-1",
                                              "csrfmiddlewaretoken": client.cookies["csrftoken"]},
                    headers={"Referer": f"http://127.0.0.1:{web_port}/accounts/login/"})

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
