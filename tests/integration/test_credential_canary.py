"""A cluster token is a secret: registered as a credential, it must appear nowhere but as ciphertext.

A canary token (unique, searchable) is the credential of a real sandbox cluster. The
cluster is then used the way operators use it (probe, drain, every page and API answer,
a failed credential change), and every place the token could leak is scanned: page and
API bodies, the web and worker logs, every column of every table, every Redis key
(channel layer, Celery broker, cache) — in clear and in base64.
"""

from __future__ import annotations

import base64
import time
import uuid

import psycopg
import pytest
import redis

from sandbox import Sandbox
from tests.support.stack import PASSWORD, REDIS_URL, Stack

pytestmark = pytest.mark.integration


def leaks(text: str | bytes, canary: str) -> bool:
    forms = [canary, base64.b64encode(canary.encode()).decode(), base64.urlsafe_b64encode(canary.encode()).decode()]
    data = text if isinstance(text, str) else text.decode("latin-1")
    return any(form in data for form in forms)


def test_a_cluster_token_appears_nowhere_but_as_ciphertext(stack: Stack):
    canary = f"canary-{uuid.uuid4().hex}"
    sandbox = Sandbox(seed=23, heartbeat_seconds=0).start()
    try:
        sim = sandbox.add_cluster("canary-1", nodes=3, pods_per_node=1, token=canary, pod_start_delay=0.05)
        api = stack.api("itop")
        created = api.post("/api/clusters/", json={"name": "canary-1", "server": sandbox.server_url("canary-1"), "token": canary,
                                                   "ca_data": sandbox.ca_pem})
        assert created.status_code == 201, created.text
        cluster_id = created.json()["id"]
        assert api.post(f"/api/clusters/{cluster_id}/probe/").json()["status"] == "healthy"
        drain = api.post(f"/api/clusters/{cluster_id}/nodes/canary-1-w-1/drain/")
        assert drain.status_code in (201, 202), drain.text
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and sim.get("nodes", "", "canary-1-w-1")["spec"].get("unschedulable") is not True:
            time.sleep(0.2)
        # A credential change the cluster refuses: the error must not echo the (new, wrong) token either.
        wrong = f"{canary}-wrong"
        refused = api.patch(f"/api/clusters/{cluster_id}/", json={"server": sandbox.server_url("canary-1"), "token": wrong,
                                                                      "ca_data": sandbox.ca_pem})
        assert refused.status_code == 400 and not leaks(refused.text, wrong), refused.text

        session = stack.login("itop", PASSWORD)
        bodies = {}
        for path in ["/clusters/", f"/clusters/{cluster_id}/", f"/clusters/{cluster_id}/live/", f"/clusters/{cluster_id}/edit/",
                     "/activity/", "/upgrades/", "/tenants/"]:
            bodies[path] = session.get(path).text
        for path in ["/api/clusters/", f"/api/clusters/{cluster_id}/", "/api/events/", "/api/operations/", "/api/schema/"]:
            bodies[path] = api.get(path).text
        for path, body in bodies.items():
            assert not leaks(body, canary), f"the token is in {path}"
        assert "canary-1" in bodies["/clusters/"]  # the pages were real pages

        time.sleep(1)  # let the worker write its last lines
        for log in stack.folder.glob("*.log"):
            assert not leaks(log.read_bytes(), canary), f"the token is in {log.name}"

        with psycopg.connect(stack.env["DATABASE_URL"]) as conn:
            tables = [t for (t,) in conn.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' AND table_type = 'BASE TABLE'")]
            sealed = 0
            for table in tables:
                for (row,) in conn.execute(f'SELECT row_to_json(t)::text FROM "{table}" t'):
                    assert not leaks(row, canary), f"the token is in clear in table {table}: {row[:200]}"
                    sealed += table == "clusters_cluster"
            assert sealed == 1  # the cluster row was scanned: its credential is there, sealed

        store = redis.Redis.from_url(REDIS_URL)
        keys = 0
        for key in store.scan_iter(count=1000):
            keys += 1
            dumped = store.dump(key) or b""
            assert not leaks(key + b" " + dumped, canary), f"the token is in Redis key {key!r}"
        assert keys > 0
    finally:
        sandbox.stop()
