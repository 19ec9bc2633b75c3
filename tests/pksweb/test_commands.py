"""Management commands: createuser, apitoken, seed_demo."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from rest_framework.authtoken.models import Token

from pksweb.models import Event, User
from pksweb.seed import DEMO_USERS
from tenants.models import Tenant, TenantMembership

pytestmark = pytest.mark.django_db


def createuser(*args: str, stdin: str = "") -> str:
    out = io.StringIO()
    import sys

    real = sys.stdin
    sys.stdin = io.StringIO(stdin)
    try:
        call_command("createuser", *args, stdout=out)
    finally:
        sys.stdin = real
    return out.getvalue()


def test_createuser_with_password_from_stdin(client):
    out = createuser("alice", "--role", "operator", "--password-stdin", stdin="a-long-enough-passphrase\n")
    assert out.strip() == "Created alice (operator)."
    user = User.objects.get(username="alice")
    assert user.role == "operator" and user.check_password("a-long-enough-passphrase")
    assert signs_in(client, "alice", "a-long-enough-passphrase")


def test_createuser_tenant_admin_joins_tenants(tenant, other_tenant):
    createuser("bob", "--role", "tenant-admin", "--tenant", "acme-bank", "--tenant", "globex-insurance",
               "--password-stdin", stdin="a-long-enough-passphrase\n")
    names = set(TenantMembership.objects.filter(user__username="bob").values_list("tenant__name", flat=True))
    assert names == {"acme-bank", "globex-insurance"}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--role", "admin"], "'admin' is not a role: choose one of operator, approver, tenant-admin, viewer."),
        (["--role", "tenant-admin", "--tenant", "nope"], "tenant: no tenant is called 'nope'."),
        (["--role", "tenant-admin"], "A tenant admin needs at least one tenant"),
        (["--role", "viewer", "--tenant", "acme-bank"], "Only tenant admins belong to tenants"),
    ],
)
def test_createuser_refuses_bad_input_clearly(tenant, args, message):
    with pytest.raises(CommandError) as exc:
        createuser("carol", *args, "--password-stdin", stdin="a-long-enough-passphrase\n")
    assert message in str(exc.value)
    assert not User.objects.filter(username="carol").exists()


def test_createuser_refuses_weak_or_empty_password_and_duplicates(operator):
    with pytest.raises(CommandError, match="too common"):
        createuser("dave", "--role", "viewer", "--password-stdin", stdin="password\n")
    with pytest.raises(CommandError, match="password is empty"):
        createuser("dave", "--role", "viewer", "--password-stdin", stdin="\n")
    with pytest.raises(CommandError, match="already exists"):
        createuser("op", "--role", "viewer", "--password-stdin", stdin="a-long-enough-passphrase\n")
    assert not User.objects.filter(username="dave").exists()


def test_apitoken_prints_a_stable_token(operator):
    first, second = io.StringIO(), io.StringIO()
    call_command("apitoken", "op", stdout=first)
    call_command("apitoken", "op", stdout=second)
    assert first.getvalue() == second.getvalue()
    assert Token.objects.get(user=operator).key == first.getvalue().strip()


def test_apitoken_for_unknown_user():
    with pytest.raises(CommandError, match="no user is called 'ghost'"):
        call_command("apitoken", "ghost")


def test_seed_demo_is_idempotent(client):
    call_command("seed_demo", stdout=io.StringIO())
    counts = (User.objects.count(), Tenant.objects.count(), TenantMembership.objects.count(), Event.objects.count())
    operator = User.objects.get(username="operator")
    operator.set_password("changed-by-someone")
    operator.save()
    out = io.StringIO()
    call_command("seed_demo", stdout=out)
    assert "Demo data: already there" in out.getvalue()
    assert (User.objects.count(), Tenant.objects.count(), TenantMembership.objects.count(), Event.objects.count()) == counts
    assert User.objects.get(username="operator").check_password("changed-by-someone")
    for username, password, role, tenants in DEMO_USERS:
        user = User.objects.get(username=username)
        assert user.role == role
        assert set(user.tenant_memberships.values_list("tenant__name", flat=True)) == set(tenants)
        if username != "operator":
            assert signs_in(client, username, password)


def signs_in(client, username: str, password: str) -> bool:
    """Through the sign-in page, as a person would (the throttle needs the request)."""
    from django.urls import reverse

    return client.post(reverse("login"), {"username": username, "password": password}).status_code == 302
