"""The tenancy API: tenants with profiles, members, namespaces, scorecard, segmentation, node assignment."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from pksweb import services as core_services
from tenants.models import Tenant, TenantNamespace
from tenants.reconciler import namespace_reconcile

pytestmark = pytest.mark.django_db


def api_for(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {core_services.api_token_get_or_create(user=user)}")
    return client


def test_create_tenant_with_profiles(operator_api, registered):
    response = operator_api.post("/api/tenants/", {
        "name": "initech", "isolation": "dedicated-nodes", "clusters": [registered.pk], "max_namespaces": 3,
        "quota": {"cpu": "4", "memory": "8Gi", "pods": "50"},
        "segmentation": {"allow_dns": True, "ingress_from_namespaces": ["ingress-nginx"], "egress_cidrs": ["10.20.0.0/16"]},
    }, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["quota"]["cpu"] == "4" and body["quota"]["storage"] == "100Gi" and body["clusters"] == [registered.pk]
    assert body["segmentation"]["egress_cidrs"] == ["10.20.0.0/16"] and body["isolation"] == "dedicated-nodes"


@pytest.mark.parametrize(
    ("payload", "field", "text"),
    [
        ({"name": "Bad Name"}, "name", "DNS-1123"),
        ({"name": "ok", "quota": {"cpu": "lots"}}, "quota", "is not a Kubernetes quantity"),
        ({"name": "ok", "segmentation": {"egress_cidrs": ["10.0.0.1/8"]}}, "segmentation", "is not a CIDR"),
        ({"name": "ok", "isolation": "paranoid"}, "isolation", "is not a valid choice"),
        ({"name": "ok", "max_namespaces": 0}, "max_namespaces", "greater than or equal to 1"),
    ],
)
def test_bad_tenant_input_is_refused_in_words(operator_api, payload, field, text):
    response = operator_api.post("/api/tenants/", payload, format="json")
    assert response.status_code == 400, response.content
    assert text in str(response.json()[field])
    assert not Tenant.objects.filter(name__in=["ok", "Bad Name"]).exists()


def test_members(operator_api, acme, tenant_admin, viewer):
    from pksweb.choices import Role
    from tests.factories import UserFactory

    UserFactory(username="newbie", role=Role.TENANT_ADMIN)
    added = operator_api.post(f"/api/tenants/{acme.pk}/members/", {"username": "newbie", "role": "viewer"}, format="json")
    assert added.status_code == 201 and added.json() == {"username": "newbie", "role": "viewer"}
    assert {"username": "newbie", "role": "viewer"} in operator_api.get(f"/api/tenants/{acme.pk}/members/").json()
    refused = operator_api.post(f"/api/tenants/{acme.pk}/members/", {"username": "view"}, format="json")
    assert refused.status_code == 400 and "sees every tenant already" in str(refused.json()) and " a approver" not in str(refused.json())
    assert api_for(tenant_admin).post(f"/api/tenants/{acme.pk}/members/", {"username": "newbie"}, format="json").status_code == 403
    assert operator_api.delete(f"/api/tenants/{acme.pk}/members/newbie/").status_code == 204


def test_namespace_lifecycle(acme, registered, sandbox_cluster, tenant_admin, django_capture_on_commit_callbacks):
    client = api_for(tenant_admin)
    with django_capture_on_commit_callbacks(execute=False) as queued:
        created = client.post("/api/namespaces/", {"tenant": "acme-bank", "cluster": registered.pk, "name": "loans"}, format="json")
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["sync_state"] == "pending" and body["tenant"] == "acme-bank" and len(queued) == 2
    namespace_reconcile(namespace_id=body["id"])
    assert client.get(f"/api/namespaces/{body['id']}/").json()["sync_state"] == "in_sync"
    with django_capture_on_commit_callbacks(execute=False) as again:
        assert client.post(f"/api/namespaces/{body['id']}/reconcile/").status_code == 202
    assert len(again) == 1
    no_confirm = client.delete(f"/api/namespaces/{body['id']}/")
    assert no_confirm.status_code == 400 and "Type the namespace's name (loans)" in str(no_confirm.json())
    assert client.delete(f"/api/namespaces/{body['id']}/?confirm=loans").status_code == 204
    assert not TenantNamespace.objects.exists()


def test_scorecard_and_segmentation(operator_api, viewer_api, acme, globex, registered, sandbox_cluster, make_namespace, operator):
    from tenants.services import node_assign

    namespace_reconcile(namespace_id=make_namespace(acme, registered, "payments").pk)
    namespace_reconcile(namespace_id=make_namespace(acme, registered, "ledger").pk)
    namespace_reconcile(namespace_id=make_namespace(globex, registered, "claims").pk)
    node_assign(cluster=registered, node=f"{sandbox_cluster.name}-w-3", tenant=globex, assigned_by=operator)
    checks = viewer_api.get(f"/api/tenants/{acme.pk}/scorecard/").json()
    assert checks and all(c["ok"] for c in checks), checks
    sandbox_cluster.delete("networkpolicies", "payments", "pksweb-default-deny")
    failing = [c for c in operator_api.get(f"/api/tenants/{acme.pk}/scorecard/").json() if not c["ok"]]
    assert [(c["subject"], c["check"]) for c in failing] == [("payments", "default-deny NetworkPolicy present")]
    # Bound to Kubernetes' own "admin" role instead, the tenant could rewrite its network policies.
    binding = sandbox_cluster.get("rolebindings", "ledger", "pksweb-tenant-admins")
    sandbox_cluster.delete("rolebindings", "ledger", "pksweb-tenant-admins")
    assert sandbox_cluster.get("clusterroles", "", "admin")["aggregationRule"]  # the bootstrap role, as on a real cluster
    sandbox_cluster.create("rolebindings", {**binding, "metadata": {"name": "pksweb-tenant-admins", "namespace": "ledger"},
                                            "roleRef": {**binding["roleRef"], "name": "admin"}})
    failing = [c for c in operator_api.get(f"/api/tenants/{acme.pk}/scorecard/").json() if not c["ok"]]
    escalation = [c["detail"] for c in failing
                  if (c["subject"], c["check"]) == ("ledger", "tenant admins cannot change quotas, policies or Pod Security")]
    assert escalation and escalation[0].startswith("networkpolicies (create, delete, deletecollection, patch, update)"), failing
    globex_checks = operator_api.get(f"/api/tenants/{globex.pk}/scorecard/").json()
    assert any(c["check"] == "dedicated node labelled and tainted" and c["ok"] for c in globex_checks)

    matrix = operator_api.get(f"/api/clusters/{registered.pk}/segmentation/").json()
    cells = {(c["source"], c["target"]): c for c in matrix["cells"]}
    assert cells[("ledger", "claims")]["allowed"] is False  # different tenants
    assert cells[("claims", "ledger")]["allowed"] is False
    assert cells[("demo", "ledger")]["allowed"] is False  # demo cannot get into a tenant namespace
    assert cells[("ledger", "demo")]["allowed"] is False  # nor can the tenant reach out of its own
    assert cells[("ledger", "payments")]["allowed"] is True  # same tenant allowed
    assert cells[("payments", "ledger")]["drift"] is False
    assert cells[("demo", "payments")]["allowed"] is False  # the allow policies still isolate payments
    for policy in sandbox_cluster.items("networkpolicies", "payments"):
        sandbox_cluster.delete("networkpolicies", "payments", policy["metadata"]["name"])
    cells = {(c["source"], c["target"]): c for c in operator_api.get(f"/api/clusters/{registered.pk}/segmentation/").json()["cells"]}
    # Without any policy, payments is open: demo can reach it, which pksweb did not intend.
    assert cells[("demo", "payments")]["allowed"] is True and cells[("demo", "payments")]["drift"] is True
    assert cells[("demo", "ledger")]["drift"] is False


def test_node_assignment_api(operator_api, viewer_api, globex, registered, sandbox_cluster):
    node = f"{sandbox_cluster.name}-w-2"
    assert viewer_api.post(f"/api/clusters/{registered.pk}/nodes/{node}/assign/", {"tenant": "globex-insurance"}).status_code == 403
    response = operator_api.post(f"/api/clusters/{registered.pk}/nodes/{node}/assign/", {"tenant": "globex-insurance"}, format="json")
    assert response.status_code == 200, response.content
    assert sandbox_cluster.get("nodes", "", node)["metadata"]["labels"]["pksweb.io/tenant"] == "globex-insurance"
    bad = operator_api.post(f"/api/clusters/{registered.pk}/nodes/nope/assign/", {"tenant": "globex-insurance"}, format="json")
    assert bad.status_code == 400 and "has no node 'nope'" in str(bad.json())
    assert operator_api.post(f"/api/clusters/{registered.pk}/nodes/{node}/release/").status_code == 200


def test_tenant_deletion_is_refused_while_it_has_namespaces(operator_api, acme, registered, make_namespace):
    from pksweb.models import Event

    make_namespace(acme, registered, "keep")
    refused = operator_api.delete(f"/api/tenants/{acme.pk}/")
    assert refused.status_code == 400 and "still has namespaces" in str(refused.json())
    TenantNamespace.objects.all().delete()
    assert operator_api.delete(f"/api/tenants/{acme.pk}/").status_code == 204
    assert Event.objects.filter(kind="tenant.deleted", subject_label="acme-bank").exists()


def test_a_second_namespace_of_the_same_name_is_refused_on_its_name(acme, registered, tenant_admin, django_capture_on_commit_callbacks):
    """Not Django's "Tenant namespace with this Cluster and Name already exists." under ``__all__``: the field, in words."""
    client = api_for(tenant_admin)
    with django_capture_on_commit_callbacks(execute=False):
        assert client.post("/api/namespaces/", {"tenant": "acme-bank", "cluster": registered.pk, "name": "loans"},
                           format="json").status_code == 201
        again = client.post("/api/namespaces/", {"tenant": "acme-bank", "cluster": registered.pk, "name": "loans"}, format="json")
    assert again.status_code == 400 and set(again.json()) == {"name"}, again.json()
    assert "already exists on cluster" in again.json()["name"][0]
