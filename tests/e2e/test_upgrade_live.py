"""A real browser: an approver approves a plan, an operator starts it, and the rollout page
advances node by node without a reload."""

from __future__ import annotations

import time

import httpx
import pytest

from tests.support.browser import sign_in
from tests.support.embedded import start_embedded
from tests.support.net import free_port

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def upgrade_server(tmp_path_factory):
    yield from start_embedded(tmp_path_factory.mktemp("upgrade"), PKSWEB_SANDBOX_CLUSTERS="1",
                              PKSWEB_SANDBOX_PORT=str(free_port()), PKSWEB_HEALTH_INTERVAL="2")


def test_approve_start_and_watch_the_rollout(upgrade_server, browser):
    url = upgrade_server["url"]
    ops = httpx.Client(base_url=url, headers={"Authorization": f"Token {upgrade_server['token']}"}, timeout=30)
    cluster = ops.get("/api/clusters/").json()["results"][0]
    for _ in range(50):
        if ops.get(f"/api/clusters/{cluster['id']}/").json()["status"] == "healthy":
            break
        time.sleep(0.2)
    plan = ops.post("/api/upgrade-plans/", json={"name": "browser upgrade", "target_version": "1.31.2",
                                                 "waves": [[cluster["id"]]], "drain_timeout_seconds": 30}).json()
    assert plan["preflight"]["ok"], plan["preflight"]
    assert ops.post(f"/api/upgrade-plans/{plan['id']}/submit/").status_code == 200

    approver = browser.new_page()
    sign_in(approver, url, "approver", "approver-demo")
    approver.wait_for_url("**/clusters/")
    approver.goto(f"{url}/upgrades/{plan['id']}/")
    approver.click("#approve-form button.primary")
    approver.wait_for_selector("#plan-state:text('Approved')", timeout=10_000)
    approver.close()

    operator = browser.new_page()
    sign_in(operator, url, "operator", "operator-demo")
    operator.wait_for_url("**/clusters/")
    operator.goto(f"{url}/upgrades/{plan['id']}/")
    operator.click("#start-form button")
    operator.wait_for_url("**/upgrades/rollouts/*/")
    operator.wait_for_selector("#live-status[data-state=live]", timeout=10_000)
    operator.evaluate("window.__sameDocument = true")
    rows = operator.query_selector_all("#step-rows tr")
    assert len(rows) == 5
    operator.wait_for_selector("#step-rows tr[data-phase=done]", timeout=30_000)  # the first node finishes
    operator.wait_for_selector("#rollout-state[data-state=succeeded]", timeout=90_000)
    assert operator.evaluate("window.__sameDocument") is True
    phases = operator.eval_on_selector_all("#step-rows tr", "rows => rows.map(r => r.dataset.phase)")
    assert phases == ["done"] * 5
    assert "5 of 5 nodes done" in operator.inner_text("#rollout-progress")
    operator.close()
