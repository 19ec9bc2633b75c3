"""Single sign-on against a real OpenID Connect provider in a process of its own (``tests/support/oidc_provider.py``,
Authlib's provider classes): pksweb's requests run in this process through Django's test client, every call to
the provider (discovery, the sign-in form, the code exchange, JWKS) goes over HTTP to that process."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import httpx
import pytest
from django.test import Client

from pksweb.audit import audit_seal, audit_verify
from pksweb.choices import Role
from pksweb.models import Event, SignInIdentity, User
from pksweb.oidc import client as oidc_client
from tests.factories import TenantFactory, UserFactory
from tests.support.oidc import Provider, round_trip, start_provider

CALLBACK = "http://testserver/accounts/oidc/callback/"
GROUP_MAP = ("platform-ops = operator; change-board = approver; readers = viewer; "
             "k8s-tenant-{tenant}-admins = admin:{tenant}; k8s-tenant-{tenant}-viewers = viewer:{tenant}")


@pytest.fixture(scope="module")
def provider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Provider]:
    with start_provider(tmp_path_factory.mktemp("oidc"), CALLBACK) as running:
        yield running


@pytest.fixture
def sso(provider, settings, db):
    settings.PKSWEB_OIDC = provider.settings(PKSWEB_OIDC_GROUP_MAP=GROUP_MAP)
    oidc_client.forget_reachable()
    TenantFactory(name="acme-bank")
    TenantFactory(name="globex-insurance")
    return provider


def signed_in(client: Client) -> User | None:
    user_id = client.session.get("_auth_user_id")
    return User.objects.get(pk=user_id) if user_id else None


def tenants_of(user: User) -> dict[str, str]:
    return {m.tenant.name: m.role for m in user.tenant_memberships.select_related("tenant")}


@pytest.mark.parametrize(("groups", "role", "tenants"), [
    (["platform-ops"], Role.OPERATOR, {}),
    (["change-board"], Role.APPROVER, {}),
    (["readers"], Role.VIEWER, {}),
    (["k8s-tenant-acme-bank-admins"], Role.TENANT_ADMIN, {"acme-bank": "admin"}),
    (["k8s-tenant-globex-insurance-viewers"], Role.TENANT_ADMIN, {"globex-insurance": "viewer"}),
    (["k8s-tenant-acme-bank-viewers", "k8s-tenant-globex-insurance-admins", "k8s-tenant-nope-admins", "unrelated"],
     Role.TENANT_ADMIN, {"acme-bank": "viewer", "globex-insurance": "admin"}),
    (["readers", "platform-ops", "k8s-tenant-acme-bank-admins"], Role.OPERATOR, {}),
])
def test_each_group_gives_its_role_and_tenant(sso, groups, role, tenants):
    name = "pat"  # one provider account, its groups set anew for each case (each test has a fresh database)
    sso.user(name, groups)
    client = Client()
    answer = round_trip(client, name)
    assert answer.status_code == 302 and answer["Location"] == "/", answer.content[:300]
    user = signed_in(client)
    assert user is not None and user.username == name and user.role == role
    assert tenants_of(user) == tenants
    assert not user.has_usable_password()
    assert Event.objects.filter(kind="auth.sso_sign_in", actor=user).exists()
    assert client.get("/api/me/").status_code == 200
    authorize = [e for e in sso.log() if e["event"] == "authorize" and e["user"] == name]
    assert authorize and authorize[-1]["pkce"] == "S256"


def test_a_group_taken_away_revokes_at_next_sign_in_and_it_is_audited(sso):
    sso.user("dana", ["platform-ops", "k8s-tenant-acme-bank-admins"])
    first = Client()
    round_trip(first, "dana")
    dana = User.objects.get(username="dana")
    assert dana.role == Role.OPERATOR

    sso.user("dana", ["k8s-tenant-acme-bank-admins"])  # no longer in platform-ops
    second = Client()
    round_trip(second, "dana")
    dana.refresh_from_db()
    assert dana.role == Role.TENANT_ADMIN and tenants_of(dana) == {"acme-bank": "admin"}
    changed = Event.objects.filter(kind="auth.sso_role_changed", actor=dana).first()
    assert changed is not None and "operator → tenant-admin" in changed.message

    sso.user("dana", ["unrelated"])  # every mapped group gone: refused, and her sessions end
    third = Client()
    answer = round_trip(third, "dana")
    assert answer["Location"] == "/accounts/login/" and signed_in(third) is None
    assert "give you no access" in third.get("/accounts/login/").content.decode()
    dana.refresh_from_db()
    assert not dana.is_active and tenants_of(dana) == {}
    assert second.get("/api/me/").status_code in (401, 403)  # the open session of before is dead
    assert any("deactivated" in e.payload["changes"] for e in Event.objects.filter(kind="auth.sso_refused"))
    assert Event.objects.filter(kind="tenant.member_removed", payload__source="oidc").exists()

    sso.user("dana", ["readers"])  # given back: active again
    round_trip(Client(), "dana")
    dana.refresh_from_db()
    assert dana.is_active and dana.role == Role.VIEWER

    assert audit_seal(delay=timedelta(0)) > 0
    assert audit_verify().ok


@pytest.mark.parametrize(("fault", "reason"), [
    ("bad-signature", "BadSignatureError"), ("wrong-audience", "Invalid claim: 'aud'"), ("expired", "ExpiredTokenError"),
    ("wrong-issuer", "Invalid claim: 'iss'"), ("replay-nonce", "Invalid claim: 'nonce'"),
])
def test_a_wrong_id_token_is_refused(sso, fault, reason):
    """Each refused for its own reason (the wrong-audience token names pksweb as ``azp``, so only the audience
    check refuses it)."""
    sso.user("eve", ["platform-ops"])
    if fault == "replay-nonce":
        round_trip(Client(), "eve")  # a sign-in before, whose nonce the next token carries
    sso.next_token(fault)
    client = Client()
    answer = round_trip(client, "eve")
    assert answer.status_code == 302 and answer["Location"] == "/accounts/login/"
    assert signed_in(client) is None
    page = client.get("/accounts/login/").content.decode()
    assert "Single sign-on failed" in page
    failed = Event.objects.filter(kind="auth.sso_refused", message__startswith="Single sign-on failed").last()
    assert failed is not None
    assert reason in failed.payload["reason"]
    assert [e["fault"] for e in sso.log() if e["event"] == "token"][-1] == fault  # the provider did mint it so


def test_a_token_signed_by_a_rotated_key_is_accepted(sso):
    sso.user("rot", ["readers"])
    round_trip(Client(), "rot")  # pksweb has the provider's keys now
    sso.rotate()
    client = Client()
    round_trip(client, "rot")  # a key id pksweb has not seen: it fetches the JWKS again
    assert signed_in(client) is not None


def test_a_replayed_callback_is_refused(sso):
    sso.user("rep", ["readers"])
    client = Client()
    start = client.get("/accounts/oidc/login/")
    back = httpx.post(start["Location"], data={"username": "rep", "password": "pw"}, timeout=10).headers["location"]
    path = back.split("testserver", 1)[1]
    assert client.get(path)["Location"] == "/"
    client.logout()
    assert client.get(path)["Location"] == "/accounts/login/"  # the state was used: refused
    assert signed_in(client) is None


def test_a_provider_account_named_like_a_local_one_does_not_become_it(sso):
    local = UserFactory(username="break-glass", role=Role.OPERATOR)
    sso.user("break-glass", ["readers"])
    client = Client()
    round_trip(client, "break-glass")
    user = signed_in(client)
    assert user is not None and user.pk != local.pk and user.role == Role.VIEWER
    assert SignInIdentity.objects.get(user=user).issuer == sso.issuer


def test_sign_out_ends_the_provider_session(sso):
    sso.user("out", ["readers"])
    client = Client()
    round_trip(client, "out")
    answer = client.post("/accounts/logout/")
    assert answer.status_code == 302 and answer["Location"].startswith(f"{sso.issuer}/logout?")
    assert "id_token_hint=" in answer["Location"] and "post_logout_redirect_uri=" in answer["Location"]
    assert signed_in(client) is None


def test_local_sign_in_off_leaves_only_the_break_glass_account_and_audits_it(sso, settings, password):
    settings.PKSWEB_OIDC = sso.settings(PKSWEB_OIDC_GROUP_MAP=GROUP_MAP, PKSWEB_LOCAL_LOGIN="0")
    UserFactory(username="op", role=Role.OPERATOR)
    UserFactory(username="break-glass", role=Role.OPERATOR)
    client = Client()
    page = client.get("/accounts/login/").content.decode()
    assert "only for the break-glass account" in page and 'id="sso-sign-in"' in page
    client.post("/accounts/login/", {"username": "op", "password": password})
    assert signed_in(client) is None
    client.post("/accounts/login/", {"username": "break-glass", "password": password})
    assert signed_in(client) is not None
    assert Event.objects.filter(kind="auth.break_glass", actor__username="break-glass").count() == 1


def test_with_the_provider_down_the_login_page_says_so_and_break_glass_works(tmp_path, settings, db, password):
    with start_provider(tmp_path, CALLBACK) as gone:
        settings.PKSWEB_OIDC = gone.settings(PKSWEB_LOCAL_LOGIN="0")
    oidc_client.forget_reachable()
    UserFactory(username="break-glass", role=Role.OPERATOR)
    client = Client()
    page = client.get("/accounts/login/").content.decode()
    assert f"The identity provider at {gone.issuer} does not answer" in page
    assert "break-glass account (break-glass) still signs in" in page
    answer = client.get("/accounts/oidc/login/")
    assert answer["Location"] == "/accounts/login/"
    assert "does not answer" in client.get("/accounts/login/").content.decode()
    client.post("/accounts/login/", {"username": "break-glass", "password": password})
    assert signed_in(client) is not None
    assert Event.objects.filter(kind="auth.break_glass").exists()


def test_without_an_issuer_single_sign_on_is_off(client, db):
    assert client.get("/accounts/oidc/login/").status_code == 404
    assert client.get("/accounts/oidc/callback/").status_code == 404
    assert 'id="sso-sign-in"' not in client.get("/accounts/login/").content.decode()


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_a_sign_in_that_takes_a_role_away_closes_the_persons_open_pages(provider, settings):
    """The operator's fleet page is open; the provider moves them to a tenant group; at their next sign-in
    (from another browser) the open page closes, as for any role change."""
    from asgiref.sync import sync_to_async

    from pksweb.consumers import CLOSE_FORBIDDEN
    from tests.support.sockets import closed_within, socket

    settings.PKSWEB_OIDC = provider.settings(PKSWEB_OIDC_GROUP_MAP=GROUP_MAP)
    await sync_to_async(TenantFactory)(name="acme-bank")
    provider.user("sam", ["platform-ops"])
    await sync_to_async(round_trip)(Client(), "sam")
    sam = await User.objects.aget(username="sam")
    page = await socket("/ws/fleet/", sam)
    assert (await page.connect())[0]
    provider.user("sam", ["k8s-tenant-acme-bank-admins"])
    await sync_to_async(round_trip)(Client(), "sam")
    assert await closed_within(page, 5) == CLOSE_FORBIDDEN
