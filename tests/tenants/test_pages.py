"""Tenant pages: forms, the namespace page read live, scorecard, segmentation, live rows."""

from __future__ import annotations

import pytest
from channels.db import database_sync_to_async
from django.urls import reverse

from tenants.models import Tenant, TenantNamespace
from tenants.reconciler import namespace_reconcile
from tests.support.sockets import socket


@pytest.mark.django_db
def test_operator_creates_and_edits_a_tenant(op_client, registered, django_capture_on_commit_callbacks):
    bad = op_client.post(reverse("tenants:create"), {"name": "initech", "isolation": "shared", "max_namespaces": 3,
                                                     "pod_security": "baseline", "quota_cpu": "lots", "quota_memory": "1Gi",
                                                     "quota_pods": "10", "quota_storage": "1Gi", "quota_load_balancers": 0,
                                                     "limit_cpu": "1", "limit_memory": "1Gi", "request_cpu": "1", "request_memory": "1Gi"})
    assert bad.status_code == 400 and "is not a Kubernetes quantity" in bad.content.decode()
    good = op_client.post(reverse("tenants:create"), {"name": "initech", "isolation": "shared", "max_namespaces": 3,
                                                      "pod_security": "restricted", "quota_cpu": "4", "quota_memory": "1Gi",
                                                      "quota_pods": "10", "quota_storage": "1Gi", "quota_load_balancers": 0,
                                                      "limit_cpu": "1", "limit_memory": "1Gi", "request_cpu": "1",
                                                      "request_memory": "1Gi", "clusters": [registered.pk],
                                                      "allow_dns": "on", "egress_cidrs": "10.0.0.0/8, 192.168.0.0/16"})
    assert good.status_code == 302, good.content.decode()[:2000]
    tenant = Tenant.objects.get(name="initech")
    assert tenant.egress_cidrs == ["10.0.0.0/8", "192.168.0.0/16"] and not tenant.allow_same_tenant
    page = op_client.get(reverse("tenants:detail", args=[tenant.pk])).content.decode()
    assert "out to 10.0.0.0/8, 192.168.0.0/16" in page


@pytest.mark.django_db
def test_tenant_admin_page_and_namespace_form(client, tenant_admin, acme, registered, sandbox_cluster, django_capture_on_commit_callbacks):
    client.force_login(tenant_admin)
    page = client.get(reverse("tenants:detail", args=[acme.pk])).content.decode()
    assert 'id="namespace-form"' in page and "Edit profile" not in page and 'id="scorecard"' not in page
    with django_capture_on_commit_callbacks(execute=False):
        response = client.post(reverse("tenants:namespace-create", args=[acme.pk]), {"cluster": registered.pk, "name": "kube-x"},
                               HTTP_HX_REQUEST="true")
    assert response.status_code == 400 and "system namespace name" in response.content.decode()
    with django_capture_on_commit_callbacks(execute=False):
        response = client.post(reverse("tenants:namespace-create", args=[acme.pk]), {"cluster": registered.pk, "name": "cards"},
                               HTTP_HX_REQUEST="true")
    assert response.status_code == 200 and 'data-state="pending"' in response.content.decode()


@pytest.mark.django_db
def test_namespace_page_reads_the_cluster(client, tenant_admin, acme, registered, sandbox_cluster, make_namespace):
    namespace = make_namespace(acme, registered, "cards")
    namespace_reconcile(namespace_id=namespace.pk)
    sandbox_cluster.create("deployments", {"metadata": {"name": "api"}, "spec": {
        "replicas": 2, "selector": {"matchLabels": {"app": "api"}},
        "template": {"metadata": {"labels": {"app": "api"}}, "spec": {"containers": [{"name": "c", "image": "api"}]}}}}, "cards")
    client.force_login(tenant_admin)
    page = client.get(reverse("tenants:namespace", args=[namespace.pk])).content.decode()
    assert "Delete namespace" in page and "Re-apply" in page
    live = client.get(reverse("tenants:namespace-live", args=[namespace.pk])).content.decode()
    assert "Deployment <b>api</b>" in live and "requests.cpu" in live and 'class="bar"' in live
    assert '<span class="quota-name">pods</span><span class="bar"><span style="width: 2%"></span></span><span class="small">2 / 100</span>' in live
    assert "all pods accept connections from nothing" in live
    assert "all pods may connect to namespace kube-system pods k8s-app=kube-dns on UDP/53, TCP/53" in live
    wrong = client.post(reverse("tenants:namespace-delete", args=[namespace.pk]), {"confirm": "card"})
    assert wrong.status_code == 400 and "Type the namespace&#x27;s name (cards)" in wrong.content.decode()
    assert client.post(reverse("tenants:namespace-delete", args=[namespace.pk]), {"confirm": "cards"}).status_code == 302
    assert not TenantNamespace.objects.exists()


@pytest.mark.django_db
def test_scorecard_and_segmentation_pages(op_client, client, tenant_admin, acme, registered, make_namespace):
    namespace_reconcile(namespace_id=make_namespace(acme, registered, "cards").pk)
    card = op_client.get(reverse("tenants:scorecard", args=[acme.pk])).content.decode()
    assert "default-deny NetworkPolicy present" in card and 'data-ok="false"' not in card
    matrix = op_client.get(reverse("tenants:segmentation", args=[registered.pk])).content.decode()
    assert 'data-from="cards" data-to="cards" data-allowed="true"' in matrix
    assert 'data-from="demo" data-to="cards" data-allowed="false"' in matrix
    client.force_login(tenant_admin)
    assert client.get(reverse("tenants:scorecard", args=[acme.pk])).status_code == 403
    assert client.get(reverse("tenants:segmentation", args=[registered.pk])).status_code == 404


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_namespace_row_goes_live_from_pending_to_in_sync(tenant_admin, acme, registered, make_namespace):
    communicator = await socket(f"/ws/tenants/{acme.pk}/?after={await database_sync_to_async(_latest)()}", tenant_admin)
    assert (await communicator.connect())[0]
    namespace = await database_sync_to_async(make_namespace)(acme, registered, "cards", tenant_admin)
    messages = [await communicator.receive_from(timeout=5) for _ in range(3)]
    assert messages[0] == f'<tr id="namespace-{namespace.pk}" hx-swap-oob="delete"></tr>'
    assert messages[1].startswith(f'<tbody hx-swap-oob="afterbegin:#namespace-rows"><tr id="namespace-{namespace.pk}" data-state="pending"')
    assert "tenant.namespace_created" in messages[2] and 'id="event-cursor"' in messages[2]
    await database_sync_to_async(namespace_reconcile)(namespace_id=namespace.pk)
    synced = await communicator.receive_from(timeout=5)
    assert synced.startswith(f'<tr id="namespace-{namespace.pk}" data-state="in_sync" hx-swap-oob="true">')
    assert "tenant.namespace_in_sync" in await communicator.receive_from(timeout=5)
    await communicator.disconnect()


def _latest() -> int:
    from pksweb.models import Event

    return Event.objects.order_by("-id").values_list("id", flat=True).first() or 0
