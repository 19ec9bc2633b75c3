from __future__ import annotations

import os

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

from pksweb.choices import Role
from tests.factories import PASSWORD, MembershipFactory, TenantFactory, UserFactory


def require_service(what: str, how_to_start: str) -> None:
    """Under CI a missing service fails the test; elsewhere it skips, saying what to start."""
    message = f"{what} is not reachable: {how_to_start}"
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture
def password() -> str:
    return PASSWORD


@pytest.fixture
def operator(db):
    return UserFactory(username="op", role=Role.OPERATOR)


@pytest.fixture
def approver(db):
    return UserFactory(username="appr", role=Role.APPROVER)


@pytest.fixture
def viewer(db):
    return UserFactory(username="view", role=Role.VIEWER)


@pytest.fixture
def tenant(db):
    return TenantFactory(name="acme-bank")


@pytest.fixture
def other_tenant(db):
    return TenantFactory(name="globex-insurance")


@pytest.fixture
def tenant_admin(db, tenant):
    return MembershipFactory(tenant=tenant, user__username="acme-admin").user


@pytest.fixture
def other_tenant_admin(db, other_tenant):
    return MembershipFactory(tenant=other_tenant, user__username="globex-admin").user


@pytest.fixture
def users(operator, approver, viewer, tenant_admin):
    return {"operator": operator, "approver": approver, "viewer": viewer, "tenant-admin": tenant_admin}


@pytest.fixture(autouse=True)
def _fresh_channel_layer(request):
    """Each test starts with an empty in-process channel layer.

    Browser tests talk to a server in another process and run Playwright's own
    event loop in this thread, where async_to_sync may not be used.
    """
    if request.node.get_closest_marker("e2e"):
        yield
        return
    layer = get_channel_layer()
    if hasattr(layer, "flush"):
        async_to_sync(layer.flush)()
    yield


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    """PBKDF2's deliberate slowness is for attackers, not the test suite."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
