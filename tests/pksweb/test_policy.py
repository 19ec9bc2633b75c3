"""The policy as a matrix: role × action × object."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import AnonymousUser

from pksweb import policy
from pksweb.events import publish
from pksweb.models import Event
from tenants.models import Tenant

pytestmark = pytest.mark.django_db


@pytest.fixture
def objects(tenant, other_tenant):
    return {
        "own_tenant": tenant,
        "other_tenant": other_tenant,
        "fleet_event": publish(kind="system.notice", message="fleet-wide"),
        "own_event": publish(kind="tenant.notice", message="acme", tenant=tenant),
        "other_event": publish(kind="tenant.notice", message="globex", tenant=other_tenant),
        "Event": Event,
        "Tenant": Tenant,
    }


MATRIX = [
    # role,          action,   object,         allowed
    ("operator", "view", "fleet_event", True),
    ("operator", "view", "other_event", True),
    ("operator", "create", "Event", True),
    ("operator", "operate", "own_tenant", True),
    ("operator", "manage", "other_tenant", True),
    ("operator", "create", "Tenant", True),
    ("approver", "view", "fleet_event", True),
    ("approver", "view", "own_tenant", True),
    ("approver", "create", "Event", False),
    ("approver", "operate", "own_tenant", False),
    ("approver", "manage", "own_tenant", False),
    ("viewer", "view", "other_event", True),
    ("viewer", "view", "other_tenant", True),
    ("viewer", "create", "Event", False),
    ("viewer", "manage", "own_tenant", False),
    ("viewer", "create", "Tenant", False),
    ("tenant-admin", "view", "own_event", True),
    ("tenant-admin", "view", "other_event", False),
    ("tenant-admin", "view", "fleet_event", False),
    ("tenant-admin", "view", "own_tenant", True),
    ("tenant-admin", "view", "other_tenant", False),
    ("tenant-admin", "manage", "own_tenant", True),
    ("tenant-admin", "manage", "other_tenant", False),
    ("tenant-admin", "operate", "own_tenant", False),
    ("tenant-admin", "create", "Event", False),
    ("tenant-admin", "create", "Tenant", False),
    ("anonymous", "view", "fleet_event", False),
    ("anonymous", "view", "own_tenant", False),
    ("anonymous", "create", "Event", False),
]


@pytest.mark.parametrize(("role", "action", "obj", "allowed"), MATRIX)
def test_can(users, objects, role, action, obj, allowed):
    user = AnonymousUser() if role == "anonymous" else users[role]
    assert policy.can(user, action, objects[obj]) is allowed


def test_inactive_user_may_do_nothing(operator, objects):
    operator.is_active = False
    assert not policy.can(operator, "view", objects["fleet_event"])


def test_unknown_action_is_a_programming_error(operator, objects):
    with pytest.raises(ValueError, match="unknown action"):
        policy.can(operator, "delete-everything", objects["fleet_event"])


@pytest.mark.parametrize(
    ("role", "visible"),
    [
        ("operator", {"fleet-wide", "acme", "globex"}),
        ("approver", {"fleet-wide", "acme", "globex"}),
        ("viewer", {"fleet-wide", "acme", "globex"}),
        ("tenant-admin", {"acme"}),
        ("anonymous", set()),
    ],
)
def test_restrict_events(users, objects, role, visible):
    user = AnonymousUser() if role == "anonymous" else users[role]
    messages = set(policy.restrict(user, Event.objects.filter(kind__endswith=".notice")).values_list("message", flat=True))
    assert messages == visible


@pytest.mark.parametrize(("role", "visible"), [("operator", {"acme-bank", "globex-insurance"}), ("tenant-admin", {"acme-bank"})])
def test_restrict_tenants(users, objects, role, visible):
    assert set(policy.restrict(users[role], Tenant.objects.all()).values_list("name", flat=True)) == visible
