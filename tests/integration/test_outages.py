"""Redis down: pages still load from the database, nothing a person does is lost, and
/readyz names Redis as what fails (production shape: PostgreSQL, uvicorn; Redis pointed
at a port where nothing listens)."""

from __future__ import annotations

import httpx
import psycopg
import pytest

from tests.integration.conftest import PASSWORD, Stack, free_port, make_stack

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

    client = httpx.Client(base_url=no_redis.url, timeout=30)
    client.get("/accounts/login/")
    signed_in = client.post("/accounts/login/", data={"username": "itop", "password": PASSWORD,
                                                      "csrfmiddlewaretoken": client.cookies["csrftoken"]},
                            headers={"Referer": no_redis.url + "/accounts/login/"})
    assert signed_in.status_code == 302
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
