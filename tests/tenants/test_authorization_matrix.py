"""The authorization matrix: every route of the URL configuration and every websocket route,
for every role, against objects of tenant A and of tenant B — allowed or denied as written here.

The routes come from the URL configuration and the websocket routing themselves: a new route
without an entry in RULES fails the test until someone decides who may use it.
"""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import get_resolver, reverse

from tests.support.routes import walk

ROLES = ("anonymous", "viewer", "tenant-admin-a", "tenant-admin-b", "approver", "operator")
PLATFORM = {"viewer", "approver", "operator"}
SIGNED_IN = set(ROLES) - {"anonymous"}


def rule(*, a: set[str], b: set[str] | None = None) -> dict[str, set[str]]:
    """Who is allowed when the route's object belongs to tenant A (``a``) and to tenant B (``b``)."""
    return {"A": a, "B": a if b is None else b}


EVERYONE = rule(a=set(ROLES))
SIGNED = rule(a=SIGNED_IN)
FLEET_READ = rule(a=PLATFORM)
FLEET_WRITE = rule(a={"operator"})
TENANT_READ = rule(a=PLATFORM | {"tenant-admin-a"}, b=PLATFORM | {"tenant-admin-b"})
TENANT_WRITE = rule(a={"operator", "tenant-admin-a"}, b={"operator", "tenant-admin-b"})
APPROVE = rule(a={"approver"})
NOBODY = rule(a=set())
TENANT_ROOM = rule(a={"operator", "tenant-admin-a"}, b={"operator", "tenant-admin-b"})  # a tenant's notification channel

# Lists answer everyone signed in, each with only what the policy lets them see (the isolation
# test checks their content); everything else is allowed or refused outright.
RULES: dict[str, dict[str, set[str]]] = {
    "healthz": EVERYONE, "readyz": EVERYONE, "login": EVERYONE, "favicon": EVERYONE,
    # single sign-on's round trip: 404 while PKSWEB_OIDC_ISSUER is unset (as here); with it, for everyone
    # (tests/pksweb/test_oidc_flow.py)
    "oidc_login": NOBODY, "oidc_callback": NOBODY,
    "metrics": FLEET_READ,  # and Prometheus with the bearer token (tests/pksweb/test_metrics.py)
    "home": SIGNED, "activity": SIGNED, "api:api-root": SIGNED, "api:me": SIGNED,
    "api:schema": SIGNED, "api:docs": SIGNED, "api:redoc": SIGNED,
    "announce": FLEET_WRITE, "api:announcement-create": FLEET_WRITE,
    "api:event-list": SIGNED, "api:event-detail": TENANT_READ,
    # clusters: the platform team's
    "clusters:fleet": FLEET_READ, "clusters:detail": FLEET_READ, "clusters:live": FLEET_READ, "api:cluster-list": SIGNED,
    "api:cluster-detail": FLEET_READ, "api:cluster-health": FLEET_READ, "api:cluster-nodes": FLEET_READ,
    "api:cluster-segmentation": FLEET_READ, "api:operation-list": SIGNED, "api:operation-detail": FLEET_READ,
    "clusters:register": FLEET_WRITE, "clusters:edit": FLEET_WRITE, "clusters:delete": FLEET_WRITE, "clusters:probe": FLEET_WRITE,
    "clusters:node-operation": FLEET_WRITE, "api:cluster-probe": FLEET_WRITE, "api:cluster-node-operation": FLEET_WRITE,
    "api:cluster-node-assign": FLEET_WRITE, "api:cluster-node-release": FLEET_WRITE,
    "tenants:segmentation": FLEET_READ, "tenants:node-assign": FLEET_WRITE, "tenants:node-release": FLEET_WRITE,
    # tenants: the platform team and the tenant's own admins
    "tenants:list": SIGNED, "api:tenant-list": SIGNED, "api:namespace-list": SIGNED,
    "tenants:detail": TENANT_READ, "api:tenant-detail": TENANT_READ, "api:tenant-members": TENANT_READ,
    "tenants:namespace": TENANT_READ, "tenants:namespace-live": TENANT_READ, "api:namespace-detail": TENANT_READ,
    "tenants:namespace-create": TENANT_WRITE, "tenants:namespace-delete": TENANT_WRITE, "tenants:namespace-reconcile": TENANT_WRITE,
    "api:namespace-reconcile": TENANT_WRITE,
    "tenants:create": FLEET_WRITE, "tenants:edit": FLEET_WRITE, "tenants:member-add": FLEET_WRITE,
    "api:tenant-remove-member": FLEET_WRITE,
    "tenants:scorecard": FLEET_READ, "api:tenant-scorecard": FLEET_READ,
    # upgrades: the platform team's; approvers sign off, operators run
    "upgrades:list": FLEET_READ, "upgrades:plan": FLEET_READ, "upgrades:rollout": FLEET_READ, "api:upgrade-plan-list": SIGNED,
    "api:upgrade-plan-detail": FLEET_READ, "api:rollout-list": SIGNED, "api:rollout-detail": FLEET_READ,
    "upgrades:create": FLEET_WRITE, "upgrades:edit": FLEET_WRITE, "upgrades:cluster-driver": FLEET_WRITE,
    "api:upgrade-plan-submit": FLEET_WRITE, "api:upgrade-plan-start": FLEET_WRITE,
    "api:rollout-pause": FLEET_WRITE, "api:rollout-resume": FLEET_WRITE, "api:rollout-abort": FLEET_WRITE,
    "upgrades:rollout-action": FLEET_WRITE,
    "upgrades:plan-action": APPROVE,
    "api:upgrade-plan-approve": APPROVE, "api:upgrade-plan-reject": APPROVE,
    # notifications: channels and deliveries are the operators'; each person chooses their own subscriptions
    "notifications:index": FLEET_WRITE, "notifications:channel-create": FLEET_WRITE, "notifications:channel-delete": FLEET_WRITE,
    "api:notification-channel-list": SIGNED, "api:notification-delivery-list": SIGNED,
    "api:notification-channel-detail": TENANT_ROOM,
    "api:notification-delivery-detail": FLEET_WRITE,
    "notifications:profile": SIGNED, "api:my-notifications": SIGNED,
}
SKIP = {"logout"}  # it ends the session under test; CSRF and sign-out are tested on their own

WEBSOCKET_RULES = {"ws/fleet/": FLEET_READ, "ws/clusters/<id:cluster_id>/": FLEET_READ, "ws/activity/": SIGNED,
                   "ws/tenants/<id:tenant_id>/": TENANT_READ, "ws/rollouts/<id:rollout_id>/": FLEET_READ,
                   "": NOBODY}  # any other path: closed as not found


def route_value(name: str, param: str, world: dict, side: str) -> str:
    objects = world[side]
    if param == "pk":
        for prefix, key in (("tenants:namespace", "namespace"), ("api:namespace", "namespace"), ("tenants:", "tenant"),
                            ("api:tenant", "tenant"), ("api:event", "event"), ("api:operation", "operation"),
                            ("upgrades:rollout", "rollout"), ("api:rollout", "rollout"), ("upgrades:", "plan"),
                            ("api:upgrade-plan", "plan"), ("notifications:", "channel"), ("api:notification-channel", "channel"),
                            ("api:notification-delivery", "delivery")):
            if name.startswith(prefix):
                return str(objects[key].pk)
        return str(world["cluster"].pk)
    action = "approve" if name == "upgrades:plan-action" else "pause"
    return {"cluster_id": str(world["cluster"].pk), "node": objects["node"], "kind": "cordon", "action": action,
            "username": objects["admin"].username}.get(param, "1")


def outcome(client: Client, url: str) -> str:
    """GET; a route that does not answer GET is asked with the first method it names (empty body)."""
    response = client.get(url)
    if response.status_code == 405:
        method = next(m for m in ("POST", "PUT", "PATCH", "DELETE") if m in response["Allow"])
        response = getattr(client, method.lower())(url, {}, content_type="application/json")
    if response.status_code in (401, 403, 404) or (response.status_code == 302 and "/accounts/login/" in response["Location"]):
        return "deny"
    return "allow"


@pytest.fixture
def world(acme, globex, registered, sandbox_cluster, make_namespace, operator, approver, viewer, tenant_admin, other_tenant_admin):
    from clusters.operations import node_operation_start
    from notifications.models import Delivery
    from notifications.services import channel_create
    from pksweb.events import publish
    from tenants.models import TenantMembership
    from upgrades.models import Rollout, UpgradePlan

    TenantMembership.objects.get_or_create(tenant=acme, user=tenant_admin, defaults={"role": "admin"})
    TenantMembership.objects.get_or_create(tenant=globex, user=other_tenant_admin, defaults={"role": "admin"})
    plan = UpgradePlan.objects.create(name="to 1.31", target_version="1.31.2", waves=[[registered.pk]], author=operator)
    rollout = Rollout.objects.create(plan=plan, revision="r", state="paused")
    sides = {}
    for side, tenant, admin, node in (("A", acme, tenant_admin, "w-1"), ("B", globex, other_tenant_admin, "w-2")):
        sides[side] = {"tenant": tenant, "admin": admin, "node": f"{sandbox_cluster.name}-{node}",
                       "namespace": make_namespace(tenant, registered, f"ns-{side.lower()}"),
                       "event": publish(kind="tenant.notice", message=f"news of {tenant.name}", tenant=tenant),
                       "operation": node_operation_start(cluster=registered, node=f"{sandbox_cluster.name}-{node}", kind="cordon",
                                                         requested_by=operator),
                       "plan": plan, "rollout": rollout,
                       "channel": channel_create(name=f"room-{side}", url=f"json://127.0.0.1:9/{side}", tenant=tenant, created_by=operator),
                       "delivery": Delivery.objects.create(channel_name=f"room-{side}", kind="cluster_unreachable", subject="c",
                                                           event_id=1, title="t", body="b")}
    users = {"viewer": viewer, "tenant-admin-a": tenant_admin, "tenant-admin-b": other_tenant_admin, "approver": approver,
             "operator": operator}
    return {**sides, "cluster": registered, "users": users}


@pytest.mark.django_db
def test_every_route_for_every_role_against_both_tenants(world, django_capture_on_commit_callbacks):
    from django.db import transaction

    routes = [(name, params) for name, params in walk(get_resolver()) if name not in SKIP]
    unruled = sorted({name for name, _ in routes} - set(RULES))
    assert not unruled, f"routes without an entry in the authorization matrix: {unruled}"
    assert not set(RULES) - {name for name, _ in routes}, "entries for routes that no longer exist"
    wrong = []
    for name, params in routes:
        for side in ("A", "B") if params else ("A",):
            url = reverse(name, kwargs={p: route_value(name, p, world, side) for p in params})
            for role in ROLES:
                client = Client()
                if role != "anonymous":
                    client.force_login(world["users"][role])
                with transaction.atomic(), django_capture_on_commit_callbacks(execute=False):
                    got = outcome(client, url)
                    transaction.set_rollback(True)  # every request sees the same world
                expected = "allow" if role in RULES[name][side] else "deny"
                if got != expected:
                    wrong.append(f"{role} {name} (object of tenant {side}): {got}, expected {expected}")
    assert not wrong, "\n".join(wrong)


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_every_websocket_route_for_every_role(world):
    from pksweb.routing import websocket_urlpatterns
    from tests.support.sockets import admitted, socket

    routes = [str(entry.pattern) for entry in websocket_urlpatterns]
    assert sorted(routes) == sorted(WEBSOCKET_RULES), "a websocket route without an entry in WEBSOCKET_RULES (or a stale one)"
    wrong = []
    for route in routes:
        for side in ("A", "B") if "<" in route else ("A",):
            path = "/" + (route.replace("<id:cluster_id>", str(world["cluster"].pk))
                          .replace("<id:tenant_id>", str(world[side]["tenant"].pk))
                          .replace("<id:rollout_id>", str(world[side]["rollout"].pk)))
            for role in ROLES:
                user = None if role == "anonymous" else world["users"][role]
                connected = await admitted(await socket(path, user))
                expected = role in WEBSOCKET_RULES[route][side]
                if connected != expected:
                    wrong.append(f"{role} {path}: {'connected' if connected else 'refused'}, expected {'allow' if expected else 'deny'}")
    assert not wrong, "\n".join(wrong)
