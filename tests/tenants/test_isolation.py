"""Tenants kept apart: walk every route as tenant A's admin and find nothing of tenant B.

The routes come from the URL configuration itself, so a new page, partial or API
endpoint is walked without anyone remembering to add it here.
"""

from __future__ import annotations

import pytest
from channels.db import database_sync_to_async
from django.test import Client
from django.urls import get_resolver, reverse

from clusters.operations import node_operation_start
from pksweb.events import publish
from pksweb.models import Event
from pksweb.routing import websocket_urlpatterns
from tenants.models import Tenant, TenantNamespace
from tenants.reconciler import namespace_reconcile
from tenants.services import node_assign
from tests.support.routes import walk
from tests.support.sockets import admitted, socket

SKIP = {"logout"}  # walking it would end the session being tested


@pytest.fixture
def world(acme, globex, registered, sandbox_cluster, make_namespace, operator, tenant_admin, other_tenant_admin):
    mine = make_namespace(acme, registered, "payments")
    theirs = make_namespace(globex, registered, "claims-secret")
    namespace_reconcile(namespace_id=mine.pk)
    namespace_reconcile(namespace_id=theirs.pk)
    node_assign(cluster=registered, node=f"{sandbox_cluster.name}-w-3", tenant=globex, assigned_by=operator)
    secret = publish(kind="tenant.notice", message="globex quarterly numbers", tenant=globex)
    operation = node_operation_start(cluster=registered, node=f"{sandbox_cluster.name}-w-1", kind="cordon", requested_by=operator)
    return {"mine": mine, "theirs": theirs, "secret": secret, "operation": operation}


def value_for(name: str, param: str, world: dict, globex: Tenant, registered, sandbox_cluster) -> str:
    if param == "pk":
        if "namespace" in name:
            return str(world["theirs"].pk)
        if name.startswith("tenants:") or name.startswith("api:tenant"):
            return str(globex.pk)
        if name.startswith("api:event"):
            return str(world["secret"].pk)
        if name.startswith("api:operation"):
            return str(world["operation"].pk)
        return str(registered.pk)
    return {"cluster_id": str(registered.pk), "node": f"{sandbox_cluster.name}-w-3", "kind": "drain",
            "username": "globex-admin"}.get(param, "1")


FORBIDDEN_TEXT = ("globex-insurance", "claims-secret", "globex-admin", "globex quarterly numbers")


@pytest.mark.django_db
def test_every_route_hides_tenant_b_from_tenant_a(world, tenant_admin, globex, registered, sandbox_cluster,
                                                   django_capture_on_commit_callbacks):
    routes = walk(get_resolver())
    names = {name for name, _ in routes}
    assert {"tenants:detail", "tenants:namespace", "tenants:namespace-live", "api:tenant-detail", "api:namespace-detail",
            "api:tenant-members", "clusters:fleet", "api:cluster-segmentation"} <= names  # the walk sees the routes
    client = Client()
    client.force_login(tenant_admin)
    own = client.get(reverse("tenants:detail", args=[world["mine"].tenant_id])).content.decode()
    assert "payments" in own  # A sees its own: the walk is not vacuous
    before = (TenantNamespace.objects.count(), Tenant.objects.get(pk=globex.pk).max_namespaces, Event.objects.count())
    walked = 0
    for name, params in routes:
        if name.split(":")[-1] in SKIP:
            continue
        url = reverse(name, kwargs={p: value_for(name, p, world, globex, registered, sandbox_cluster) for p in params})
        for method in ("get", "post", "put", "patch", "delete"):
            with django_capture_on_commit_callbacks(execute=False):
                response = getattr(client, method)(url, content_type="application/json") if method != "get" else client.get(url)
            body = response.content.decode(errors="replace")
            leaked = [text for text in FORBIDDEN_TEXT if text in body]
            assert not leaked, f"{method.upper()} {url} ({name}) shows {leaked}"
            if method != "get":
                assert response.status_code in (302, 400, 403, 404, 405), f"{method.upper()} {url} ({name}) answered {response.status_code}"
            walked += 1
    assert walked > 200
    theirs = TenantNamespace.objects.filter(pk=world["theirs"].pk).first()
    assert theirs is not None and theirs.sync_state == "in_sync"
    assert Tenant.objects.get(pk=globex.pk).max_namespaces == before[1]
    assert sandbox_cluster.get("namespaces", "", "claims-secret")["status"]["phase"] == "Active"


def ws_paths(globex: Tenant, registered) -> list[str]:
    paths = []
    for entry in websocket_urlpatterns:
        route = str(entry.pattern)
        paths.append("/" + route.replace("<id:tenant_id>", str(globex.pk)).replace("<id:cluster_id>", str(registered.pk))
                     .replace("<id:rollout_id>", "1"))
    assert not any("<" in path for path in paths), f"a route parameter this test does not fill in: {paths}"
    return paths


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_websockets_refuse_tenant_b_and_the_fleet(world, tenant_admin, globex, registered):
    paths = await database_sync_to_async(ws_paths)(globex, registered)
    assert len(paths) == len(websocket_urlpatterns) >= 5
    for path in paths:
        communicator = await socket(path + "?after=0", tenant_admin)
        if path == "/ws/activity/":
            connected, _ = await communicator.connect()
            assert connected
            await database_sync_to_async(publish)(kind="tenant.notice", message="globex only", tenant=globex)
            while not await communicator.receive_nothing(timeout=0.3):
                message = await communicator.receive_from()
                assert not any(text in message for text in FORBIDDEN_TEXT + ("globex only",)), message
            await communicator.disconnect()
        else:
            assert not await admitted(communicator), f"{path} let tenant A's admin in"
