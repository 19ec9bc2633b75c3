"""Outages in the production shape (PostgreSQL, uvicorn).

Redis down (pointed at a port where nothing listens): pages still load from the
database, nothing a person does is lost, and /readyz names Redis as what fails.
PostgreSQL restarted: requests answer 503 in words meanwhile, and the same server
process serves again once the database is back.
Redis restarted under an open page: what was announced meanwhile reaches the page from
the database, without reconnecting.
PostgreSQL unreachable: Prometheus' scrape of /metrics still answers pksweb's own figures, with
pksweb_fleet_figures_up 0 in place of the fleet's, and the outage is logged once.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import psycopg
import pytest

from tests.support.net import free_port
from tests.support.redis_server import RedisServer
from tests.support.stack import PASSWORD, PG_URL, Stack, make_stack

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def no_redis(tmp_path_factory):
    yield from make_stack(tmp_path_factory.mktemp("no-redis"), with_worker=False, REDIS_URL=f"redis://127.0.0.1:{free_port()}/0")


def test_redis_down_pages_load_and_readyz_names_it(no_redis: Stack):
    ready = httpx.get(no_redis.url + "/readyz", timeout=30)
    assert ready.status_code == 503
    checks = ready.json()["checks"]
    assert checks["database"] == "ok" and "Redis" in checks["channel_layer"] and "broker" in checks["broker"].lower()
    assert ready.json()["failing"] == ["channel_layer", "broker"]

    client = _signed_in(no_redis)
    for path in ("/clusters/", "/activity/", "/tenants/", "/upgrades/"):
        assert client.get(path).status_code == 200, path
    # An announcement is stored although no page can be told now; a page that connects later replays it.
    posted = client.post("/activity/announce/", data={"message": "posted while Redis is down"},
                         headers={"X-CSRFToken": client.cookies["csrftoken"], "HX-Request": "true"})
    assert posted.status_code in (200, 302), posted.text
    with psycopg.connect(no_redis.env["DATABASE_URL"]) as conn:
        stored = conn.execute("SELECT count(*) FROM pksweb_event WHERE message = 'posted while Redis is down'").fetchone()[0]
    assert stored == 1
    assert "posted while Redis is down" in client.get("/activity/").text


SCRAPE_TOKEN = "outage-scrape-token-0123456789"


@pytest.fixture(scope="module")
def pg_stack(tmp_path_factory):
    yield from make_stack(tmp_path_factory.mktemp("pg-restart"), with_worker=False, PKSWEB_METRICS_TOKEN=SCRAPE_TOKEN)


def _signed_in(stack: Stack) -> httpx.Client:
    return stack.login("itop", PASSWORD)  # it checks the sign-in answered 302


def test_postgres_restart_fails_cleanly_and_recovers_without_a_process_restart(pg_stack: Stack):
    """The stack's database goes away as in a PostgreSQL restart (every connection cut, new ones refused), then returns."""
    database = pg_stack.env["DATABASE_URL"].rsplit("/", 1)[1]
    client = _signed_in(pg_stack)
    api = pg_stack.api("itop")
    assert client.get("/clusters/").status_code == 200 and api.get("/api/clusters/").status_code == 200
    with psycopg.connect(PG_URL, autocommit=True) as admin:
        admin.execute(f'ALTER DATABASE "{database}" WITH ALLOW_CONNECTIONS false')
        admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
                      (database,))
        try:
            page = client.get("/clusters/")
            assert page.status_code == 503 and "cannot reach its database" in page.text, page.text[:500]
            answer = api.get("/api/clusters/")
            assert answer.status_code == 503 and "cannot reach its database" in answer.json()["detail"]
            assert answer.headers["Retry-After"] == "5"
            posted = client.post("/activity/announce/", data={"message": "during the outage"},
                                 headers={"X-CSRFToken": client.cookies["csrftoken"], "HX-Request": "true"})
            assert posted.status_code == 503
            ready = httpx.get(pg_stack.url + "/readyz", timeout=30)
            assert ready.status_code == 503 and "database" in ready.json()["failing"]
            assert httpx.get(pg_stack.url + "/healthz", timeout=30).status_code == 200  # alive: no restart needed
        finally:
            admin.execute(f'ALTER DATABASE "{database}" WITH ALLOW_CONNECTIONS true')
    assert client.get("/clusters/").status_code == 200
    assert api.get("/api/clusters/").status_code == 200
    assert httpx.get(pg_stack.url + "/readyz", timeout=30).status_code == 200
    with psycopg.connect(pg_stack.env["DATABASE_URL"]) as conn:
        assert conn.execute("SELECT count(*) FROM pksweb_event WHERE message = 'during the outage'").fetchone()[0] == 0


@contextmanager
def database_down(stack: Stack) -> Iterator[None]:
    """The stack's database goes away as in a PostgreSQL restart (every connection cut, new ones refused) until
    the block ends."""
    database = stack.env["DATABASE_URL"].rsplit("/", 1)[1]
    with psycopg.connect(PG_URL, autocommit=True) as admin:
        admin.execute(f'ALTER DATABASE "{database}" WITH ALLOW_CONNECTIONS false')
        admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
                      (database,))
        try:
            yield
        finally:
            admin.execute(f'ALTER DATABASE "{database}" WITH ALLOW_CONNECTIONS true')


def _scrape(stack: Stack) -> str:
    answer = httpx.get(stack.url + "/metrics", headers={"Authorization": f"Bearer {SCRAPE_TOKEN}"}, timeout=30)
    assert answer.status_code == 200, answer.text[:500]
    return answer.text


def test_metrics_answer_while_the_database_is_down(pg_stack: Stack):
    """Prometheus' scrape needs no database: the token is checked before the session is read, and the fleet's
    figures (read from the database) give way to pksweb_fleet_figures_up 0 while pksweb's own figures keep coming,
    the ones that help diagnose the outage. The outage is logged once, not at every scrape; the figures return
    with the database."""
    before = _scrape(pg_stack)
    assert "pksweb_fleet_figures_up 1.0" in before and "# TYPE pksweb_cluster_status gauge" in before
    with database_down(pg_stack):
        for _ in range(3):
            during = _scrape(pg_stack)
            assert "pksweb_fleet_figures_up 0.0" in during and "pksweb_http_requests_total{" in during
            assert "pksweb_cluster_status" not in during and "pksweb_tenant_namespaces" not in during
        refused = httpx.get(pg_stack.url + "/metrics", timeout=30)  # no token, no session: refused without the database
        assert refused.status_code == 401 and "pksweb_" not in refused.text
    assert "pksweb_fleet_figures_up 1.0" in _scrape(pg_stack)
    said = (pg_stack.folder / "web.log").read_text()
    assert said.count("/metrics leaves out the fleet's figures") == 1, pg_stack.log_tail()
    assert said.count("/metrics has the fleet's figures again") == 1, pg_stack.log_tail()


@pytest.fixture(scope="module")
def restart_stack(tmp_path_factory, own_redis: RedisServer):
    yield from make_stack(tmp_path_factory.mktemp("redis-returns"), with_worker=False, REDIS_URL=own_redis.url,
                          PKSWEB_LIVE_CATCH_UP_SECONDS="1", PKSWEB_LIVE_CATCH_UP_GRACE_SECONDS="1")


def test_an_open_page_catches_up_on_what_happened_while_redis_was_down(restart_stack: Stack, own_redis: RedisServer):
    """A page stays open while Redis dies and comes back empty. An announcement made meanwhile is stored (its push
    fails); the page receives it from the database without reconnecting, and later pushes arrive as before."""
    client = _signed_in(restart_stack)
    latest = client.get("/api/events/", params={"limit": 1}).json()["results"]
    after = latest[0]["id"] if latest else 0
    with restart_stack.websocket(f"/ws/activity/?after={after}", client) as ws:
        time.sleep(0.5)
        own_redis.kill()
        posted = client.post("/activity/announce/", data={"message": "said while Redis was down"},
                             headers={"X-CSRFToken": client.cookies["csrftoken"], "HX-Request": "true"})
        assert posted.status_code in (200, 302), posted.text
        time.sleep(2)
        own_redis.start()
        received = ws.recv(timeout=20)
        assert "said while Redis was down" in received, restart_stack.log_tail()
        time.sleep(3)  # the channel layer reconnects and joins its groups again
        client.post("/activity/announce/", data={"message": "said after Redis returned"},
                    headers={"X-CSRFToken": client.cookies["csrftoken"], "HX-Request": "true"})
        later = ws.recv(timeout=20)
        assert "said after Redis returned" in later and "said while Redis was down" not in later
