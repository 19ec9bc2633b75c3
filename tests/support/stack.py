"""pksweb in its production shape, for the integration tests and the benchmarks: a fresh PostgreSQL database,
Redis, `celery worker` and `uvicorn` processes, and (for the benchmarks) a sandbox process serving the clusters.

    with Stack("fleet") as stack:
        kubeconfigs = stack.sandbox(clusters=10, nodes=3)
        stack.migrate(); worker = stack.worker(); web = stack.web(); stack.wait_web()
        stack.django()  # this process talks to the same database

Each stack has its own database, Celery queue and channel prefix, so it never touches anything else on the
shared services. Every process it starts runs this checkout's code and is stopped when the stack closes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import django
import httpx
import psycopg
import redis
from cryptography.fernet import Fernet
from django.db import connections
from websockets.sync.client import ClientConnection, connect

from tests.support.net import free_port, wait_http
from tests.support.waits import require_service

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
# PKSWEB_BENCH_*_URL: the names the benchmarks read before they shared this harness.
PG_URL = (os.environ.get("PKSWEB_TEST_PG_URL") or os.environ.get("PKSWEB_BENCH_PG_URL")
          or "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("PKSWEB_TEST_REDIS_URL") or os.environ.get("PKSWEB_BENCH_REDIS_URL") or "redis://127.0.0.1:6379/0"
PASSWORD = "integration-passphrase-1"  # make_stack's operator, itop


def base_env(**env: str) -> dict[str, str]:
    """This process's environment without pksweb's own settings (a developer's shell may set them), plus ``env``.
    PYTHONPATH starts at this checkout, so that the processes run its code whatever package is installed."""
    inherited = {k: v for k, v in os.environ.items() if not k.startswith(("PKSWEB_", "DATABASE_URL", "REDIS_URL"))}
    path = os.pathsep.join([str(ROOT), *filter(None, [inherited.get("PYTHONPATH")])])
    return {**inherited, "PYTHONPATH": path, "PYTHONUNBUFFERED": "1", **env}


def manage(env: dict[str, str], *args: str, stdin: str | None = None, timeout: float | None = 120) -> str:
    """``manage.py`` in a process of its own; its output, or an error carrying what it wrote to stderr."""
    result = subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, input=stdin, capture_output=True,
                            text=True, timeout=timeout)
    if result.returncode != 0:
        raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{result.stderr}")
    return result.stdout


def start_sandbox(out: Path, *, clusters: int, nodes: int, extra: tuple[str, ...] = (),
                  env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    """``manage.py sandbox`` serving ``clusters`` clusters; their kubeconfigs are written to ``out``."""
    return subprocess.Popen(
        [sys.executable, "manage.py", "sandbox", "--port", str(free_port()), "--clusters", str(clusters), "--nodes", str(nodes),
         "--out", str(out), "--heartbeat", "0", *extra], cwd=ROOT, stdout=subprocess.PIPE, text=True, env=env)


def sandbox_ready(proc: subprocess.Popen[str]) -> None:
    """Wait until the sandbox process says it serves."""
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.strip() == "ready":
            return
    raise RuntimeError("the sandbox process exited before it was ready")


def require_services() -> None:
    """PostgreSQL and Redis answer (under CI a test fails without them; elsewhere it skips, saying what to start)."""
    try:
        psycopg.connect(PG_URL, connect_timeout=3).close()
    except psycopg.Error as exc:
        require_service("PostgreSQL", f"start it on 127.0.0.1:5432 with trust auth ({exc.__class__.__name__}: {exc})")
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3).ping()
    except redis.RedisError as exc:
        require_service("Redis", f"start redis-server on 127.0.0.1:6379 ({exc})")


class Stack:
    """A fresh database (created on entry, dropped on exit) and the processes started against it.

    ``folder`` holds the processes' logs (a temporary folder by default); ``log_level`` is the level every
    process logs at (the benchmarks keep theirs quiet); ``env`` adds to or overrides the processes' settings.
    """

    def __init__(self, name: str, folder: Path | None = None, *, log_level: str = "WARNING", **env: str) -> None:
        self.tag = uuid.uuid4().hex[:10]
        self.database = f"pksweb_{name}_{self.tag}"
        self.folder = folder or Path(tempfile.mkdtemp(prefix=f"{name}-stack-"))
        self.queue = f"pksweb-{name}-{self.tag}"
        self.log_level = log_level
        self.port = free_port()
        self.env = base_env(**{
            "PKSWEB_MODE": "production", "PKSWEB_SECRET_KEY": uuid.uuid4().hex * 2,
            "PKSWEB_CREDENTIAL_KEYS": Fernet.generate_key().decode(), "DJANGO_SETTINGS_MODULE": "pksweb.settings",
            "DATABASE_URL": PG_URL.rsplit("/", 1)[0] + f"/{self.database}", "REDIS_URL": REDIS_URL,
            "ALLOWED_HOSTS": "127.0.0.1,localhost,testserver", "PKSWEB_SECURE_COOKIES": "0",
            "PKSWEB_CELERY_QUEUE": self.queue, "PKSWEB_CHANNEL_PREFIX": self.queue, "PKSWEB_LOG_LEVEL": log_level,
            "PKSWEB_STATIC_ROOT": str(self.folder / "static"), **env})
        self.procs: list[subprocess.Popen[Any]] = []
        self._logs: list[IO[bytes]] = []
        self._sandbox: subprocess.Popen[str] | None = None
        self._web: subprocess.Popen[bytes] | None = None
        self._django = False

    def __enter__(self) -> Stack:
        with psycopg.connect(PG_URL, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{self.database}"')
        return self

    def __exit__(self, *exc: object) -> None:
        for proc in self.procs:
            proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
        for log in self._logs:
            log.close()
        if self._django:
            connections.close_all()
        with psycopg.connect(PG_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url_of(self, port: int | None) -> str:
        """The URL of the web process on ``port`` (None: the first one's)."""
        return f"http://127.0.0.1:{port or self.port}"

    # ---- processes ----------------------------------------------------------------------

    def manage(self, *args: str, stdin: str | None = None, timeout: float | None = 120, **env: str) -> str:
        return manage({**self.env, **env}, *args, stdin=stdin, timeout=timeout)

    def migrate(self, static: bool = False) -> None:
        self.manage("migrate", "--noinput", "-v0")
        if static:
            self.manage("collectstatic", "--noinput", "-v0")

    def _start(self, name: str, argv: list[str], **popen: Any) -> subprocess.Popen[bytes]:
        log = open(self.folder / f"{name}.log", "ab")  # noqa: SIM115 - closed with the stack
        self._logs.append(log)
        proc = subprocess.Popen(argv, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, **popen)
        self.procs.append(proc)
        return proc

    def worker(self, *, pool: str = "solo", concurrency: int = 1, name: str = "worker", beat: bool = False,
               include: str = "", **env: str) -> subprocess.Popen[bytes]:
        """A `celery worker` on the stack's queue, as the README starts one; ``beat`` embeds Celery beat (its schedule file
        is the name's, so a worker started again under the same name goes on with it). Logs to ``<name>.log``."""
        argv = [str(BIN / "celery"), "-A", "pksweb", "worker", "--pool", pool, "-Q", self.queue, "--without-mingle",
                "--without-gossip", "--loglevel", self.log_level, "-n", f"{name}-{self.tag}-{len(self.procs)}@%h"]
        if pool != "solo":
            argv += ["--concurrency", str(concurrency)]
        if beat:
            argv += ["-B", "-s", str(self.folder / f"{name}-beat")]
        if include:
            argv += ["--include", include]
        # A session of its own: killing its group (os.killpg) takes the embedded beat process with it.
        return self._start(name, argv, env={**self.env, **env}, start_new_session=True)

    def web(self, *, name: str = "web", port: int | None = None) -> subprocess.Popen[bytes]:
        """The ASGI server on the stack's port, as the README starts it (one process). Logs to ``<name>.log``.

        ``port``: a further web process on a port of its own (``free_port()``), beside the first; ``wait_web`` and
        ``url`` stay the first one's, ``url_of(port)`` is the other's."""
        proc = self._start(name, [str(BIN / "uvicorn"), "pksweb.asgi:application", "--host", "127.0.0.1", "--port",
                                  str(port or self.port), "--log-level", self.log_level.lower()], env=self.env)
        if port is None:
            self._web = proc
        return proc

    def beat(self, *, name: str = "beat", **env: str) -> subprocess.Popen[bytes]:
        """A `celery beat` process (its schedule file is the name's). Logs to ``<name>.log``."""
        argv = [str(BIN / "celery"), "-A", "pksweb", "beat", "--loglevel", self.log_level, "-s", str(self.folder / f"{name}-schedule")]
        return self._start(name, argv, env={**self.env, **env})

    def wait_web(self, seconds: float = 60) -> None:
        assert self._web is not None, "web() starts the server first"
        wait_http(self.url + "/healthz", self._web, seconds=seconds, explain=self.log_tail)

    def sandbox(self, *, clusters: int, nodes: int, extra: tuple[str, ...] = ()) -> Path:
        """Start a sandbox process; returns the folder its kubeconfigs are written to (``sandbox_ready()`` waits for them)."""
        folder = self.folder / "kubeconfigs"
        self._sandbox = start_sandbox(folder, clusters=clusters, nodes=nodes, extra=extra,
                                      env={**self.env, "PKSWEB_MODE": "embedded", "PKSWEB_DATA_DIR": str(self.folder)})
        self.procs.append(self._sandbox)
        return folder

    def sandbox_ready(self) -> None:
        assert self._sandbox is not None, "sandbox() starts it first"
        sandbox_ready(self._sandbox)

    def log_tail(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text()[-3000:]}" for p in sorted(self.folder.glob("*.log")))

    # ---- clients --------------------------------------------------------------------------

    def login(self, username: str, password: str) -> httpx.Client:
        """An HTTP client signed in to the web process through the sign-in form."""
        client = httpx.Client(base_url=self.url, timeout=30)
        client.get("/accounts/login/")
        signed_in = client.post("/accounts/login/", data={"username": username, "password": password,
                                                          "csrfmiddlewaretoken": client.cookies["csrftoken"]},
                                headers={"Referer": f"{self.url}/accounts/login/"})
        if signed_in.status_code != 302:
            raise RuntimeError(f"signing in as {username} answered {signed_in.status_code}: {signed_in.text[:500]}")
        return client

    def api(self, username: str) -> httpx.Client:
        """An HTTP client carrying ``username``'s API token."""
        token = self.manage("apitoken", username).strip()
        return httpx.Client(base_url=self.url, headers={"Authorization": f"Token {token}"}, timeout=30)

    def websocket(self, path: str, session: httpx.Client | None = None, port: int | None = None) -> ClientConnection:
        """A websocket to the web process (``port``: another one's), from this origin, with ``session``'s cookie
        (none: anonymous)."""
        url = self.url_of(port)
        headers = {"Origin": url} | ({"Cookie": f"sessionid={session.cookies['sessionid']}"} if session else {})
        return connect(url.replace("http", "ws", 1) + path, additional_headers=headers, open_timeout=10)

    # ---- this process on the stack's database ---------------------------------------------

    def django(self) -> None:
        """Set Django up in this process against the stack's database."""
        os.environ.update(self.env)
        sys.path.insert(0, str(ROOT))
        django.setup()
        self._django = True

    def register(self, configs: list[Path]) -> float:
        """Register clusters without connecting first (a faulty cluster could not be registered otherwise); seconds taken."""
        script = ("import sys\nfrom clusters.kube import parse_kubeconfig\nfrom clusters.services import cluster_register\n"
                  "for path in sys.argv[1:]:\n    context, credential = parse_kubeconfig(open(path).read())\n"
                  "    cluster_register(name=context, credential=credential, context=context, created_by=None, check=False)\n")
        started = time.perf_counter()
        self.manage("shell", "-c", f"import sys; sys.argv = [''] + {[str(p) for p in configs]!r}\n" + script, timeout=None)
        return time.perf_counter() - started

    def fleet_api(self, configs: list[Path], driver: str = "sandbox") -> tuple[httpx.Client, httpx.Client, dict[str, int]]:
        """In one manage.py call: an operator (``fleet-op``) and an approver (``fleet-boss``), and the clusters of
        ``configs`` registered without connecting first, upgraded by ``driver``. Returns their API clients and the
        clusters' ids by name (for tests that, unlike the benchmarks, cannot set Django up in their own process)."""
        script = ("import json\nfrom django.db import transaction\nfrom clusters.kube import parse_kubeconfig\n"
                  "from clusters.models import Cluster\nfrom clusters.services import cluster_register\n"
                  "from pksweb import services\nfrom pksweb.choices import Role\nids, tokens = {}, []\n"
                  "for path in PATHS:\n    context, credential = parse_kubeconfig(open(path).read())\n"
                  "    with transaction.atomic():\n"
                  "        cluster = cluster_register(name=context, credential=credential, context=context, created_by=None, check=False)\n"
                  "    Cluster.objects.filter(pk=cluster.pk).update(upgrade_driver=DRIVER)\n    ids[context] = cluster.pk\n"
                  "for name, role in (('fleet-op', Role.OPERATOR), ('fleet-boss', Role.APPROVER)):\n"
                  "    user = services.user_create(username=name, role=role, password=None)\n"
                  "    tokens.append(services.api_token_get_or_create(user=user))\n"
                  "print(json.dumps({'ids': ids, 'tokens': tokens}))\n")
        out = self.manage("shell", "-c", f"PATHS = {[str(p) for p in configs]!r}\nDRIVER = {driver!r}\n" + script)
        made = json.loads(out.strip().splitlines()[-1])
        op, boss = (httpx.Client(base_url=self.url, headers={"Authorization": f"Token {token}"}, timeout=30)
                    for token in made["tokens"])
        return op, boss, made["ids"]

    def approved_plans(self, configs: list[Path], **plan_fields: Any) -> tuple[Any, list[Any]]:
        """Register each cluster (sandbox driver, probed once) and give it an approved one-cluster plan to 1.31.2.

        Needs ``django()`` first (hence the imports here); returns (the operator who may start them, the plans).
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


def make_stack(folder: Path, *, with_worker: bool, **env: str) -> Iterator[Stack]:
    """The integration tests' stack (for a fixture to yield from): migrated, static files collected, an operator
    ``itop`` signing in with PASSWORD, the web server answering and (``with_worker``) a celery worker. Logs at INFO."""
    require_services()
    with Stack("it", folder, log_level="INFO", **env) as stack:
        stack.migrate(static=True)
        stack.manage("createuser", "itop", "--role", "operator", "--password-stdin", stdin=PASSWORD + "\n")
        if with_worker:
            stack.worker()
        stack.web()
        stack.wait_web(30)
        yield stack
