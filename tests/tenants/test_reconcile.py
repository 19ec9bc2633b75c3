"""The reconciler against a sandbox cluster over HTTP: bundle applied, idempotent, drift found and fixed."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from tenants import bundle
from tenants.models import TenantNamespace
from tenants.reconciler import drift_scan, namespace_check, namespace_reconcile
from tenants.services import namespace_delete, tenant_update

pytestmark = pytest.mark.django_db

KIND_PLURALS = {"Namespace": "namespaces", "ResourceQuota": "resourcequotas", "LimitRange": "limitranges",
                "NetworkPolicy": "networkpolicies", "RoleBinding": "rolebindings", "ClusterRole": "clusterroles"}


def actual(sandbox_cluster, obj):
    return sandbox_cluster.get(KIND_PLURALS[obj["kind"]], obj["metadata"].get("namespace", ""), obj["metadata"]["name"])


def test_reconciled_objects_equal_the_desired_bundle(acme, registered, sandbox_cluster, make_namespace):
    namespace = make_namespace(acme, registered, "payments")
    assert namespace.sync_state == "pending"
    done = namespace_reconcile(namespace_id=namespace.pk)
    assert done.sync_state == "in_sync" and done.error == "" and done.drift == []
    desired = bundle.desired_bundle(acme, "payments")
    assert [o["kind"] for o in desired] == ["Namespace", "ResourceQuota", "LimitRange", "NetworkPolicy", "NetworkPolicy",
                                            "NetworkPolicy", "NetworkPolicy", "NetworkPolicy", "ClusterRole", "RoleBinding"]
    for obj in desired:
        assert bundle.differences(obj, actual(sandbox_cluster, obj)) == [], obj["metadata"]["name"]
    ns = sandbox_cluster.get("namespaces", "", "payments")
    assert ns["metadata"]["labels"]["pksweb.io/tenant"] == "acme-bank"
    assert ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "baseline"
    deny = sandbox_cluster.get("networkpolicies", "payments", "pksweb-default-deny")
    assert deny["spec"] == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
    binding = sandbox_cluster.get("rolebindings", "payments", "pksweb-tenant-admins")
    assert binding["roleRef"]["name"] == "pksweb-tenant-admin" and binding["subjects"][0]["name"] == "pksweb:tenant:acme-bank"


def test_second_reconcile_changes_nothing(acme, registered, sandbox_cluster, make_namespace):
    namespace = make_namespace(acme, registered, "payments")
    namespace_reconcile(namespace_id=namespace.pk)
    rv = sandbox_cluster.rv
    again = namespace_reconcile(namespace_id=namespace.pk)
    assert again.sync_state == "in_sync" and sandbox_cluster.rv == rv


def test_drift_behind_our_back_is_found_and_fixed(acme, registered, sandbox_cluster, make_namespace):
    namespace = make_namespace(acme, registered, "payments")
    namespace_reconcile(namespace_id=namespace.pk)
    sandbox_cluster.patch("resourcequotas", "payments", "pksweb-quota",
                          lambda q: {**q, "spec": {"hard": {**q["spec"]["hard"], "pods": "500"}}})
    sandbox_cluster.delete("networkpolicies", "payments", "pksweb-default-deny")
    checked = namespace_check(namespace_id=namespace.pk)
    assert checked.sync_state == "drifted"
    assert "ResourceQuota pksweb-quota: spec.hard.pods is '500', want '100'" in checked.drift
    assert "NetworkPolicy pksweb-default-deny is missing" in checked.drift
    fixed = namespace_reconcile(namespace_id=namespace.pk)
    assert fixed.sync_state == "in_sync"
    assert sandbox_cluster.get("resourcequotas", "payments", "pksweb-quota")["spec"]["hard"]["pods"] == "100"
    assert namespace_check(namespace_id=namespace.pk).sync_state == "in_sync"
    assert drift_scan() == {"in_sync": 1}


def test_objects_pksweb_did_not_create_are_never_touched(acme, registered, sandbox_cluster, make_namespace):
    sandbox_cluster.create("namespaces", {"metadata": {"name": "handmade"}})
    with pytest.raises(ValidationError, match="already exists on cluster"):
        make_namespace(acme, registered, "handmade")
    namespace = make_namespace(acme, registered, "ledger")
    sandbox_cluster.create("namespaces", {"metadata": {"name": "ledger"}})  # someone races us to it
    failed = namespace_reconcile(namespace_id=namespace.pk)
    assert failed.sync_state == "failed" and "was not created by pksweb; pksweb does not modify it" in failed.error
    assert "pksweb.io/tenant" not in (sandbox_cluster.get("namespaces", "", "ledger")["metadata"].get("labels") or {})


def test_profile_edit_re_reconciles(acme, registered, sandbox_cluster, make_namespace, operator, django_capture_on_commit_callbacks):
    namespace = make_namespace(acme, registered, "payments")
    namespace_reconcile(namespace_id=namespace.pk)
    with django_capture_on_commit_callbacks(execute=False) as queued:
        tenant_update(tenant=acme, updated_by=operator, quota_pods="42", allow_same_tenant=False)
    assert TenantNamespace.objects.get(pk=namespace.pk).sync_state == "pending" and len(queued) >= 1
    done = namespace_reconcile(namespace_id=namespace.pk)
    assert done.sync_state == "in_sync"
    assert sandbox_cluster.get("resourcequotas", "payments", "pksweb-quota")["spec"]["hard"]["pods"] == "42"
    assert sandbox_cluster.get("networkpolicies", "payments", "pksweb-allow-same-tenant") is None  # pruned


def test_unreachable_cluster_fails_in_words(acme, registered, sandbox_cluster, make_namespace):
    namespace = make_namespace(acme, registered, "payments")
    sandbox_cluster.faults.update({"unreachable": True})
    failed = namespace_reconcile(namespace_id=namespace.pk)
    assert failed.sync_state == "failed" and "dropped the connection" in failed.error


def test_delete_requires_typing_the_name(acme, registered, sandbox_cluster, make_namespace, operator):
    namespace = make_namespace(acme, registered, "payments")
    namespace_reconcile(namespace_id=namespace.pk)
    with pytest.raises(ValidationError, match=r"Type the namespace's name \(payments\)"):
        namespace_delete(namespace=namespace, confirm="payment", deleted_by=operator)
    namespace_delete(namespace=namespace, confirm="payments", deleted_by=operator)
    assert not TenantNamespace.objects.exists()
    assert sandbox_cluster.get("namespaces", "", "payments")["status"]["phase"] == "Terminating"
