from __future__ import annotations

import os

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

from pksweb.choices import Role
from tests.factories import PASSWORD, MembershipFactory, TenantFactory, UserFactory
from tests.support.clients import api_for


def _sqlite_readers_take_no_table_locks(sender, connection, **kwargs):
    """The SQLite test database is one shared-cache memory database for every thread. There a reader holds
    a table lock that makes a worker thread's write fail at once ("database table is locked") instead of
    waiting: a test polling a row while a Celery worker thread writes it made the worker's task fail.
    Read-uncommitted readers take no table locks (writers still exclude each other)."""
    if connection.vendor == "sqlite":
        with connection.cursor() as cursor:
            cursor.execute("PRAGMA read_uncommitted = true")


def pytest_configure(config):
    from django.db.backends.signals import connection_created

    connection_created.connect(_sqlite_readers_take_no_table_locks, dispatch_uid="pksweb-tests-read-uncommitted")


def pytest_sessionstart(session):
    """The PostgreSQL pass of make test (DATABASE_URL set): say what to start when it is not there."""
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith("postgres"):
        return
    import psycopg

    try:
        psycopg.connect(url, connect_timeout=3).close()
    except psycopg.Error as exc:
        message = f"PostgreSQL at {url} is not reachable ({exc.__class__.__name__}): start it to run the PostgreSQL pass"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            raise pytest.UsageError(message) from None
        pytest.exit(message, returncode=0)


@pytest.fixture
def password() -> str:
    return PASSWORD


@pytest.fixture
def operator(db):
    return UserFactory(username="op", role=Role.OPERATOR)


@pytest.fixture
def approver(db):
    return UserFactory(username="appr", role=Role.APPROVER)


@pytest.fixture
def viewer(db):
    return UserFactory(username="view", role=Role.VIEWER)


@pytest.fixture
def tenant(db):
    return TenantFactory(name="acme-bank")


@pytest.fixture
def other_tenant(db):
    return TenantFactory(name="globex-insurance")


@pytest.fixture
def tenant_admin(db, tenant):
    return MembershipFactory(tenant=tenant, user__username="acme-admin").user


@pytest.fixture
def other_tenant_admin(db, other_tenant):
    return MembershipFactory(tenant=other_tenant, user__username="globex-admin").user


@pytest.fixture
def op_client(operator):
    """A browser session signed in as the operator."""
    from django.test import Client

    client = Client()
    client.force_login(operator)
    return client


@pytest.fixture
def users(operator, approver, viewer, tenant_admin):
    return {"operator": operator, "approver": approver, "viewer": viewer, "tenant-admin": tenant_admin}


@pytest.fixture(autouse=True)
def _fresh_channel_layer(request):
    """Each test starts with an empty in-process channel layer.

    Browser tests talk to a server in another process and run Playwright's own
    event loop in this thread, where async_to_sync may not be used.
    """
    if request.node.get_closest_marker("e2e"):
        yield
        return
    layer = get_channel_layer()
    if hasattr(layer, "flush"):
        async_to_sync(layer.flush)()
    from django.core.cache import cache

    cache.clear()  # snapshots keyed by ids a rolled-back test may reuse
    yield


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    """PBKDF2's deliberate slowness is for attackers, not the test suite."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


# ---- the sandbox: simulated clusters over real HTTP ---------------------------------

_cluster_numbers = iter(range(1, 1_000_000))


@pytest.fixture(scope="session")
def sandbox():
    """One sandbox server for the session; each test adds clusters of its own."""
    from sandbox import Sandbox

    server = Sandbox(seed=7, heartbeat_seconds=0).start()
    yield server
    server.stop()


@pytest.fixture
def sandbox_cluster(sandbox):
    """A fresh 1 control-plane + 3 worker cluster with fast simulated kubelets."""
    name = f"test-{next(_cluster_numbers)}"
    cluster = sandbox.add_cluster(name, nodes=4, pods_per_node=3, pod_start_delay=0.05, node_ready_delay=0.2,
                                  namespace_finalize_delay=0.5, bookmark_seconds=0.2)
    yield cluster
    sandbox.remove_cluster(name)


@pytest.fixture
def sandbox_http(sandbox):
    """An HTTP client that trusts the sandbox's CA (for its control endpoints and raw API requests)."""
    import httpx

    with httpx.Client(verify=sandbox.client_ssl_context(), timeout=30) as http:
        yield http


@pytest.fixture
def kube(sandbox, sandbox_cluster):
    """An official-client ApiClient for ``sandbox_cluster``, built from its kubeconfig."""
    from kubernetes import config

    api_client = config.new_client_from_config_dict(sandbox.kubeconfig(sandbox_cluster.name))
    yield api_client
    api_client.close()


@pytest.fixture
def celery_worker_thread():
    """A real Celery worker in a thread on the in-memory broker, started on an empty queue
    (tasks earlier tests queued without a worker are dropped first)."""
    from celery.contrib.testing.worker import start_worker

    from pksweb.celery import app

    app.control.purge()
    with start_worker(app, pool="solo", perform_ping_check=False, loglevel="WARNING", shutdown_timeout=30) as worker:
        yield worker


# ---- clusters registered in pksweb and API clients -----------------------------------

@pytest.fixture
def operator_api(operator):
    return api_for(operator)


@pytest.fixture
def viewer_api(viewer):
    return api_for(viewer)


@pytest.fixture
def registered(db, sandbox, sandbox_cluster, operator, django_capture_on_commit_callbacks):
    """``sandbox_cluster`` registered in pksweb (by the operator), first probe done."""
    from clusters.kube.credentials import Credential
    from clusters.services import cluster_register
    from clusters.sweep import cluster_probe

    with django_capture_on_commit_callbacks(execute=False):
        cluster = cluster_register(name=sandbox_cluster.name, credential=Credential.from_dict(sandbox.credential(sandbox_cluster.name)),
                                   created_by=operator)
    return cluster_probe(cluster=cluster)


