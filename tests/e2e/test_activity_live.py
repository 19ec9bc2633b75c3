"""A real browser on the embedded server that `make run` starts.

Sign in, open the activity page, publish an event from outside the page (the
REST API, as a script would), and see it appear without a reload.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.net import free_port
from tests.support.waits import require_service

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
LAUNCH_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def start_embedded(data: Path, **extra_env: str) -> Iterator[dict]:
    """`make run`'s steps (migrate, seed, serve) in a temporary data directory."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PKSWEB_", "DATABASE_URL", "REDIS_URL"))}
    env.update({"PKSWEB_DATA_DIR": str(data), "PYTHONUNBUFFERED": "1", **extra_env})

    def manage(*args: str) -> str:
        result = subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env,
                                capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr
        return result.stdout

    manage("migrate", "--noinput")
    manage("seed_demo")
    port = free_port()
    log = open(data / "server.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen([sys.executable, "manage.py", "serve", "--port", str(port)], cwd=ROOT, env=env,
                            stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, (data / "server.log").read_text()
            try:
                if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "embedded server did not start"
            time.sleep(0.2)
        yield {"url": url, "token": manage("apitoken", "operator").strip(), "log": data / "server.log", "data": data}
    finally:
        proc.terminate()
        proc.wait(15)
        log.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    yield from start_embedded(tmp_path_factory.mktemp("embedded"), PKSWEB_SANDBOX_CLUSTERS="0")


@pytest.fixture(scope="module")
def browser():
    if not shutil.which("chromium") and not Path(CHROMIUM).exists():
        require_service("Debian's chromium", "install it with `apt-get install -y chromium` (make test does)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
        yield browser
        browser.close()


def sign_in(page, url: str, username: str, password: str) -> None:
    page.goto(url + "/accounts/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("button[type=submit]")


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
