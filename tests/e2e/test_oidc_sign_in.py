"""Single sign-on in chromium: the embedded server that `make run` starts, configured for a real OpenID Connect
provider running as a process of its own (``tests/support/oidc_provider.py``), local passwords switched off.

Prints the sign-in round trip: from the click on the provider's "Sign in" to pksweb's page, which covers the
redirect back, the code exchange, the JWKS, the ID token's checks and the memberships set."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from tests.support.embedded import embedded_env, start_embedded
from tests.support.net import free_port
from tests.support.oidc import CLIENT_ID, CLIENT_SECRET, Provider, start_provider
from tests.support.stack import manage

pytestmark = pytest.mark.e2e

GROUP_MAP = "platform-ops = operator; k8s-tenant-{tenant}-admins = admin:{tenant}"


@pytest.fixture(scope="module")
def sso(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Provider, dict]]:
    folder = tmp_path_factory.mktemp("sso")
    port = free_port()
    with start_provider(folder, f"http://127.0.0.1:{port}/accounts/oidc/callback/") as provider:
        env = {"PKSWEB_SANDBOX_CLUSTERS": "0", "PKSWEB_OIDC_ISSUER": provider.issuer, "PKSWEB_OIDC_CLIENT_ID": CLIENT_ID,
               "PKSWEB_OIDC_CLIENT_SECRET": CLIENT_SECRET, "PKSWEB_OIDC_GROUP_MAP": GROUP_MAP, "PKSWEB_LOCAL_LOGIN": "0"}
        data = folder / "data"
        data.mkdir()
        manage(embedded_env(data, **env), "migrate", "--noinput")
        manage(embedded_env(data, **env), "createuser", "break-glass", "--role", "operator", "--password-stdin",
               stdin="break-glass-Secret-42\n")
        yield from ((provider, server) for server in start_embedded(data, port=port, **env))


def through_provider(page, url: str, name: str) -> float:
    """Click single sign-on, sign in at the provider; seconds from the provider's submit to pksweb's page."""
    page.goto(url + "/accounts/login/")
    page.click("#sso-sign-in")
    page.wait_for_selector("#username")
    page.fill("#username", name)
    page.fill("#password", "pw")
    started = time.perf_counter()
    page.click("#submit")
    page.wait_for_url(url + "/**")
    page.wait_for_load_state("load")
    return time.perf_counter() - started


def test_operator_and_tenant_admin_sign_in_through_the_provider_and_sign_out_ends_its_session(sso, browser):
    provider, server = sso
    provider.user("olivia", ["platform-ops"])
    provider.user("tara", ["k8s-tenant-acme-bank-admins"])
    page = browser.new_page()
    seconds = through_provider(page, server["url"], "olivia")
    assert page.url.endswith("/clusters/")
    assert "olivia · Operator" in page.inner_text("header")
    print(f"\nsign-in round trip (provider submit -> fleet page loaded): {seconds * 1000:.0f} ms")

    page.click("header button[type=submit]")  # sign out: pksweb, then the provider's end-session, back to login
    page.wait_for_url(server["url"] + "/accounts/login/")
    assert any(e["event"] == "logout" and e["user"] == "olivia" and e["hint"] for e in provider.log())
    page.click("#sso-sign-in")
    page.wait_for_selector("#username")  # the provider asks again: its session ended too

    timings = [through_provider(page, server["url"], "tara")]
    assert "tara · Tenant admin" in page.inner_text("header") and "/tenants/" in page.url
    print(f"tenant admin round trip: {timings[0] * 1000:.0f} ms")
    page.close()


def test_passwords_are_off_but_the_break_glass_account_signs_in(sso, browser):
    _, server = sso
    page = browser.new_page()
    page.goto(server["url"] + "/accounts/login/")
    assert "only for the break-glass account" in page.inner_text("#break-glass-note")
    page.fill("#id_username", "operator")
    page.fill("#id_password", "operator-demo")
    page.click("form[action='/accounts/login/'] button[type=submit]")
    assert "Please enter a correct username and password" in page.inner_text("#login-error")
    page.fill("#id_username", "break-glass")
    page.fill("#id_password", "break-glass-Secret-42")
    page.click("form[action='/accounts/login/'] button[type=submit]")
    page.wait_for_url("**/clusters/")
    page.close()
