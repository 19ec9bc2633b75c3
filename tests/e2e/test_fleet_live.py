"""A real browser on the embedded server with its sandbox fleet: a cluster cut off turns
unreachable on the fleet page without a reload."""

from __future__ import annotations

import httpx
import pytest
import yaml

from sandbox.tls import endpoint
from tests.support.browser import sign_in
from tests.support.embedded import start_embedded
from tests.support.net import free_port

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def fleet_server(tmp_path_factory):
    yield from start_embedded(tmp_path_factory.mktemp("fleet"), PKSWEB_SANDBOX_CLUSTERS="2",
                              PKSWEB_SANDBOX_PORT=str(free_port()), PKSWEB_HEALTH_INTERVAL="1",
                              PKSWEB_PROBE_CONNECT_TIMEOUT="1", PKSWEB_PROBE_READ_TIMEOUT="1")


def test_cluster_cut_off_turns_unreachable_live(fleet_server, browser):
    page = browser.new_page()
    sign_in(page, fleet_server["url"], "operator", "operator-demo")
    page.goto(fleet_server["url"] + "/clusters/")
    page.wait_for_selector("#live-status[data-state=live]", timeout=10_000)
    page.wait_for_selector("tr[id^=cluster-][data-status=healthy] >> text=sandbox-1", timeout=15_000)
    page.evaluate("window.__sameDocument = true")
    row_id = page.eval_on_selector("tr:has(a:text-is('sandbox-1'))", "el => el.id")

    kubeconfig = yaml.safe_load((fleet_server["data"] / "sandbox" / "sandbox-1.kubeconfig").read_text())
    server, token, verify = endpoint(kubeconfig)
    cut = httpx.put(f"{server}/sandbox/faults", json={"unreachable": True}, headers={"Authorization": f"Bearer {token}"},
                    verify=verify)
    assert cut.status_code == 200

    page.wait_for_selector(f"#{row_id}[data-status=unreachable]", timeout=20_000)
    assert "dropped the connection" in page.inner_text(f"#{row_id}")
    assert page.evaluate("window.__sameDocument") is True
    assert "1 unreachable" in page.inner_text("#fleet-counts")
    page.close()


def test_tenant_admin_watches_a_new_namespace_get_in_sync(fleet_server, browser):
    page = browser.new_page()
    sign_in(page, fleet_server["url"], "acme-admin", "acme-admin-demo")
    page.wait_for_url("**/tenants/*/")
    page.wait_for_selector("#live-status[data-state=live]", timeout=10_000)
    assert "globex" not in page.content().lower()  # another tenant is nowhere on the page
    page.evaluate("window.__sameDocument = true")
    # sandbox-1 was cut off by the test before: the refusal is shown in words, in place.
    page.select_option("#namespace-form select[name=cluster]", label="sandbox-1")
    page.fill("#namespace-form input[name=name]", "payments-prod")
    page.click("#namespace-form button[type=submit]")
    page.wait_for_selector("#namespace-form .errorlist >> text=Cannot check cluster sandbox-1", timeout=10_000)
    page.select_option("#namespace-form select[name=cluster]", label="sandbox-2")
    page.fill("#namespace-form input[name=name]", "payments-prod")
    page.click("#namespace-form button[type=submit]")
    row = page.wait_for_selector("tr[id^=namespace-]:has(a:text-is('payments-prod'))", timeout=10_000)
    row_id = row.get_attribute("id")
    page.wait_for_selector(f"#{row_id}[data-state=in_sync]", timeout=20_000)
    assert "In sync" in page.inner_text(f"#{row_id}")
    assert page.evaluate("window.__sameDocument") is True
    page.close()
