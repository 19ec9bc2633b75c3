"""Conformance of the sandbox's object API: the official client, unmodified, through an ordinary kubeconfig.

Discovery and version, create/get/list/update/delete of each kind with the Status errors a real
kube-apiserver answers (404, 409, 422), list selectors and pagination, every patch type, scale.
"""

from __future__ import annotations

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tests.support.kube_api import core, status_of
from tests.support.waits import wait_for

# ---- discovery, version, health -----------------------------------------------------


def test_discovery_and_version(kube, sandbox_cluster):
    assert client.VersionApi(kube).get_code().git_version == "v1.30.4"
    assert client.CoreApi(kube).get_api_versions().versions == ["v1"]
    groups = {g.name for g in client.ApisApi(kube).get_api_versions().groups}
    assert {"apps", "policy", "networking.k8s.io", "rbac.authorization.k8s.io"} <= groups
    resources = {r.name for r in core(kube).get_api_resources().resources}
    assert {"namespaces", "nodes", "nodes/status", "pods", "pods/eviction", "events", "resourcequotas", "limitranges",
            "serviceaccounts", "services", "configmaps"} <= resources
    apps = {r.name for r in client.AppsV1Api(kube).get_api_resources().resources}
    assert {"deployments", "daemonsets", "replicasets", "statefulsets"} <= apps


def test_readyz_and_livez_verbose(sandbox, sandbox_cluster, sandbox_http):
    base = sandbox.server_url(sandbox_cluster.name)
    response = sandbox_http.get(f"{base}/readyz?verbose")
    assert response.status_code == 200
    assert "[+]etcd ok" in response.text and response.text.rstrip().endswith("readyz check passed")
    assert sandbox_http.get(f"{base}/livez").text == "ok"
    sandbox_cluster.faults.update({"failing_checks": ["etcd"]})
    failed = sandbox_http.get(f"{base}/readyz?verbose")
    assert failed.status_code == 500
    assert "[-]etcd failed: reason withheld" in failed.text and "readyz check failed" in failed.text
    assert sandbox_http.get(f"{base}/readyz/etcd").status_code == 500
    assert sandbox_http.get(f"{base}/readyz/ping").status_code == 200


# ---- objects: create, get, list, update, delete ---------------------------------------------

KINDS = [
    ("configmaps", lambda: client.V1ConfigMap(metadata=client.V1ObjectMeta(name="cfg", labels={"t": "1"}), data={"a": "b"}),
     "create_namespaced_config_map", "read_namespaced_config_map", "list_namespaced_config_map", "delete_namespaced_config_map", "CoreV1Api"),
    ("services", lambda: client.V1Service(metadata=client.V1ObjectMeta(name="svc", labels={"t": "1"}),
                                          spec=client.V1ServiceSpec(ports=[client.V1ServicePort(port=80)])),
     "create_namespaced_service", "read_namespaced_service", "list_namespaced_service", "delete_namespaced_service", "CoreV1Api"),
    ("serviceaccounts", lambda: client.V1ServiceAccount(metadata=client.V1ObjectMeta(name="robot", labels={"t": "1"})),
     "create_namespaced_service_account", "read_namespaced_service_account", "list_namespaced_service_account",
     "delete_namespaced_service_account", "CoreV1Api"),
    ("resourcequotas", lambda: client.V1ResourceQuota(metadata=client.V1ObjectMeta(name="quota", labels={"t": "1"}),
                                                      spec=client.V1ResourceQuotaSpec(hard={"pods": "10", "requests.cpu": "2"})),
     "create_namespaced_resource_quota", "read_namespaced_resource_quota", "list_namespaced_resource_quota",
     "delete_namespaced_resource_quota", "CoreV1Api"),
    ("limitranges", lambda: client.V1LimitRange(metadata=client.V1ObjectMeta(name="limits", labels={"t": "1"}),
                                                spec=client.V1LimitRangeSpec(limits=[client.V1LimitRangeItem(type="Container", default={"cpu": "500m"})])),
     "create_namespaced_limit_range", "read_namespaced_limit_range", "list_namespaced_limit_range",
     "delete_namespaced_limit_range", "CoreV1Api"),
    ("events", lambda: client.CoreV1Event(metadata=client.V1ObjectMeta(name="ev1", labels={"t": "1"}),
                                          involved_object=client.V1ObjectReference(kind="Pod", name="x", namespace="team"),
                                          reason="Tested", message="hello", type="Normal"),
     "create_namespaced_event", "read_namespaced_event", "list_namespaced_event", "delete_namespaced_event", "CoreV1Api"),
    ("pods", lambda: client.V1Pod(metadata=client.V1ObjectMeta(name="solo", labels={"t": "1"}),
                                  spec=client.V1PodSpec(containers=[client.V1Container(name="c", image="busybox")])),
     "create_namespaced_pod", "read_namespaced_pod", "list_namespaced_pod", "delete_namespaced_pod", "CoreV1Api"),
    ("networkpolicies", lambda: client.V1NetworkPolicy(metadata=client.V1ObjectMeta(name="deny", labels={"t": "1"}),
                                                       spec=client.V1NetworkPolicySpec(pod_selector=client.V1LabelSelector(), policy_types=["Ingress", "Egress"])),
     "create_namespaced_network_policy", "read_namespaced_network_policy", "list_namespaced_network_policy",
     "delete_namespaced_network_policy", "NetworkingV1Api"),
    ("roles", lambda: client.V1Role(metadata=client.V1ObjectMeta(name="reader", labels={"t": "1"}),
                                    rules=[client.V1PolicyRule(api_groups=[""], resources=["pods"], verbs=["get", "list"])]),
     "create_namespaced_role", "read_namespaced_role", "list_namespaced_role", "delete_namespaced_role", "RbacAuthorizationV1Api"),
    ("rolebindings", lambda: client.V1RoleBinding(metadata=client.V1ObjectMeta(name="admins", labels={"t": "1"}),
                                                  role_ref=client.V1RoleRef(api_group="rbac.authorization.k8s.io", kind="ClusterRole", name="admin"),
                                                  subjects=[client.RbacV1Subject(kind="Group", name="acme-admins", api_group="rbac.authorization.k8s.io")]),
     "create_namespaced_role_binding", "read_namespaced_role_binding", "list_namespaced_role_binding",
     "delete_namespaced_role_binding", "RbacAuthorizationV1Api"),
    ("poddisruptionbudgets", lambda: client.V1PodDisruptionBudget(metadata=client.V1ObjectMeta(name="budget", labels={"t": "1"}),
                                                                  spec=client.V1PodDisruptionBudgetSpec(min_available=1, selector=client.V1LabelSelector(match_labels={"app": "x"}))),
     "create_namespaced_pod_disruption_budget", "read_namespaced_pod_disruption_budget",
     "list_namespaced_pod_disruption_budget", "delete_namespaced_pod_disruption_budget", "PolicyV1Api"),
    ("deployments", lambda: client.V1Deployment(metadata=client.V1ObjectMeta(name="app", labels={"t": "1"}), spec=client.V1DeploymentSpec(
        replicas=2, selector=client.V1LabelSelector(match_labels={"app": "app"}),
        template=client.V1PodTemplateSpec(metadata=client.V1ObjectMeta(labels={"app": "app"}),
                                          spec=client.V1PodSpec(containers=[client.V1Container(name="c", image="nginx")])))),
     "create_namespaced_deployment", "read_namespaced_deployment", "list_namespaced_deployment", "delete_namespaced_deployment", "AppsV1Api"),
    ("statefulsets", lambda: client.V1StatefulSet(metadata=client.V1ObjectMeta(name="store", labels={"t": "1"}), spec=client.V1StatefulSetSpec(
        replicas=2, service_name="store", selector=client.V1LabelSelector(match_labels={"app": "store"}),
        template=client.V1PodTemplateSpec(metadata=client.V1ObjectMeta(labels={"app": "store"}),
                                          spec=client.V1PodSpec(containers=[client.V1Container(name="c", image="redis")])))),
     "create_namespaced_stateful_set", "read_namespaced_stateful_set", "list_namespaced_stateful_set", "delete_namespaced_stateful_set", "AppsV1Api"),
    ("daemonsets", lambda: client.V1DaemonSet(metadata=client.V1ObjectMeta(name="agent", labels={"t": "1"}), spec=client.V1DaemonSetSpec(
        selector=client.V1LabelSelector(match_labels={"app": "agent"}),
        template=client.V1PodTemplateSpec(metadata=client.V1ObjectMeta(labels={"app": "agent"}),
                                          spec=client.V1PodSpec(containers=[client.V1Container(name="c", image="agent")])))),
     "create_namespaced_daemon_set", "read_namespaced_daemon_set", "list_namespaced_daemon_set", "delete_namespaced_daemon_set", "AppsV1Api"),
    ("replicasets", lambda: client.V1ReplicaSet(metadata=client.V1ObjectMeta(name="rs", labels={"t": "1"}), spec=client.V1ReplicaSetSpec(
        replicas=1, selector=client.V1LabelSelector(match_labels={"app": "rs"}),
        template=client.V1PodTemplateSpec(metadata=client.V1ObjectMeta(labels={"app": "rs"}),
                                          spec=client.V1PodSpec(containers=[client.V1Container(name="c", image="rs")])))),
     "create_namespaced_replica_set", "read_namespaced_replica_set", "list_namespaced_replica_set", "delete_namespaced_replica_set", "AppsV1Api"),
]


@pytest.mark.parametrize(("plural", "build", "create", "read", "list_", "delete", "api_class"), KINDS, ids=[k[0] for k in KINDS])
def test_namespaced_kind_round_trip(kube, plural, build, create, read, list_, delete, api_class):
    api = getattr(client, api_class)(kube)
    core(kube).create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name="team")))
    made = getattr(api, create)("team", build())
    name = made.metadata.name
    assert made.metadata.uid and made.metadata.resource_version and made.metadata.creation_timestamp
    fetched = getattr(api, read)(name, "team")
    assert fetched.metadata.uid == made.metadata.uid and fetched.kind and fetched.api_version
    listed = getattr(api, list_)("team", label_selector="t=1")
    assert [item.metadata.name for item in listed.items] == [name]
    assert listed.metadata.resource_version
    with pytest.raises(ApiException) as exc:
        getattr(api, create)("team", build())
    assert exc.value.status == 409 and status_of(exc.value)["reason"] == "AlreadyExists"
    getattr(api, delete)(name, "team")
    with pytest.raises(ApiException) as exc:
        getattr(api, read)(name, "team")
    assert exc.value.status == 404 and status_of(exc.value)["reason"] == "NotFound"


def test_cluster_scoped_rbac_round_trip(kube):
    rbac = client.RbacAuthorizationV1Api(kube)
    rbac.create_cluster_role(client.V1ClusterRole(metadata=client.V1ObjectMeta(name="pksweb:reader"),
                                                  rules=[client.V1PolicyRule(api_groups=[""], resources=["nodes"], verbs=["list"])]))
    rbac.create_cluster_role_binding(client.V1ClusterRoleBinding(
        metadata=client.V1ObjectMeta(name="pksweb:reader"),
        role_ref=client.V1RoleRef(api_group="rbac.authorization.k8s.io", kind="ClusterRole", name="pksweb:reader"),
        subjects=[client.RbacV1Subject(kind="User", name="alice", api_group="rbac.authorization.k8s.io")]))
    assert rbac.read_cluster_role("pksweb:reader").rules[0].resources == ["nodes"]
    assert "pksweb:reader" in [b.metadata.name for b in rbac.list_cluster_role_binding().items]
    rbac.delete_cluster_role_binding("pksweb:reader")
    rbac.delete_cluster_role("pksweb:reader")


def test_invalid_name_gets_422_with_causes(kube):
    with pytest.raises(ApiException) as exc:
        core(kube).create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name="Bad_Name")))
    body = status_of(exc.value)
    assert exc.value.status == 422 and body["reason"] == "Invalid"
    assert body["message"].startswith('Namespace "Bad_Name" is invalid: metadata.name: Invalid value: "Bad_Name": a lowercase RFC 1123 label')
    assert body["details"]["causes"][0]["field"] == "metadata.name"


def test_pod_without_containers_is_invalid(sandbox, sandbox_cluster, sandbox_http):
    # The client's typed model refuses such a pod, so send the JSON as another client would.
    response = sandbox_http.post(f"{sandbox.server_url(sandbox_cluster.name)}/api/v1/namespaces/default/pods",
                          json={"metadata": {"name": "empty"}, "spec": {}},
                          headers={"Authorization": f"Bearer {sandbox_cluster.token}"})
    assert response.status_code == 422
    assert response.json()["details"]["causes"] == [{"reason": "FieldValueInvalid", "message": "Required value", "field": "spec.containers"}]


def test_object_in_missing_namespace_is_404(kube):
    with pytest.raises(ApiException) as exc:
        core(kube).create_namespaced_config_map("nowhere", client.V1ConfigMap(metadata=client.V1ObjectMeta(name="x")))
    assert exc.value.status == 404 and status_of(exc.value)["message"] == 'namespaces "nowhere" not found'


def test_stale_resource_version_gets_409_conflict(kube):
    v1 = core(kube)
    v1.create_namespaced_config_map("default", client.V1ConfigMap(metadata=client.V1ObjectMeta(name="cfg"), data={"v": "1"}))
    first = v1.read_namespaced_config_map("cfg", "default")
    second = v1.read_namespaced_config_map("cfg", "default")
    first.data = {"v": "2"}
    updated = v1.replace_namespaced_config_map("cfg", "default", first)
    assert int(updated.metadata.resource_version) > int(second.metadata.resource_version)
    second.data = {"v": "3"}
    with pytest.raises(ApiException) as exc:
        v1.replace_namespaced_config_map("cfg", "default", second)
    body = status_of(exc.value)
    assert exc.value.status == 409 and body["reason"] == "Conflict"
    assert "the object has been modified; please apply your changes to the latest version and try again" in body["message"]


def test_namespace_deletion_terminates_then_disappears(kube):
    v1 = core(kube)
    v1.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name="doomed")))
    v1.create_namespaced_config_map("doomed", client.V1ConfigMap(metadata=client.V1ObjectMeta(name="x")))
    v1.delete_namespace("doomed")
    assert v1.read_namespace("doomed").status.phase == "Terminating"
    with pytest.raises(ApiException) as exc:
        v1.create_namespaced_config_map("doomed", client.V1ConfigMap(metadata=client.V1ObjectMeta(name="y")))
    assert exc.value.status == 403 and "because it is being terminated" in status_of(exc.value)["message"]

    def gone():
        try:
            v1.read_namespace("doomed")
        except ApiException as e:
            return e.status == 404
        return False

    wait_for(gone, what="namespace to be finalized")
    assert v1.list_namespaced_config_map("doomed").items == []


# ---- lists: selectors and pagination ----------------------------------------------------------


def test_field_selectors(kube, sandbox_cluster):
    v1 = core(kube)
    node = f"{sandbox_cluster.name}-w-1"
    on_node = v1.list_pod_for_all_namespaces(field_selector=f"spec.nodeName={node}").items
    assert on_node and all(p.spec.node_name == node for p in on_node)
    running = v1.list_pod_for_all_namespaces(field_selector="status.phase=Running").items
    assert len(running) == len(v1.list_pod_for_all_namespaces().items)
    assert v1.list_pod_for_all_namespaces(field_selector="status.phase!=Running").items == []
    names = [n.metadata.name for n in v1.list_node(field_selector=f"metadata.name={node}").items]
    assert names == [node]
    kube_system = v1.list_pod_for_all_namespaces(field_selector="metadata.namespace=kube-system").items
    assert kube_system and {p.metadata.namespace for p in kube_system} == {"kube-system"}
    with pytest.raises(ApiException) as exc:
        v1.list_pod_for_all_namespaces(field_selector="spec.bogus=1")
    assert exc.value.status == 400 and "field label not supported: spec.bogus" in status_of(exc.value)["message"]


def test_label_selectors(kube):
    v1 = core(kube)
    for name, labels in (("a", {"tier": "web", "env": "prod"}), ("b", {"tier": "db", "env": "prod"}), ("c", {"tier": "web"})):
        v1.create_namespaced_config_map("default", client.V1ConfigMap(metadata=client.V1ObjectMeta(name=name, labels=labels)))

    def names(selector):
        return sorted(c.metadata.name for c in v1.list_namespaced_config_map("default", label_selector=selector).items)

    assert names("tier=web") == ["a", "c"]
    assert names("tier==web,env=prod") == ["a"]
    assert names("tier!=web") == ["b"]
    assert names("tier in (web, db),env") == ["a", "b"]
    assert names("tier notin (web)") == ["b"]
    assert names("!env") == ["c"]


def test_pagination_with_limit_and_continue(kube):
    v1 = core(kube)
    everything = [p.metadata.name for p in v1.list_pod_for_all_namespaces().items]
    seen, token, pages = [], None, 0
    while True:
        page = v1.list_pod_for_all_namespaces(limit=4, _continue=token)
        seen += [p.metadata.name for p in page.items]
        pages += 1
        token = page.metadata._continue
        if not token:
            assert page.metadata.remaining_item_count is None
            break
        assert page.metadata.remaining_item_count == len(everything) - len(seen)
    assert seen == everything and pages == -(-len(everything) // 4)


# ---- patches ------------------------------------------------------------------------------


def test_strategic_merge_patch_cordons_and_taints_a_node(kube, sandbox_cluster):
    v1 = core(kube)
    node = f"{sandbox_cluster.name}-w-2"
    patched = v1.patch_node(node, {"spec": {"unschedulable": True, "taints": [
        {"key": "pksweb.io/tenant", "value": "acme", "effect": "NoSchedule"}]}, "metadata": {"labels": {"pksweb.io/tenant": "acme"}}})
    assert patched.spec.unschedulable is True
    assert patched.spec.taints[0].key == "pksweb.io/tenant"
    assert patched.metadata.labels["pksweb.io/tenant"] == "acme"
    assert patched.metadata.labels["kubernetes.io/hostname"] == node  # other labels kept
    assert v1.patch_node(node, {"spec": {"unschedulable": None}}).spec.unschedulable is None


def test_node_status_patch_merges_conditions_by_type(kube, sandbox_cluster):
    v1 = core(kube)
    node = f"{sandbox_cluster.name}-w-1"
    patched = v1.patch_node_status(node, {"status": {"conditions": [
        {"type": "MemoryPressure", "status": "True", "reason": "KubeletHasInsufficientMemory", "message": "low"}]}})
    conditions = {c.type: c.status for c in patched.status.conditions}
    assert conditions == {"MemoryPressure": "True", "DiskPressure": "False", "PIDPressure": "False", "Ready": "True"}


def test_merge_patch_removes_with_null(kube):
    v1 = core(kube)
    v1.create_namespaced_config_map("default", client.V1ConfigMap(
        metadata=client.V1ObjectMeta(name="m", annotations={"a": "1", "b": "2"}), data={"k": "v"}))
    patched = v1.patch_namespaced_config_map("m", "default", {"metadata": {"annotations": {"a": None, "c": "3"}}},
                                             _content_type="application/merge-patch+json")
    assert patched.metadata.annotations == {"b": "2", "c": "3"}


def test_json_patch_and_failed_test_operation(kube):
    v1 = core(kube)
    v1.create_namespaced_config_map("default", client.V1ConfigMap(metadata=client.V1ObjectMeta(name="j"), data={"k": "v"}))
    patched = v1.patch_namespaced_config_map("j", "default", [{"op": "replace", "path": "/data/k", "value": "w"},
                                                              {"op": "add", "path": "/data/n", "value": "1"}])
    assert patched.data == {"k": "w", "n": "1"}
    with pytest.raises(ApiException) as exc:
        v1.patch_namespaced_config_map("j", "default", [{"op": "test", "path": "/data/k", "value": "nope"}])
    assert exc.value.status == 422


def test_server_side_apply_creates_then_updates(kube):
    v1 = core(kube)
    body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "applied", "namespace": "default"}, "data": {"x": "1"}}
    created = v1.patch_namespaced_config_map("applied", "default", body, field_manager="pksweb",
                                             _content_type="application/apply-patch+yaml")
    assert created.data == {"x": "1"}
    body["data"]["y"] = "2"
    updated = v1.patch_namespaced_config_map("applied", "default", body, field_manager="pksweb",
                                             _content_type="application/apply-patch+yaml")
    assert updated.data == {"x": "1", "y": "2"} and updated.metadata.uid == created.metadata.uid


# ---- scale ----------------------------------------------------------------------------------------


def test_scale_subresource_speaks_scale(kube, sandbox_cluster):
    apps = client.AppsV1Api(kube)
    scale = apps.read_namespaced_deployment_scale("web", "demo")
    assert scale.kind == "Scale" and scale.api_version == "autoscaling/v1" and scale.status.selector == "app=web"
    assert scale.spec.replicas == sandbox_cluster.get("deployments", "demo", "web")["spec"]["replicas"]
    patched = apps.patch_namespaced_deployment_scale("web", "demo", {"spec": {"replicas": 5}})
    assert patched.kind == "Scale" and patched.spec.replicas == 5
    assert sandbox_cluster.get("deployments", "demo", "web")["spec"]["replicas"] == 5
    wait_for(lambda: apps.read_namespaced_deployment_scale("web", "demo").status.replicas == 5, what="five web pods")
    replaced = apps.replace_namespaced_stateful_set_scale("db", "demo", client.V1Scale(
        metadata=client.V1ObjectMeta(name="db"), spec=client.V1ScaleSpec(replicas=1)))
    assert replaced.spec.replicas == 1 and sandbox_cluster.get("statefulsets", "demo", "db")["spec"]["replicas"] == 1
    with pytest.raises(ApiException) as exc:
        apps.replace_namespaced_deployment_scale("web", "demo", client.V1Scale(
            metadata=client.V1ObjectMeta(name="web", resource_version="1"), spec=client.V1ScaleSpec(replicas=2)))
    assert exc.value.status == 409
