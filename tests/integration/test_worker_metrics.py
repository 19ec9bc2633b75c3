"""A `celery worker` with PKSWEB_WORKER_METRICS_PORT serves its own figures there (Prometheus' text format): the
task families, and none of the fleet's, which the web processes serve; with PKSWEB_METRICS_TOKEN set, only to a scrape
that sends it, and only on /metrics."""

from __future__ import annotations

import time

import httpx
import pytest

from tests.support.net import free_port
from tests.support.stack import Stack

pytestmark = pytest.mark.integration


def test_a_worker_serves_its_own_metrics_on_its_port(stack: Stack):
    port = free_port()
    token = "worker-scrape-token-0123456789"
    worker = stack.worker(name="metrics-worker", PKSWEB_WORKER_METRICS_PORT=str(port), PKSWEB_METRICS_TOKEN=token)
    bearer = {"Authorization": f"Bearer {token}"}
    try:
        deadline = time.monotonic() + 30
        while True:
            assert worker.poll() is None, stack.log_tail()
            try:
                answer = httpx.get(f"http://127.0.0.1:{port}/metrics", headers=bearer, timeout=2)
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline, stack.log_tail()
                time.sleep(0.3)
        assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/plain")
        for family in ("pksweb_celery_task_duration_seconds", "pksweb_celery_tasks_total", "pksweb_sweep_duration_seconds"):
            assert f"# TYPE {family} " in answer.text, answer.text[:2000]
        assert "pksweb_cluster_status" not in answer.text  # the fleet is the web's to report
        refused = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2)
        assert refused.status_code == 401 and "pksweb_" not in refused.text
        assert httpx.get(f"http://127.0.0.1:{port}/", headers=bearer, timeout=2).status_code == 404
    finally:
        worker.terminate()
        worker.wait(15)
