"""Tenant bundles against the multi-tenancy benchmark's level-1 checks (MTB PL1).

pksweb applies a tenant's bundle to a sandbox cluster, then a member of the tenant's
RBAC group (``pksweb:tenant:<name>``) talks to the cluster with the official client,
as a tenant with a kubeconfig would. The sandbox authorizes with RBAC from the objects
in the cluster and enforces Pod Security from the namespace's labels, as a real API
server does.
"""

from __future__ import annotations

import json

import pytest
from kubernetes import client as k8s
from kubernetes import config
from kubernetes.client.exceptions import ApiException

from tenants.reconciler import namespace_reconcile

pytestmark = pytest.mark.django_db


@pytest.fixture
def tenant_kube(acme, globex, registered, sandbox, sandbox_cluster, make_namespace):
    for tenant, name in ((acme, "payments"), (globex, "claims")):
        done = namespace_reconcile(namespace_id=make_namespace(tenant, registered, name).pk)
        assert done.sync_state == "in_sync", done.error
    kubeconfig = sandbox.kubeconfig(sandbox_cluster.name)
    kubeconfig["users"][0]["user"]["token"] = sandbox_cluster.add_user("alice@acme", [acme.group])
    api_client = config.new_client_from_config_dict(kubeconfig)
    yield api_client
    api_client.close()


def refused(call, *args, **kwargs) -> str:
    with pytest.raises(ApiException) as failed:
        call(*args, **kwargs)
    assert failed.value.status == 403, failed.value.body
    return json.loads(failed.value.body)["message"]


def pod(name: str, **security) -> dict:
    container = {"name": "app", "image": "registry.invalid/app:1"}
    if security:
        container["securityContext"] = security
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": {"containers": [container]}}


def test_tenants_cannot_reach_cluster_scoped_resources(tenant_kube):
    core, rbac = k8s.CoreV1Api(tenant_kube), k8s.RbacAuthorizationV1Api(tenant_kube)
    assert 'cannot list resource "nodes"' in refused(core.list_node)
    refused(core.list_namespace)
    refused(core.list_pod_for_all_namespaces)
    refused(rbac.list_cluster_role)
    refused(rbac.list_cluster_role_binding)
    refused(core.patch_node, "x", {"spec": {"unschedulable": True}})


def test_tenants_cannot_see_other_tenants_namespaces(tenant_kube, sandbox_cluster):
    core = k8s.CoreV1Api(tenant_kube)
    assert core.read_namespace("payments").metadata.name == "payments"  # their own, read-only
    refused(core.read_namespace, "claims")
    refused(core.list_namespaced_pod, "claims")
    refused(core.list_namespaced_config_map, "claims")
    refused(core.create_namespaced_config_map, "claims", {"metadata": {"name": "x"}})
    refused(core.list_namespaced_pod, "kube-system")
    assert core.list_namespaced_pod("payments").items == []


def test_tenants_cannot_change_their_quotas_policies_or_pod_security(tenant_kube, sandbox_cluster):
    core, net, rbac = k8s.CoreV1Api(tenant_kube), k8s.NetworkingV1Api(tenant_kube), k8s.RbacAuthorizationV1Api(tenant_kube)
    quota = core.read_namespaced_resource_quota("pksweb-quota", "payments")
    assert quota.spec.hard["pods"]  # readable, so they know their limits
    refused(core.patch_namespaced_resource_quota, "pksweb-quota", "payments", {"spec": {"hard": {"pods": "10000"}}})
    refused(core.delete_namespaced_resource_quota, "pksweb-quota", "payments")
    refused(core.create_namespaced_resource_quota, "payments", {"metadata": {"name": "mine"}, "spec": {"hard": {"pods": "1"}}})
    refused(core.patch_namespaced_limit_range, "pksweb-limits", "payments", {"spec": {"limits": []}})
    assert net.read_namespaced_network_policy("pksweb-default-deny", "payments").spec.policy_types == ["Ingress", "Egress"]
    refused(net.delete_namespaced_network_policy, "pksweb-default-deny", "payments")
    refused(net.patch_namespaced_network_policy, "pksweb-default-deny", "payments", {"spec": {"policyTypes": []}})
    refused(net.create_namespaced_network_policy, "payments", {"metadata": {"name": "allow-all"},
                                                               "spec": {"podSelector": {}, "ingress": [{}]}})
    refused(core.patch_namespace, "payments", {"metadata": {"labels": {"pod-security.kubernetes.io/enforce": "privileged"}}})
    refused(rbac.create_namespaced_role_binding, "payments", {
        "metadata": {"name": "escalate"}, "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
        "subjects": [{"kind": "User", "name": "alice@acme", "apiGroup": "rbac.authorization.k8s.io"}]})
    ns = sandbox_cluster.get("namespaces", "", "payments")
    assert ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "baseline"
    assert sandbox_cluster.get("resourcequotas", "payments", "pksweb-quota")["spec"]["hard"]["pods"] == quota.spec.hard["pods"]


def test_privileged_pods_are_refused_by_the_namespace_pod_security_level(tenant_kube, sandbox_cluster):
    core = k8s.CoreV1Api(tenant_kube)
    body = refused(core.create_namespaced_pod, "payments", pod("root", privileged=True))
    assert 'violates PodSecurity "baseline:latest": privileged (container "app" must not set securityContext.privileged=true)' in body
    assert "SYS_ADMIN" in refused(core.create_namespaced_pod, "payments", pod("caps", capabilities={"add": ["SYS_ADMIN"]}))
    host = pod("host")
    host["spec"]["hostNetwork"] = True
    assert "hostNetwork=true" in refused(core.create_namespaced_pod, "payments", host)
    # What the tenant's own workloads need still works.
    assert core.create_namespaced_pod("payments", pod("web")).metadata.name == "web"
    assert sandbox_cluster.get("pods", "payments", "root") is None


def test_a_tenant_admin_can_run_workloads_in_their_namespace(tenant_kube):
    apps, core = k8s.AppsV1Api(tenant_kube), k8s.CoreV1Api(tenant_kube)
    core.create_namespaced_config_map("payments", {"metadata": {"name": "settings"}, "data": {"a": "b"}})
    apps.create_namespaced_deployment("payments", {"metadata": {"name": "api"}, "spec": {
        "replicas": 1, "selector": {"matchLabels": {"app": "api"}},
        "template": {"metadata": {"labels": {"app": "api"}}, "spec": {"containers": [{"name": "api", "image": "api:1"}]}}}})
    assert [d.metadata.name for d in apps.list_namespaced_deployment("payments").items] == ["api"]
