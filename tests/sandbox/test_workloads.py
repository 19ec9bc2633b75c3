"""Conformance of the sandbox's workloads: PodDisruptionBudgets and the Eviction API, the scheduler's
placement and its reasons, DaemonSets, and a tenant namespace's node selector and tolerations."""

from __future__ import annotations

import json

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tests.support.kube_api import core, status_of
from tests.support.waits import wait_for

# ---- evictions and PodDisruptionBudgets ---------------------------------------------------------


def pods_of(v1, app):
    return [p for p in v1.list_namespaced_pod("demo", label_selector=f"app={app}").items if not p.metadata.deletion_timestamp]


def evict(v1, pod):
    return v1.create_namespaced_pod_eviction(pod.metadata.name, pod.metadata.namespace, client.V1Eviction(
        metadata=client.V1ObjectMeta(name=pod.metadata.name, namespace=pod.metadata.namespace)))


def budget(kube, name):
    return client.PolicyV1Api(kube).read_namespaced_pod_disruption_budget(name, "demo").status


def test_pdb_status_is_kept_up_to_date(kube):
    status = budget(kube, "web")
    pods = pods_of(core(kube), "web")
    assert status.expected_pods == len(pods) == status.current_healthy
    assert status.desired_healthy == len(pods) - 1 and status.disruptions_allowed == 1


def test_eviction_with_room_replaces_the_pod_elsewhere(kube, sandbox_cluster):
    v1 = core(kube)
    victim = pods_of(v1, "web")[0]
    v1.patch_node(victim.spec.node_name, {"spec": {"unschedulable": True}})
    evict(v1, victim)
    names = {p.metadata.name for p in pods_of(v1, "web")}
    assert victim.metadata.name not in names
    assert budget(kube, "web").disruptions_allowed == 0
    wait_for(lambda: [p for p in pods_of(v1, "web") if p.metadata.name not in {victim.metadata.name}
                                    and p.status.phase == "Running" and len(pods_of(v1, "web")) == 3
                                    and all(c.status == "True" for c in p.status.conditions if c.type == "Ready")], what="replacement")
    new = [p for p in pods_of(v1, "web") if p.metadata.name not in names]
    assert all(p.spec.node_name != victim.spec.node_name for p in new)
    assert all(p.metadata.owner_references[0].kind == "ReplicaSet" for p in pods_of(v1, "web"))
    wait_for(lambda: budget(kube, "web").disruptions_allowed == 1, what="budget to recover")


def test_eviction_forbidden_by_pdb_gets_429_naming_the_budget(kube):
    v1 = core(kube)
    first, second = pods_of(v1, "web")[:2]
    evict(v1, first)
    with pytest.raises(ApiException) as exc:
        evict(v1, second)
    body = status_of(exc.value)
    assert exc.value.status == 429 and body["reason"] == "TooManyRequests"
    assert body["message"] == "Cannot evict pod as it would violate the pod's disruption budget."
    assert body["details"]["causes"][0] == {"reason": "DisruptionBudget",
                                            "message": "The disruption budget web needs 2 healthy pods and has 2 currently"}
    assert second.metadata.name in {p.metadata.name for p in pods_of(v1, "web")}


def test_pending_pod_is_evictable_despite_pdb(kube, sandbox_cluster):
    v1 = core(kube)
    v1.create_namespaced_pod("demo", client.V1Pod(
        metadata=client.V1ObjectMeta(name="stuck", labels={"app": "web"}),
        spec=client.V1PodSpec(node_selector={"no": "such-node"}, containers=[client.V1Container(name="c", image="nginx")])))
    sandbox_cluster.faults.update({"frozen_pdbs": ["demo/web"]})
    sandbox_cluster.refresh_budgets()
    assert v1.read_namespaced_pod("stuck", "demo").status.phase == "Pending"
    evict(v1, v1.read_namespaced_pod("stuck", "demo"))
    with pytest.raises(ApiException) as exc:
        v1.read_namespaced_pod("stuck", "demo")
    assert exc.value.status == 404


def test_frozen_pdb_never_allows_disruption(kube, sandbox, sandbox_cluster, sandbox_http):
    response = sandbox_http.put(f"{sandbox.server_url(sandbox_cluster.name)}/sandbox/faults", json={"frozen_pdbs": ["*"]},
                         headers={"Authorization": f"Bearer {sandbox_cluster.token}"})
    assert response.status_code == 200 and response.json()["frozen_pdbs"] == ["*"]
    assert budget(kube, "web").disruptions_allowed == 0
    with pytest.raises(ApiException) as exc:
        evict(core(kube), pods_of(core(kube), "web")[0])
    assert exc.value.status == 429


def test_unschedulable_pod_reports_why(kube, sandbox_cluster):
    v1 = core(kube)
    for node in v1.list_node().items:
        v1.patch_node(node.metadata.name, {"spec": {"unschedulable": True}})
    evict(v1, pods_of(v1, "api")[0])
    pending = wait_for(lambda: [p for p in pods_of(v1, "api") if p.status.phase == "Pending"], what="pending pod")
    condition = next(c for c in pending[0].status.conditions if c.type == "PodScheduled")
    assert condition.status == "False" and condition.reason == "Unschedulable"
    assert condition.message.startswith("0/4 nodes are available:")
    warnings = v1.list_namespaced_event("demo", field_selector="type=Warning").items
    assert any(e.reason == "FailedScheduling" for e in warnings)
    v1.patch_node(f"{sandbox_cluster.name}-w-3", {"spec": {"unschedulable": None}})
    wait_for(lambda: all(p.status.phase == "Running" for p in pods_of(v1, "api")), what="pod scheduled after uncordon")
    assert all(p.spec.node_name == f"{sandbox_cluster.name}-w-3" for p in pods_of(v1, "api") if p.metadata.name == pending[0].metadata.name)


def test_daemonset_pods_stay_on_a_cordoned_node(kube, sandbox_cluster):
    v1 = core(kube)
    node = f"{sandbox_cluster.name}-w-1"
    v1.patch_node(node, {"spec": {"unschedulable": True}})
    proxy = [p for p in v1.list_namespaced_pod("kube-system", label_selector="k8s-app=kube-proxy").items if p.spec.node_name == node]
    assert len(proxy) == 1 and proxy[0].metadata.owner_references[0].kind == "DaemonSet"
    ds = client.AppsV1Api(kube).read_namespaced_daemon_set("kube-proxy", "kube-system")
    assert ds.status.desired_number_scheduled == 4 and ds.status.number_ready == 4


def test_tenant_namespace_annotations_pin_pods(kube, sandbox_cluster):
    v1 = core(kube)
    node = f"{sandbox_cluster.name}-w-3"
    v1.patch_node(node, {"metadata": {"labels": {"pksweb.io/tenant": "acme"}},
                         "spec": {"taints": [{"key": "pksweb.io/tenant", "value": "acme", "effect": "NoSchedule"}]}})
    v1.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name="acme-payments", annotations={
        "scheduler.alpha.kubernetes.io/node-selector": "pksweb.io/tenant=acme",
        "scheduler.alpha.kubernetes.io/defaultTolerations": json.dumps(
            [{"key": "pksweb.io/tenant", "operator": "Equal", "value": "acme", "effect": "NoSchedule"}])})))
    client.AppsV1Api(kube).create_namespaced_deployment("acme-payments", client.V1Deployment(
        metadata=client.V1ObjectMeta(name="pay"), spec=client.V1DeploymentSpec(
            replicas=3, selector=client.V1LabelSelector(match_labels={"app": "pay"}),
            template=client.V1PodTemplateSpec(metadata=client.V1ObjectMeta(labels={"app": "pay"}),
                                              spec=client.V1PodSpec(containers=[client.V1Container(name="c", image="pay")])))))
    pods = wait_for(lambda: [p for p in v1.list_namespaced_pod("acme-payments").items if p.status.phase == "Running"]
                    if len(v1.list_namespaced_pod("acme-payments").items) == 3 else None, what="tenant pods")
    assert {p.spec.node_name for p in v1.list_namespaced_pod("acme-payments").items} == {node}
    assert all(p.spec.node_selector == {"pksweb.io/tenant": "acme"} for p in pods)
    # Pods of other namespaces placed afterwards avoid the tainted node.
    evict(v1, pods_of(v1, "api")[0])
    wait_for(lambda: all(p.spec.node_name for p in pods_of(v1, "api")), what="api rescheduled")
    newest = max(pods_of(v1, "api"), key=lambda p: p.metadata.creation_timestamp)
    assert newest.spec.node_name != node
