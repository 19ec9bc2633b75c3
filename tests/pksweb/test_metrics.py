"""GET /metrics: Prometheus' text format with every family pksweb promises, behind the token when one is set;
counts that move when requests and tasks happen; several processes added up; the fleet's figures read from the
database in a number of queries that does not grow with the fleet."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from clusters.models import Cluster, HealthSpan
from clusters.sweep import SWEEP_LEASE
from pksweb import metrics
from pksweb.celery import app
from pksweb.leases import lease_acquire
from tenants.models import Tenant, TenantNamespace
from tests.support.net import free_port
from upgrades.models import Rollout, RolloutStep, UpgradePlan

ROOT = Path(__file__).resolve().parents[2]
# Every family the issue names (counters without their _total, as the parser names them), pksweb's and the fleet's.
FAMILIES = {
    "pksweb_http_requests", "pksweb_http_request_duration_seconds", "pksweb_websockets_open", "pksweb_event_lag_seconds",
    "pksweb_fanout_deliveries", "pksweb_celery_task_duration_seconds", "pksweb_celery_tasks", "pksweb_sweep_duration_seconds",
    "pksweb_sweep_lease_held", "pksweb_sweep_lease_expires_in_seconds",
    "pksweb_cluster_status", "pksweb_cluster_availability_ratio", "pksweb_cluster_nodes_ready", "pksweb_cluster_nodes",
    "pksweb_rollouts", "pksweb_rollout_nodes_done", "pksweb_rollout_nodes", "pksweb_tenant_namespaces",
    "pksweb_fleet_figures_up",
}


TOKEN = "test-scrape-token-0123456789"


@pytest.fixture(autouse=True)
def _scrape_token(settings):
    settings.PKSWEB_METRICS_TOKEN = TOKEN


def scrape(client: Client | None = None, **headers: str) -> dict[str, dict[tuple, float]]:
    """family name → {(sample name, sorted labels): value} of one scrape (which must answer 200); Prometheus' bearer
    token unless other headers are given."""
    response = (client or Client()).get("/metrics", headers=headers or {"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain; version=0.0.4")
    return parse(response.content.decode())


def parse(text: str) -> dict[str, dict[tuple, float]]:
    return {family.name: {(s.name, tuple(sorted(s.labels.items()))): s.value for s in family.samples}
            for family in text_string_to_metric_families(text)}


def value(figures: dict, family: str, sample: str = "", **labels: str) -> float:
    return figures.get(family, {}).get((sample or family, tuple(sorted(labels.items()))), 0.0)


@pytest.mark.django_db
def test_the_scrape_answers_every_family_in_text_format():
    figures = scrape()
    assert FAMILIES <= set(figures)
    assert value(figures, "pksweb_fleet_figures_up") == 1.0  # read from the database (tests/integration/test_outages.py: 0)


@pytest.mark.django_db
def test_a_scrape_needs_the_token_or_a_platform_session(settings, operator, viewer, tenant_admin):
    """The figures name every cluster and tenant: Prometheus with the token, and people who see the whole fleet."""
    settings.PKSWEB_METRICS_TOKEN = "scrape-secret-1234567890"
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Token scrape-secret-1234567890"},
                    {"Authorization": "Bearer scrape-secret-12345678901"}, {"Authorization": "Bearer "}):
        refused = Client().get("/metrics", headers=headers)
        assert refused.status_code == 401, headers
        assert refused["WWW-Authenticate"].startswith("Bearer") and b"pksweb_" not in refused.content
        assert b"PKSWEB_METRICS_TOKEN" in refused.content
    assert "pksweb_cluster_status" in scrape(Authorization="Bearer scrape-secret-1234567890")
    assert "pksweb_cluster_status" in scrape(Authorization="bearer  scrape-secret-1234567890 ")
    for person in (operator, viewer):
        signed_in = Client()
        signed_in.force_login(person)
        assert "pksweb_cluster_status" in scrape(signed_in, Accept="text/plain")
    tenant = Client()
    tenant.force_login(tenant_admin)
    refused = tenant.get("/metrics", headers={"Authorization": "Bearer wrong"})
    assert refused.status_code == 403 and b"pksweb_" not in refused.content and b"platform team" in refused.content
    settings.PKSWEB_METRICS_TOKEN = ""  # no token set: no bearer opens it, not even an empty one
    for headers in ({}, {"Authorization": "Bearer "}, {"Authorization": "Bearer"}):
        assert Client().get("/metrics", headers=headers).status_code == 401, headers


@pytest.mark.django_db
def test_requests_are_counted_by_view_never_by_path():
    before = scrape()
    client = Client()
    assert client.get("/healthz").status_code == 200
    assert client.get("/no/such/page/12345").status_code == 404
    assert client.post("/healthz").status_code == 405
    after = scrape()
    total = "pksweb_http_requests_total"
    assert value(after, "pksweb_http_requests", total, view="healthz", method="GET", status="200") == \
        value(before, "pksweb_http_requests", total, view="healthz", method="GET", status="200") + 1
    assert value(after, "pksweb_http_requests", total, view="healthz", method="POST", status="405") == \
        value(before, "pksweb_http_requests", total, view="healthz", method="POST", status="405") + 1
    assert value(after, "pksweb_http_requests", total, view="unmatched", method="GET", status="404") >= 1
    count = "pksweb_http_request_duration_seconds_count"
    assert value(after, "pksweb_http_request_duration_seconds", count, view="healthz", method="GET") == \
        value(before, "pksweb_http_request_duration_seconds", count, view="healthz", method="GET") + 1
    labels = {dict(key[1]).get("view") for key in after["pksweb_http_requests"]}
    assert not any("/" in (label or "") for label in labels), labels  # route names, never raw paths


@app.task(name="tests.metrics.boom")
def boom() -> None:
    raise RuntimeError("on purpose")


@pytest.mark.django_db
def test_tasks_are_timed_and_failures_counted_by_task():
    from pksweb.tasks import audit_seal

    before = scrape()
    audit_seal.apply()
    boom.apply()
    after = scrape()
    name = "pksweb.tasks.audit_seal"
    assert value(after, "pksweb_celery_tasks", "pksweb_celery_tasks_total", task=name, outcome="succeeded") == \
        value(before, "pksweb_celery_tasks", "pksweb_celery_tasks_total", task=name, outcome="succeeded") + 1
    assert value(after, "pksweb_celery_tasks", "pksweb_celery_tasks_total", task="tests.metrics.boom", outcome="failed") == \
        value(before, "pksweb_celery_tasks", "pksweb_celery_tasks_total", task="tests.metrics.boom", outcome="failed") + 1
    count = "pksweb_celery_task_duration_seconds_count"
    assert value(after, "pksweb_celery_task_duration_seconds", count, task=name) == \
        value(before, "pksweb_celery_task_duration_seconds", count, task=name) + 1


# ---- the fleet --------------------------------------------------------------------------------


def fleet(size: int, start: int = 0) -> None:
    """``size`` clusters (healthy, then unreachable for the last quarter of a day), each with a running rollout of
    three nodes (two done) and a tenant with three namespaces (one drifted)."""
    now = timezone.now()
    for i in range(start, start + size):
        cluster = Cluster.objects.create(name=f"c{i}", server=f"https://c{i}.example:6443", credential_sealed="x",
                                         status="unreachable", nodes_ready=3, nodes_total=4)
        HealthSpan.objects.create(cluster=cluster, status="unknown", started_at=now - timedelta(hours=30),
                                  ended_at=now - timedelta(hours=18))
        HealthSpan.objects.create(cluster=cluster, status="healthy", started_at=now - timedelta(hours=18),
                                  ended_at=now - timedelta(hours=6))
        HealthSpan.objects.create(cluster=cluster, status="degraded", started_at=now - timedelta(hours=6),
                                  ended_at=now - timedelta(hours=4))
        HealthSpan.objects.create(cluster=cluster, status="unreachable", started_at=now - timedelta(hours=4))
        plan = UpgradePlan.objects.create(name=f"plan {i}", target_version="1.31.2", waves=[[cluster.pk]])
        rollout = Rollout.objects.create(plan=plan, revision="r", state="running")
        for order, phase in enumerate(("done", "done", "drain")):
            RolloutStep.objects.create(rollout=rollout, order=order, wave=0, cluster=cluster, node=f"n{order}", phase=phase)
        Rollout.objects.create(plan=plan, revision="r0", state="aborted")
        tenant = Tenant.objects.create(name=f"t{i}")
        for n, state in enumerate(("in_sync", "in_sync", "drifted")):
            TenantNamespace.objects.create(tenant=tenant, cluster=cluster, name=f"ns{n}", sync_state=state)


@pytest.mark.django_db
def test_the_fleet_figures_are_the_database_rows():
    fleet(2)
    lease_acquire(name=SWEEP_LEASE, holder="web-7d9f:12:34567", seconds=30)
    got = scrape()
    assert value(got, "pksweb_cluster_status", status="unreachable", cluster="c0") == 1
    assert value(got, "pksweb_cluster_status", status="healthy", cluster="c0") == 0
    assert len(got["pksweb_cluster_status"]) == 2 * 4  # every status of every cluster
    # 18 h known (the unknown 6 h do not count): 14 h answered (healthy, degraded), 4 h unreachable.
    assert value(got, "pksweb_cluster_availability_ratio", cluster="c1") == pytest.approx(14 / 18, abs=1e-3)
    assert value(got, "pksweb_cluster_nodes_ready", cluster="c0") == 3
    assert value(got, "pksweb_cluster_nodes", cluster="c0") == 4
    assert value(got, "pksweb_rollouts", state="running") == 2 and value(got, "pksweb_rollouts", state="aborted") == 2
    rollout = str(Rollout.objects.filter(state="running", plan__name="plan 1").get().pk)
    assert value(got, "pksweb_rollout_nodes_done", rollout=rollout, plan="plan 1", state="running") == 2
    assert value(got, "pksweb_rollout_nodes", rollout=rollout, plan="plan 1", state="running") == 3
    assert len(got["pksweb_rollout_nodes"]) == 2  # finished rollouts are not watched
    assert value(got, "pksweb_tenant_namespaces", tenant="t0", state="drifted") == 1
    assert value(got, "pksweb_tenant_namespaces", tenant="t0", state="in_sync") == 2
    assert value(got, "pksweb_sweep_lease_held", holder="web-7d9f") == 1
    assert 25 < value(got, "pksweb_sweep_lease_expires_in_seconds") <= 30


@pytest.mark.django_db
def test_a_scrape_costs_the_same_queries_whatever_the_fleet_size(django_assert_num_queries):
    fleet(2)
    with CaptureQueriesContext(connection) as small:
        metrics.exposition()
    assert 0 < len(small.captured_queries) <= 10
    fleet(25, start=2)
    with django_assert_num_queries(len(small.captured_queries)):
        text = metrics.exposition().decode()
    assert len(parse(text)["pksweb_cluster_nodes"]) == 27


# ---- several processes ------------------------------------------------------------------------

PROCESS = """
import os, sys
import django
django.setup()
from django.test import Client
from pksweb import metrics
for _ in range(int(sys.argv[1])):
    assert Client().get("/healthz").status_code == 200
metrics.WEBSOCKETS_OPEN.labels("fleet").inc()
print("counted", flush=True)
if sys.argv[2] == "stay":
    sys.stdin.read()
"""


def own() -> dict[str, dict[tuple, float]]:
    """What a worker's own port answers (no fleet figures: no database here)."""
    return parse(generate_latest(metrics.registry(fleet=False)).decode())


def test_processes_are_added_up_and_the_dead_ones_open_nothing(tmp_path, monkeypatch):
    """Two real processes count in multiprocess mode; a scrape adds them up. One ends normally (its open websockets
    go with it at exit), the other is SIGKILLed (the next scrape finds it gone); their requests stay counted."""
    folder = tmp_path / "multiproc"
    folder.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PKSWEB_", "DATABASE_URL", "REDIS_URL"))}
    env.update({"PROMETHEUS_MULTIPROC_DIR": str(folder), "PKSWEB_DATA_DIR": str(tmp_path / "data"),
                "DJANGO_SETTINGS_MODULE": "pksweb.settings", "ALLOWED_HOSTS": "testserver",
                # Keys given: two processes starting at once would race to write the data folder's.
                "PKSWEB_SECRET_KEY": "k" * 50, "PKSWEB_CREDENTIAL_KEYS": "Y3JlZGVudGlhbC1rZXktZm9yLXRlc3RzLW9ubHktMDE=",
                "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))})
    leaving = subprocess.Popen([sys.executable, "-c", PROCESS, "3", "leave"], cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
    staying = subprocess.Popen([sys.executable, "-c", PROCESS, "5", "stay"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                               stdin=subprocess.PIPE, text=True)
    try:
        assert staying.stdout is not None and staying.stdout.readline().strip() == "counted"
        assert leaving.wait(60) == 0
        monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(folder))
        got = own()
        total = "pksweb_http_requests_total"
        assert value(got, "pksweb_http_requests", total, view="healthz", method="GET", status="200") == 8
        assert value(got, "pksweb_websockets_open", page="fleet") == 1  # the process that left took its socket along
        staying.send_signal(signal.SIGKILL)
        staying.wait(10)
        time.sleep(0.1)
        got = own()
        assert value(got, "pksweb_websockets_open", page="fleet") == 0
        assert value(got, "pksweb_http_requests", total, view="healthz", method="GET", status="200") == 8
    finally:
        for proc in (leaving, staying):
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)


@pytest.mark.parametrize("token", [TOKEN, ""])
def test_the_worker_port_answers_only_metrics_and_only_with_the_token(settings, token):
    """A worker's own port (PKSWEB_WORKER_METRICS_PORT), served for real on a socket: /metrics only, behind the
    bearer token when one is set (PKSWEB_METRICS_TOKEN); open to whoever reaches it when none is (the NetworkPolicy
    lets only the monitoring namespace reach the port)."""
    settings.PKSWEB_METRICS_TOKEN = token
    port = free_port()
    server = metrics.worker_metrics_serve(port, addr="127.0.0.1")
    try:
        url = f"http://127.0.0.1:{port}"
        for path in ("/", "/metrics/", "/favicon.ico", "/admin"):
            assert httpx.get(url + path, headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 404, path
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Token {TOKEN}"}):
            answer = httpx.get(url + "/metrics", headers=headers)
            if token:
                assert answer.status_code == 401 and answer.headers["WWW-Authenticate"].startswith("Bearer"), headers
                assert "pksweb_" not in answer.text
            else:
                assert answer.status_code == 200, headers
        answer = httpx.get(url + "/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
        assert answer.status_code == 200 and answer.headers["Content-Type"].startswith("text/plain")
        figures = parse(answer.text)
        assert "pksweb_celery_tasks" in figures and "pksweb_cluster_status" not in figures
        assert "pksweb_fleet_figures_up" not in figures  # the fleet is the web's to report
    finally:
        server.shutdown()
        server.server_close()
