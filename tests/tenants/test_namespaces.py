"""Namespace placement rules and dedicated nodes, against the sandbox."""

from __future__ import annotations

import pytest
from django.core.exceptions import PermissionDenied, ValidationError

from clusters.kube import Credential
from clusters.services import cluster_register
from tenants.models import NodeAssignment, Tenant
from tenants.reconciler import namespace_reconcile
from tenants.services import (
    membership_add,
    node_assign,
    node_release,
    tenant_create,
    tenant_update,
)
from tests.support.waits import wait_for

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("name", "message"),
    [("Payments", "is not a valid namespace name"), ("kube-payments", "system namespace name"),
     ("default", "system namespace name"), ("x" * 64, "is not a valid namespace name")],
)
def test_bad_names(acme, registered, make_namespace, name, message):
    with pytest.raises(ValidationError, match=message):
        make_namespace(acme, registered, name)


def test_limit_and_clusters_are_enforced(acme, registered, make_namespace, operator, sandbox, django_capture_on_commit_callbacks):
    tenant_update(tenant=acme, updated_by=operator, max_namespaces=1)
    make_namespace(acme, registered, "one")
    with pytest.raises(ValidationError) as exc:
        make_namespace(acme, registered, "two")
    assert exc.value.message_dict["name"] == ["Tenant acme-bank has 1 of its 1 namespaces; delete one or ask an operator to raise the limit."]
    sandbox.add_cluster("not-allowed", nodes=1, pods_per_node=0)
    with django_capture_on_commit_callbacks(execute=False):
        elsewhere = cluster_register(name="not-allowed", created_by=operator, check=False,
                                     credential=Credential.from_dict(sandbox.credential("not-allowed")))
    tenant_update(tenant=acme, updated_by=operator, max_namespaces=5)
    with pytest.raises(ValidationError, match="No such cluster for tenant acme-bank") as refused:
        make_namespace(acme, elsewhere, "two")
    assert "not-allowed" not in str(refused.value)  # a tenant admin learns nothing of other clusters


def test_dedicated_cluster_is_nobody_elses(acme, registered, make_namespace, operator, sandbox, django_capture_on_commit_callbacks):
    make_namespace(acme, registered, "payments")
    with pytest.raises(ValidationError, match="already hosts namespaces of other tenants \\(acme-bank\\)"):
        tenant_create(name="vault", created_by=operator, clusters=[registered], isolation="dedicated-cluster")
    sandbox.add_cluster("vault-only", nodes=1, pods_per_node=0)
    with django_capture_on_commit_callbacks(execute=False):
        vault_cluster = cluster_register(name="vault-only", created_by=operator, check=False,
                                         credential=Credential.from_dict(sandbox.credential("vault-only")))
    tenant_create(name="vault", created_by=operator, clusters=[vault_cluster], isolation="dedicated-cluster")
    tenant_update(tenant=acme, updated_by=operator, clusters=[registered])
    with pytest.raises(ValidationError, match="Cluster vault-only is dedicated to tenant vault"):
        tenant_update(tenant=acme, updated_by=operator, clusters=[registered, vault_cluster])


def test_tenant_admin_creates_within_own_tenant_only(acme, globex, registered, make_namespace, tenant_admin, other_tenant_admin):
    assert make_namespace(acme, registered, "mine", user=tenant_admin).tenant == acme
    with pytest.raises(PermissionDenied):
        make_namespace(globex, registered, "theirs", user=tenant_admin)


def test_tenant_viewer_cannot_create(acme, registered, make_namespace, operator):
    from pksweb.choices import Role
    from tests.factories import UserFactory

    watcher = UserFactory(username="watcher", role=Role.TENANT_ADMIN)
    membership_add(tenant=acme, user=watcher, role="viewer", added_by=operator)
    with pytest.raises(PermissionDenied):
        make_namespace(acme, registered, "nope", user=watcher)


def test_platform_users_are_not_members(acme, viewer, operator):
    with pytest.raises(ValidationError, match="is a viewer and sees every tenant already"):
        membership_add(tenant=acme, user=viewer, role="admin", added_by=operator)


def test_dedicated_nodes_keep_workloads_apart(acme, globex, registered, sandbox_cluster, make_namespace, operator):
    node = f"{sandbox_cluster.name}-w-3"
    with pytest.raises(ValidationError, match="is not a dedicated-nodes tenant"):
        node_assign(cluster=registered, node=node, tenant=acme, assigned_by=operator)
    with pytest.raises(ValidationError, match="control-plane node"):
        node_assign(cluster=registered, node=f"{sandbox_cluster.name}-cp-1", tenant=globex, assigned_by=operator)
    node_assign(cluster=registered, node=node, tenant=globex, assigned_by=operator)
    labelled = sandbox_cluster.get("nodes", "", node)
    assert labelled["metadata"]["labels"]["pksweb.io/tenant"] == "globex-insurance"
    assert {"key": "pksweb.io/tenant", "value": "globex-insurance", "effect": "NoSchedule"} in labelled["spec"]["taints"]
    with pytest.raises(ValidationError, match="is assigned to tenant globex-insurance already"):
        node_assign(cluster=registered, node=node, tenant=globex, assigned_by=operator)

    for tenant, ns in ((globex, "claims"), (acme, "payments")):
        namespace_reconcile(namespace_id=make_namespace(tenant, registered, ns).pk)
        sandbox_cluster.create("deployments", {"metadata": {"name": "app"}, "spec": {
            "replicas": 4, "selector": {"matchLabels": {"app": "app"}},
            "template": {"metadata": {"labels": {"app": "app"}}, "spec": {"containers": [{"name": "c", "image": "app"}]}}}}, ns)
    wait_for(lambda: all(p["status"]["phase"] == "Running" for ns in ("claims", "payments") for p in sandbox_cluster.items("pods", ns))
             and len(sandbox_cluster.items("pods", "claims")) == 4, what="tenant pods running")
    assert {p["spec"]["nodeName"] for p in sandbox_cluster.items("pods", "claims")} == {node}
    assert node not in {p["spec"]["nodeName"] for p in sandbox_cluster.items("pods", "payments")}

    with pytest.raises(ValidationError, match="4 of tenant globex-insurance's pods still run on .*drain the node first"):
        node_release(cluster=registered, node=node, released_by=operator)
    sandbox_cluster.delete("deployments", "claims", "app")
    node_release(cluster=registered, node=node, released_by=operator)
    released = sandbox_cluster.get("nodes", "", node)
    assert "pksweb.io/tenant" not in released["metadata"]["labels"] and not released["spec"].get("taints")
    assert not NodeAssignment.objects.exists()


def test_only_operators_assign_nodes(globex, registered, sandbox_cluster, tenant_admin):
    with pytest.raises(PermissionDenied):
        node_assign(cluster=registered, node=f"{sandbox_cluster.name}-w-1", tenant=globex, assigned_by=tenant_admin)
    assert Tenant.objects.get(pk=globex.pk).node_assignments.count() == 0


def test_a_node_given_and_taken_back_shows_so_at_once(globex, registered, sandbox_cluster, operator, op_client):
    """The cluster page reads the stored nodes: right after an assign they carry the tenant's label and taint (no
    "label and taint missing" until the next sweep), and right after a release they no longer do."""
    from clusters.models import ClusterNode

    node = f"{sandbox_cluster.name}-w-2"
    node_assign(cluster=registered, node=node, tenant=globex, assigned_by=operator)
    stored = ClusterNode.objects.get(cluster=registered, name=node)
    assert stored.labels.get("pksweb.io/tenant") == "globex-insurance"
    assert any("pksweb.io/tenant" in taint for taint in stored.taints), stored.taints
    assert "label and taint missing" not in op_client.get(f"/clusters/{registered.pk}/").content.decode()
    node_release(cluster=registered, node=node, released_by=operator)
    stored.refresh_from_db()
    assert "pksweb.io/tenant" not in stored.labels and not any("pksweb.io/tenant" in taint for taint in stored.taints)


def test_a_cluster_with_another_tenants_dedicated_node_is_not_dedicated_to_a_tenant(globex, registered, sandbox_cluster, operator):
    """A dedicated cluster is nobody else's: nor another tenant's dedicated node."""
    node_assign(cluster=registered, node=f"{sandbox_cluster.name}-w-1", tenant=globex, assigned_by=operator)
    with pytest.raises(ValidationError, match="has nodes dedicated to other tenants \\(globex-insurance\\)"):
        tenant_create(name="vault", created_by=operator, clusters=[registered], isolation="dedicated-cluster")
