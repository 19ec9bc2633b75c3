"""A cluster token is a secret: registered as a credential, it must appear nowhere but as ciphertext.

A canary token (unique, searchable) is the credential of a real sandbox cluster. The
cluster is then used the way operators use it (probe, drain, every page and API answer,
a failed credential change), and every place the token could leak is scanned: page and
API bodies, the web and worker logs, every column of every table, every Redis key
(channel layer, Celery broker, cache) — in clear and in base64.

It runs twice: with production's JSON log lines (every line of the web and worker logs parsed, and searched as
written and as decoded) and with plain ones.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Iterator

import psycopg
import pytest
import redis

from sandbox import Sandbox
from tests.support.stack import PASSWORD, REDIS_URL, Stack, make_stack

pytestmark = pytest.mark.integration


def leaks(text: str | bytes, canary: str) -> bool:
    forms = [canary, base64.b64encode(canary.encode()).decode(), base64.urlsafe_b64encode(canary.encode()).decode()]
    data = text if isinstance(text, str) else text.decode("latin-1")
    return any(form in data for form in forms)


@pytest.fixture(scope="module")
def plain_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    yield from make_stack(tmp_path_factory.mktemp("plain-stack"), with_worker=True, PKSWEB_LOG_FORMAT="plain")


@pytest.fixture(params=["json", "plain"])
def logged(request: pytest.FixtureRequest) -> tuple[Stack, str]:
    """The session's stack (production's default: JSON lines), or one logging plain text."""
    return (request.getfixturevalue("stack"), "json") if request.param == "json" else (request.getfixturevalue("plain_stack"), "plain")


def json_lines(log: bytes, name: str) -> list[dict]:
    """Every log line of a JSON-logging process, parsed (Celery's start-up banner, printed before logging starts,
    aside)."""
    text = log.decode()
    if name.startswith("worker"):
        text = text[text.index("[tasks]"):].split("\n\n", 1)[1] if "[tasks]" in text else text
    records = []
    for line in text.splitlines():
        if line.strip():
            records.append(json.loads(line))
    return records


def test_a_cluster_token_appears_nowhere_but_as_ciphertext(logged: tuple[Stack, str]):
    stack, log_format = logged
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
        if log_format == "json":
            web = json_lines((stack.folder / "web.log").read_bytes(), "web")
            worker = json_lines((stack.folder / "worker.log").read_bytes(), "worker")
            for record in web + worker:
                assert not leaks(" ".join(str(v) for v in record.values()), canary), f"the token is in the line {record}"
            # The lines are production's: the API's requests name their user and id, the worker's its task.
            api_lines = [r for r in web if r.get("logger") == "uvicorn.access" and "/api/clusters/" in r["message"]]
            assert api_lines and all(r["user"] == "itop" and len(r["request_id"]) == 32 for r in api_lines), api_lines[:3]
            assert any(r["task_name"].startswith("clusters.") for r in worker), worker[-5:]

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
