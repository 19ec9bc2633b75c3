"""The production shape the benchmarks run against: a fresh PostgreSQL database, Redis,
a sandbox process serving the clusters, `celery worker` and `uvicorn` processes.

    with Stack("fleet") as stack:
        kubeconfigs = stack.sandbox(clusters=10, nodes=3)
        stack.migrate(); worker = stack.worker(); web = stack.web()
        stack.django()  # this process talks to the same database
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import psycopg
from _common import ROOT

PG_URL = os.environ.get("PKSWEB_BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("PKSWEB_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Stack:
    def __init__(self, name: str, **env: str) -> None:
        from cryptography.fernet import Fernet

        self.tag = uuid.uuid4().hex[:8]
        self.database = f"pksweb_bench_{self.tag}"
        self.out = Path(tempfile.mkdtemp(prefix=f"{name}-bench-"))
        self.queue = f"bench-{self.tag}"
        self.env = {**{k: v for k, v in os.environ.items() if not k.startswith(("PKSWEB_", "DATABASE_URL", "REDIS_URL"))},
                    "PKSWEB_MODE": "production", "PKSWEB_SECRET_KEY": uuid.uuid4().hex * 2, "ALLOWED_HOSTS": "testserver,127.0.0.1",
                    "DATABASE_URL": PG_URL.rsplit("/", 1)[0] + f"/{self.database}", "REDIS_URL": REDIS_URL,
                    "PKSWEB_SECURE_COOKIES": "0", "PKSWEB_CREDENTIAL_KEYS": Fernet.generate_key().decode(),
                    "PKSWEB_CHANNEL_PREFIX": f"bench-{self.tag}", "PKSWEB_CELERY_QUEUE": self.queue, "PKSWEB_LOG_LEVEL": "WARNING",
                    "PKSWEB_STATIC_ROOT": str(self.out / "static"), "DJANGO_SETTINGS_MODULE": "pksweb.settings", **env}
        self.procs: list[subprocess.Popen] = []
        self.web_port = 0

    def __enter__(self) -> Stack:
        with psycopg.connect(PG_URL, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{self.database}"')
        return self

    def __exit__(self, *exc: Any) -> None:
        for proc in self.procs:
            proc.terminate()
        for proc in self.procs:
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
            conn.execute(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')

    def manage(self, *cmd: str, stdin: str | None = None) -> str:
        return subprocess.run([sys.executable, "manage.py", *cmd], cwd=ROOT, env=self.env, check=True, capture_output=True,
                              text=True, input=stdin).stdout

    def migrate(self, static: bool = False) -> None:
        self.manage("migrate", "-v0")
        if static:
            self.manage("collectstatic", "--noinput", "-v0")

    def sandbox(self, *, clusters: int, nodes: int, extra: tuple[str, ...] = ()) -> Path:
        """Start the sandbox process; returns the folder of kubeconfigs once it serves."""
        folder = self.out / "kubeconfigs"
        proc = subprocess.Popen(
            [sys.executable, "manage.py", "sandbox", "--port", str(free_port()), "--clusters", str(clusters), "--nodes", str(nodes),
             "--out", str(folder), "--heartbeat", "0", *extra],
            cwd=ROOT, stdout=subprocess.PIPE, text=True, env={**self.env, "PKSWEB_MODE": "embedded", "PKSWEB_DATA_DIR": str(self.out)})
        self.procs.append(proc)
        self._sandbox = proc
        return folder

    def sandbox_ready(self, limit: float = 600) -> None:
        deadline = time.monotonic() + limit
        for line in self._sandbox.stdout:  # type: ignore[union-attr]
            if line.strip() == "ready" or time.monotonic() > deadline:
                return
        raise SystemExit("the sandbox process exited early")

    def worker(self, *, pool: str = "solo", concurrency: int = 1, name: str = "worker", beat: bool = False,
               include: str = "", **env: str) -> subprocess.Popen:
        argv = [str(BIN / "celery"), "-A", "pksweb", "worker", "--pool", pool, "-Q", self.queue, "--without-mingle",
                "--without-gossip", "--loglevel", os.environ.get("BENCH_WORKER_LOGLEVEL", "WARNING"), "-n", f"{name}-{self.tag}@%h"]
        if pool != "solo":
            argv += ["--concurrency", str(concurrency)]
        if beat:
            argv += ["-B", "-s", str(self.out / f"{name}-beat")]
        if include:
            argv += ["--include", include]
        log = open(self.out / f"{name}.log", "wb")  # noqa: SIM115 - closed with the process
        # A session of its own: killing its group takes the embedded beat process with it.
        proc = subprocess.Popen(argv, cwd=ROOT, env={**self.env, "PYTHONPATH": str(ROOT / "bench"), **env}, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
        self.procs.append(proc)
        return proc

    def web(self) -> subprocess.Popen:
        self.web_port = free_port()
        log = open(self.out / "web.log", "wb")  # noqa: SIM115 - closed with the process
        proc = subprocess.Popen([str(BIN / "uvicorn"), "pksweb.asgi:application", "--port", str(self.web_port), "--log-level", "warning"],
                                cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        self.procs.append(proc)
        return proc

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    def wait_web(self, limit: float = 60) -> None:
        import httpx

        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise SystemExit(f"the web process did not answer; see {self.out / 'web.log'}")

    def django(self) -> None:
        """Set Django up in this process against the stack's database."""
        import django

        os.environ.update(self.env)
        sys.path.insert(0, str(ROOT))
        django.setup()

    def register(self, configs: list[Path]) -> float:
        """Register clusters without connecting first (a faulty cluster could not be registered otherwise); seconds taken."""
        script = ("import sys\nfrom clusters.kube import parse_kubeconfig\nfrom clusters.services import cluster_register\n"
                  "for path in sys.argv[1:]:\n    context, credential = parse_kubeconfig(open(path).read())\n"
                  "    cluster_register(name=context, credential=credential, context=context, created_by=None, check=False)\n")
        started = time.perf_counter()
        self.manage("shell", "-c", f"import sys; sys.argv = [''] + {[str(p) for p in configs]!r}\n" + script)
        return time.perf_counter() - started

    def approved_plans(self, configs: list[Path], **plan_fields: Any) -> tuple[Any, list[Any]]:
        """Register each cluster (sandbox driver, probed once) and give it an approved one-cluster plan to 1.31.2.

        Needs ``django()`` first; returns (the operator who may start them, the plans).
        """
        from django.db import transaction

        from clusters.kube import parse_kubeconfig
        from clusters.models import Cluster
        from clusters.services import cluster_register
        from clusters.sweep import cluster_probe
        from pksweb.choices import Role
        from pksweb.services import user_create
        from upgrades import services

        operator = user_create(username="bench-op", role=Role.OPERATOR, password=None)
        approver = user_create(username="bench-boss", role=Role.APPROVER, password=None)
        plans = []
        for path in configs:
            context, credential = parse_kubeconfig(path.read_text())
            with transaction.atomic():
                cluster = cluster_register(name=context, credential=credential, context=context, created_by=None, check=False)
            Cluster.objects.filter(pk=cluster.pk).update(upgrade_driver="sandbox")
            cluster = cluster_probe(cluster=Cluster.objects.get(pk=cluster.pk))
            plan = services.plan_create(author=operator, name=f"bench {cluster.name}", target_version="1.31.2",
                                        waves=[[cluster.pk]], **plan_fields)
            plan = services.plan_submit(plan=plan, by=operator)
            plans.append(services.plan_decide(plan=plan, approver=approver, revision=plan.revision, decision="approve"))
        return operator, plans

    def login(self, username: str, password: str) -> Any:
        """An httpx client signed in to the web process."""
        import httpx

        client = httpx.Client(base_url=self.url, timeout=30)
        client.get("/accounts/login/")
        client.post("/accounts/login/", data={"username": username, "password": password,
                                              "csrfmiddlewaretoken": client.cookies["csrftoken"]},
                    headers={"Referer": f"{self.url}/accounts/login/"})
        return client
