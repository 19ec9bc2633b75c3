"""A real browser on the embedded server that `make run` starts.

Sign in, open the activity page, publish an event from outside the page (the
REST API, as a script would), and see it appear without a reload.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from tests.support.browser import sign_in
from tests.support.embedded import start_embedded

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    yield from start_embedded(tmp_path_factory.mktemp("embedded"), PKSWEB_SANDBOX_CLUSTERS="0")


def test_wrong_password_is_explained(server, browser):
    page = browser.new_page()
    sign_in(page, server["url"], "operator", "not-the-password")
    assert "Please enter a correct username and password" in page.inner_text("#login-error")
    page.close()


def test_event_published_elsewhere_appears_live(server, browser):
    page = browser.new_page()
    sign_in(page, server["url"], "operator", "operator-demo")
    page.wait_for_url("**/clusters/")
    page.goto(server["url"] + "/activity/")
    page.wait_for_selector("#live-status[data-state=live]", timeout=10_000)
    page.evaluate("window.__sameDocument = true")

    message = f"Maintenance window opens at {time.strftime('%H:%M:%S')}"
    response = httpx.post(server["url"] + "/api/announcements/", json={"message": message},
                          headers={"Authorization": f"Token {server['token']}"}, timeout=10)
    assert response.status_code == 201, response.text
    event_id = response.json()["id"]

    row = page.wait_for_selector(f"#event-{event_id}", timeout=10_000)
    assert message in row.inner_text()
    assert page.evaluate("window.__sameDocument") is True  # no reload happened
    assert page.get_attribute("#event-cursor", "data-last") == str(event_id)
    first_row_id = page.eval_on_selector("#event-list li", "el => el.id")
    assert first_row_id == f"event-{event_id}"  # newest on top
    page.close()


def test_operator_announces_from_the_page_and_tenant_admin_sees_only_what_is_for_them(server, browser):
    """An announcement for everyone reaches tenant admins (the form's "Everyone"); one for their tenant
    does; another tenant's news and announcements do not."""
    created = httpx.post(server["url"] + "/api/tenants/", json={"name": "globex-e2e", "display_name": "Globex E2E"},
                         headers={"Authorization": f"Token {server['token']}"}, timeout=10)
    assert created.status_code == 201, created.text
    admin = browser.new_page()
    sign_in(admin, server["url"], "acme-admin", "acme-admin-demo")
    admin.wait_for_url("**/tenants/*/")
    admin.goto(server["url"] + "/activity/")
    admin.wait_for_selector("#live-status[data-state=live]", timeout=10_000)
    assert admin.query_selector("#announce-form") is None

    operator = browser.new_page()
    sign_in(operator, server["url"], "operator", "operator-demo")
    operator.wait_for_url("**/clusters/")
    operator.goto(server["url"] + "/activity/")
    operator.wait_for_selector("#live-status[data-state=live]", timeout=10_000)
    operator.fill("#announce-form input[name=message]", "note for everyone")
    operator.click("#announce-form button[type=submit]")
    operator.wait_for_selector("#event-list li:has-text('note for everyone')", timeout=10_000)
    admin.wait_for_selector("#event-list li:has-text('note for everyone')", timeout=10_000)

    operator.fill("#announce-form input[name=message]", "for globex only")
    operator.select_option("#announce-form select[name=tenant]", label="Globex E2E")
    operator.click("#announce-form button[type=submit]")
    operator.wait_for_selector("#event-list li:has-text('for globex only')", timeout=10_000)
    operator.fill("#announce-form input[name=message]", "for acme only")
    operator.select_option("#announce-form select[name=tenant]", label="ACME Bank")
    operator.click("#announce-form button[type=submit]")
    admin.wait_for_selector("#event-list li:has-text('for acme only')", timeout=10_000)
    seen = admin.inner_text("#event-list")
    assert "for globex only" not in seen and "globex-e2e" not in seen and "Globex E2E" not in seen
    admin.close()
    operator.close()
