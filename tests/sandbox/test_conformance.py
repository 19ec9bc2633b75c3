"""Conformance of the sandbox: the official client, unmodified, against every endpoint.

Each test talks HTTP to a sandbox cluster through an ordinary kubeconfig and checks
what a real kube-apiserver would answer: shapes that deserialize into the client's
models, Status errors with the right code and reason, watch semantics, evictions.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import ssl
import time

import pytest
import urllib3
from cryptography import x509
from kubernetes import client, config, watch
from kubernetes.client.exceptions import ApiException

from sandbox import tables
from tests.support.waits import wait_for


def status_of(exc: ApiException) -> dict:
    body = json.loads(exc.body)
    assert body["kind"] == "Status" and body["apiVersion"] == "v1" and body["status"] == "Failure"
    assert body["code"] == exc.status
    return body


def core(kube) -> client.CoreV1Api:
    return client.CoreV1Api(kube)


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


# ---- authentication and authorization ---------------------------------------------------


def test_wrong_token_gets_401(sandbox, sandbox_cluster):
    kubeconfig = sandbox.kubeconfig(sandbox_cluster.name)
    kubeconfig["users"][0]["user"]["token"] = "wrong"
    with pytest.raises(ApiException) as exc:
        core(config.new_client_from_config_dict(kubeconfig)).list_namespace()
    assert exc.value.status == 401 and status_of(exc.value)["reason"] == "Unauthorized"


def test_missing_token_gets_401(sandbox, sandbox_cluster):
    kubeconfig = sandbox.kubeconfig(sandbox_cluster.name)
    kubeconfig["users"][0]["user"] = {}
    with pytest.raises(ApiException) as exc:
        core(config.new_client_from_config_dict(kubeconfig)).list_node()
    assert exc.value.status == 401


def test_read_only_token_gets_403_naming_the_permission(sandbox, sandbox_cluster):
    viewer = core(config.new_client_from_config_dict(sandbox.kubeconfig(sandbox_cluster.name, readonly=True)))
    assert viewer.list_node().items
    with pytest.raises(ApiException) as exc:
        viewer.patch_node(f"{sandbox_cluster.name}-w-1", {"spec": {"unschedulable": True}})
    body = status_of(exc.value)
    assert exc.value.status == 403 and body["reason"] == "Forbidden"
    assert 'cannot patch resource "nodes" in API group "" at the cluster scope' in body["message"]


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


# ---- watch ------------------------------------------------------------------------------------


def test_watch_sees_changes_and_resumes(kube):
    v1 = core(kube)
    start_rv = v1.list_namespaced_config_map("default").metadata.resource_version
    v1.create_namespaced_config_map("default", client.V1ConfigMap(metadata=client.V1ObjectMeta(name="w1")))
    v1.patch_namespaced_config_map("w1", "default", {"data": {"k": "v"}})
    v1.delete_namespaced_config_map("w1", "default")
    events = list(watch.Watch().stream(v1.list_namespaced_config_map, "default", resource_version=start_rv, timeout_seconds=1))
    assert [(e["type"], e["object"].metadata.name) for e in events] == [("ADDED", "w1"), ("MODIFIED", "w1"), ("DELETED", "w1")]
    assert isinstance(events[0]["object"], client.V1ConfigMap)
    assert events[1]["object"].data == {"k": "v"}
    resumed = list(watch.Watch().stream(v1.list_namespaced_config_map, "default",
                                        resource_version=events[1]["object"].metadata.resource_version, timeout_seconds=1))
    assert [e["type"] for e in resumed] == ["DELETED"]


def test_watch_without_version_lists_current_objects_first(kube):
    stream = watch.Watch().stream(core(kube).list_namespace, timeout_seconds=1)
    names = [e["object"].metadata.name for e in stream if e["type"] == "ADDED"]
    assert {"default", "kube-system", "demo"} <= set(names)


def test_watch_live_events_with_label_selector(kube, sandbox_cluster):
    import threading

    v1 = core(kube)
    w = watch.Watch()
    seen = []
    rv = v1.list_namespaced_config_map("default").metadata.resource_version

    def consume():
        for event in w.stream(v1.list_namespaced_config_map, "default", label_selector="watch=me",
                              resource_version=rv, timeout_seconds=3):
            seen.append((event["type"], event["object"].metadata.name))
            if len(seen) == 2:
                w.stop()

    thread = threading.Thread(target=consume)
    thread.start()
    time.sleep(0.2)
    v1.create_namespaced_config_map("default", client.V1ConfigMap(metadata=client.V1ObjectMeta(name="ignored")))
    v1.create_namespaced_config_map("default", client.V1ConfigMap(metadata=client.V1ObjectMeta(name="live", labels={"watch": "me"})))
    v1.patch_namespaced_config_map("live", "default", {"metadata": {"labels": {"watch": None}}})
    thread.join(5)
    assert seen == [("ADDED", "live"), ("DELETED", "live")]  # leaving the selector reads as DELETED


def test_watch_too_old_version_gets_410(sandbox):
    cluster = sandbox.add_cluster("short-memory", nodes=1, pods_per_node=0, watch_log_size=50)
    v1 = core(config.new_client_from_config_dict(sandbox.kubeconfig("short-memory")))
    old_rv = v1.list_namespaced_config_map("default").metadata.resource_version
    for i in range(cluster.store.log.maxlen + 5):
        cluster.create("configmaps", {"metadata": {"name": f"fill-{i}"}}, "default")
    with pytest.raises(ApiException) as exc:
        list(watch.Watch().stream(v1.list_namespaced_config_map, "default", resource_version=old_rv, timeout_seconds=1))
    assert exc.value.status == 410 and "too old resource version" in exc.value.reason


def test_watch_bookmarks(kube, sandbox, sandbox_cluster, sandbox_http):
    url = f"{sandbox.server_url(sandbox_cluster.name)}/api/v1/namespaces/default/configmaps"
    rv = core(kube).list_namespaced_config_map("default").metadata.resource_version
    with sandbox_http.stream("GET", url, params={"watch": "true", "allowWatchBookmarks": "true", "resourceVersion": rv,
                                          "timeoutSeconds": "1"},
                      headers={"Authorization": f"Bearer {sandbox_cluster.token}"}) as response:
        lines = [json.loads(line) for line in response.iter_lines() if line]
    assert lines and lines[0]["type"] == "BOOKMARK" and lines[0]["object"]["metadata"]["resourceVersion"]


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


# ---- node upgrades -------------------------------------------------------------------------


def test_node_upgrade_goes_not_ready_then_ready_at_new_version(kube, sandbox, sandbox_cluster, sandbox_http):
    v1 = core(kube)
    node = f"{sandbox_cluster.name}-w-2"
    response = sandbox_http.post(f"{sandbox.server_url(sandbox_cluster.name)}/sandbox/nodes/{node}/upgrade",
                          json={"version": "1.31.2", "delay": 0.3}, headers={"Authorization": f"Bearer {sandbox_cluster.token}"})
    assert response.status_code == 202

    def ready(n):
        return next(c.status for c in n.status.conditions if c.type == "Ready")

    assert ready(v1.read_node(node)) == "False"
    upgraded = wait_for(lambda: (n := v1.read_node(node)) and ready(n) == "True" and n, what="node back Ready")
    assert upgraded.status.node_info.kubelet_version == "v1.31.2"
    assert client.VersionApi(kube).get_code().git_version == "v1.30.4"  # the control plane is unchanged
    reasons = [e.reason for e in v1.list_namespaced_event("default", field_selector=f"involvedObject.name={node}").items]
    assert "NodeNotReady" in reasons and "NodeReady" in reasons


def test_control_plane_upgrade_moves_the_server_version(kube, sandbox_cluster):
    sandbox_cluster.upgrade_node(f"{sandbox_cluster.name}-cp-1", "1.31.2", delay=0.1)
    wait_for(lambda: client.VersionApi(kube).get_code().git_version == "v1.31.2", what="server version")


def test_stuck_node_never_returns(kube, sandbox_cluster):
    node = f"{sandbox_cluster.name}-w-1"
    sandbox_cluster.faults.update({"stuck_nodes": [node]})
    sandbox_cluster.upgrade_node(node, "1.31.2", delay=0.05)
    time.sleep(0.4)
    status = next(c.status for c in core(kube).read_node(node).status.conditions if c.type == "Ready")
    assert status == "False"


def test_upgrade_endpoint_refuses_bad_version(sandbox, sandbox_cluster, sandbox_http):
    response = sandbox_http.post(f"{sandbox.server_url(sandbox_cluster.name)}/sandbox/nodes/x/upgrade", json={"version": "latest"},
                          headers={"Authorization": f"Bearer {sandbox_cluster.token}"})
    assert response.status_code == 400 and "version must look like 1.31.2" in response.json()["message"]


# ---- faults --------------------------------------------------------------------------------------


def test_latency_fault_delays_answers(kube, sandbox_cluster):
    sandbox_cluster.faults.update({"latency_ms": 300})
    started = time.monotonic()
    core(kube).list_namespace()
    assert time.monotonic() - started >= 0.3


def test_error_fault_answers_500_or_503(kube, sandbox_cluster):
    sandbox_cluster.faults.update({"error_rate": 1.0})
    codes = set()
    for _ in range(12):
        with pytest.raises(ApiException) as exc:
            core(kube).list_namespace()
        codes.add(exc.value.status)
        assert status_of(exc.value)["reason"] in ("InternalError", "ServiceUnavailable")
    assert codes <= {500, 503} and codes


def test_throttle_fault_answers_429_with_retry_after(kube, sandbox_cluster):
    sandbox_cluster.faults.update({"throttle_rate": 1.0, "retry_after": 7})
    kube.configuration.retries = 0  # urllib3 would otherwise sleep out Retry-After three times
    with pytest.raises(ApiException) as exc:
        core(kube).list_node()
    assert exc.value.status == 429 and exc.value.headers["Retry-After"] == "7"
    assert status_of(exc.value)["details"]["retryAfterSeconds"] == 7


def test_unreachable_fault_drops_the_connection(kube, sandbox_cluster):
    sandbox_cluster.faults.update({"unreachable": True})
    kube.configuration.retries = 0
    with pytest.raises(urllib3.exceptions.HTTPError):
        core(kube).list_node(_request_timeout=2)


def test_blackhole_fault_times_out(kube, sandbox_cluster):
    sandbox_cluster.faults.update({"blackhole": True})
    kube.configuration.retries = 0
    started = time.monotonic()
    with pytest.raises(urllib3.exceptions.HTTPError):
        core(kube).list_node(_request_timeout=0.5)
    assert time.monotonic() - started < 3


def test_fault_endpoint_validates_and_clears(sandbox, sandbox_cluster, sandbox_http):
    url = f"{sandbox.server_url(sandbox_cluster.name)}/sandbox/faults"
    headers = {"Authorization": f"Bearer {sandbox_cluster.token}"}
    bad = sandbox_http.put(url, json={"error_rate": 2}, headers=headers)
    assert bad.status_code == 400 and "error_rate is a share between 0 and 1" in bad.json()["message"]
    assert sandbox_http.put(url, json={"nonsense": 1}, headers=headers).status_code == 400
    assert sandbox_http.put(url, json={"latency_ms": 5}, headers=headers).json()["latency_ms"] == 5
    assert sandbox_http.delete(url, headers=headers).json()["latency_ms"] == 0
    assert sandbox_http.get(url).status_code == 401


@pytest.mark.parametrize(("status", "reason"), [(404, "NotFound"), (409, "Conflict"), (502, ""), (504, "Timeout"),
                                              (401, "Unauthorized"), (503, "ServiceUnavailable")])
def test_fail_next_answers_any_error_status_with_a_status_of_its_reason(kube, sandbox_cluster, status, reason):
    sandbox_cluster.faults.update({"fail_next": 1, "fail_status": status})
    kube.configuration.retries = 0
    with pytest.raises(ApiException) as exc:
        core(kube).list_node()
    body = status_of(exc.value)
    assert exc.value.status == status and body["code"] == status and body["reason"] == reason and body["kind"] == "Status"
    assert core(kube).list_node().items  # then it answers again


def test_fault_put_merges_and_fail_status_is_an_error_code(sandbox, sandbox_cluster, sandbox_http):
    url = f"{sandbox.server_url(sandbox_cluster.name)}/sandbox/faults"
    headers = {"Authorization": f"Bearer {sandbox_cluster.token}"}
    sandbox_http.put(url, json={"latency_ms": 5}, headers=headers)
    merged = sandbox_http.put(url, json={"fail_status": 418}, headers=headers).json()
    assert (merged["latency_ms"], merged["fail_status"]) == (5, 418)  # PUT sets the named faults and keeps the others
    for bad in (200, 302, 600, 404.5, "500"):
        answer = sandbox_http.put(url, json={"fail_status": bad}, headers=headers)
        assert answer.status_code == 400 and answer.json()["reason"] == "BadRequest", bad
    assert sandbox_http.delete(url, headers=headers).json()["fail_status"] == 429


def test_request_stats_count_what_a_probe_costs(kube, sandbox, sandbox_cluster, sandbox_http):
    url = f"{sandbox.server_url(sandbox_cluster.name)}/sandbox/stats"
    headers = {"Authorization": f"Bearer {sandbox_cluster.token}"}
    sandbox_http.delete(url, headers=headers)
    core(kube).list_node(resource_version="0")
    core(kube).list_pod_for_all_namespaces()
    client.VersionApi(kube).get_code()
    assert sandbox_http.get(url, headers=headers).json() == {"node_list_rv0": 1, "pod_list_cluster_wide": 1, "version": 1}


# ---- TLS -------------------------------------------------------------------------------------


def test_served_over_https_verified_against_its_own_ca(sandbox, sandbox_cluster):
    kubeconfig = sandbox.kubeconfig(sandbox_cluster.name)
    assert kubeconfig["clusters"][0]["cluster"]["server"].startswith("https://127.0.0.1:")
    assert core(config.new_client_from_config_dict(kubeconfig)).list_node().items
    untrusting = dict(kubeconfig, clusters=[{"name": sandbox_cluster.name, "cluster": {"server": sandbox.server_url(sandbox_cluster.name)}}])
    api = config.new_client_from_config_dict(untrusting)
    api.configuration.retries = 0
    with pytest.raises(urllib3.exceptions.MaxRetryError, match="CERTIFICATE_VERIFY_FAILED"):
        core(api).list_node()
    certificate = x509.load_pem_x509_certificate(ssl.get_server_certificate(("127.0.0.1", sandbox.port)).encode())
    names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert ipaddress.ip_address("127.0.0.1") in names.get_values_for_type(x509.IPAddress)
    assert "localhost" in names.get_values_for_type(x509.DNSName)


# ---- what kubectl asks for: tables, access reviews, OpenAPI ------------------------------------

KUBECTL_ACCEPT = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json"


def test_table_form_of_lists_and_objects(sandbox, sandbox_cluster, sandbox_http):
    base = sandbox.server_url(sandbox_cluster.name)
    headers = {"Authorization": f"Bearer {sandbox_cluster.token}", "Accept": KUBECTL_ACCEPT}
    nodes = sandbox_http.get(f"{base}/api/v1/nodes", headers=headers)
    assert nodes.headers["content-type"] == "application/json;as=Table;v=v1;g=meta.k8s.io"
    table = nodes.json()
    assert table["kind"] == "Table" and table["apiVersion"] == "meta.k8s.io/v1" and table["metadata"]["resourceVersion"]
    assert [c["name"] for c in table["columnDefinitions"] if c["priority"] == 0] == ["Name", "Status", "Roles", "Age", "Version"]
    first = table["rows"][0]
    assert first["cells"][:3] == [f"{sandbox_cluster.name}-cp-1", "Ready", "control-plane"] and first["cells"][4] == "v1.30.4"
    assert first["object"]["kind"] == "PartialObjectMetadata" and first["object"]["metadata"]["name"] == first["cells"][0]
    full = sandbox_http.get(f"{base}/api/v1/namespaces/demo/pods", headers=headers, params={"includeObject": "Object", "limit": 2}).json()
    assert [c["name"] for c in full["columnDefinitions"][:5]] == ["Name", "Ready", "Status", "Restarts", "Age"]
    assert full["rows"][0]["object"]["kind"] == "Pod" and full["rows"][0]["object"]["spec"]["containers"]
    assert full["rows"][0]["cells"][1:4] == ["1/1", "Running", "0"] and full["metadata"]["continue"]
    bare = sandbox_http.get(f"{base}/apis/apps/v1/namespaces/kube-system/deployments/coredns", headers=headers,
                            params={"includeObject": "None"}).json()
    assert bare["rows"] == [{"cells": ["coredns", "2/2", 2, 2, bare["rows"][0]["cells"][4], "coredns",
                                       "registry.k8s.io/coredns/coredns:v1.11.1", "k8s-app=kube-dns"]}]
    generic = sandbox_http.get(f"{base}/api/v1/namespaces/default/serviceaccounts", headers=headers).json()
    assert [c["name"] for c in generic["columnDefinitions"]] == ["Name", "Age"] and generic["rows"][0]["cells"][0] == "default"
    assert sandbox_http.get(f"{base}/api/v1/nodes", headers={**headers, "Accept": "application/json"}).json()["kind"] == "NodeList"


def test_table_watch_sends_columns_with_the_first_event_only(kube, sandbox, sandbox_cluster, sandbox_http):
    url = f"{sandbox.server_url(sandbox_cluster.name)}/api/v1/namespaces/default/configmaps"
    core(kube).create_namespaced_config_map("default", client.V1ConfigMap(metadata=client.V1ObjectMeta(name="one")))
    core(kube).create_namespaced_config_map("default", client.V1ConfigMap(metadata=client.V1ObjectMeta(name="two")))
    with sandbox_http.stream("GET", url, params={"watch": "true", "timeoutSeconds": "1", "includeObject": "Object"},
                             headers={"Authorization": f"Bearer {sandbox_cluster.token}", "Accept": KUBECTL_ACCEPT}) as response:
        events = [json.loads(line) for line in response.iter_lines() if line]
    assert [e["type"] for e in events] == ["ADDED", "ADDED"]
    assert all(e["object"]["kind"] == "Table" for e in events)
    assert [c["name"] for c in events[0]["object"]["columnDefinitions"]] == ["Name", "Age"]
    assert events[1]["object"]["columnDefinitions"] == []
    assert [e["object"]["rows"][0]["object"]["metadata"]["name"] for e in events] == ["one", "two"]


def test_age_reads_as_kubectl_shows_it():
    now = datetime.datetime(2025, 1, 10, 12, 0, 0, tzinfo=datetime.UTC)

    def ago(**delta):
        return tables.age((now - datetime.timedelta(**delta)).strftime("%Y-%m-%dT%H:%M:%SZ"), now)

    assert [ago(seconds=5), ago(seconds=119), ago(minutes=5, seconds=12), ago(minutes=5), ago(minutes=42), ago(hours=3, minutes=4),
            ago(hours=30), ago(days=3, hours=2), ago(days=40), ago(days=800)] == [
        "5s", "119s", "5m12s", "5m", "42m", "3h4m", "30h", "3d2h", "40d", "2y70d"]
    assert tables.age(None) == "<unknown>" and ago(seconds=-30) == "<invalid>"


def test_self_subject_access_review(kube, sandbox, sandbox_cluster):
    authz = client.AuthorizationV1Api(kube)

    def review(api, **attributes):
        return api.create_self_subject_access_review(client.V1SelfSubjectAccessReview(
            spec=client.V1SelfSubjectAccessReviewSpec(resource_attributes=client.V1ResourceAttributes(**attributes))))

    answer = review(authz, verb="create", resource="pods", namespace="default")
    assert answer.status.allowed is True and answer.kind == "SelfSubjectAccessReview"
    viewer = client.AuthorizationV1Api(config.new_client_from_config_dict(sandbox.kubeconfig(sandbox_cluster.name, readonly=True)))
    assert review(viewer, verb="list", resource="nodes").status.allowed is True
    assert review(viewer, verb="delete", resource="pods", namespace="demo").status.allowed is False
    denied = client.AuthorizationV1Api(config.new_client_from_config_dict(sandbox.kubeconfig(sandbox_cluster.name, denied=True)))
    assert review(denied, verb="get", resource="pods", namespace="default").status.allowed is False  # it may still ask
    path = authz.create_self_subject_access_review(client.V1SelfSubjectAccessReview(spec=client.V1SelfSubjectAccessReviewSpec(
        non_resource_attributes=client.V1NonResourceAttributes(path="/healthz", verb="get"))))
    assert path.status.allowed is True
    with pytest.raises(ApiException) as exc:
        authz.create_self_subject_access_review(client.V1SelfSubjectAccessReview(spec=client.V1SelfSubjectAccessReviewSpec()))
    assert exc.value.status == 422 and "exactly one of nonResourceAttributes or resourceAttributes" in status_of(exc.value)["message"]


def test_subject_access_review_and_rules_review_follow_rbac(kube, sandbox, sandbox_cluster):
    rbac, authz = client.RbacAuthorizationV1Api(kube), client.AuthorizationV1Api(kube)
    rbac.create_namespaced_role("demo", client.V1Role(metadata=client.V1ObjectMeta(name="deployer"), rules=[
        client.V1PolicyRule(api_groups=["apps"], resources=["deployments"], verbs=["get", "update"])]))
    rbac.create_namespaced_role_binding("demo", client.V1RoleBinding(
        metadata=client.V1ObjectMeta(name="deployers"), role_ref=client.V1RoleRef(api_group="rbac.authorization.k8s.io", kind="Role",
                                                                                  name="deployer"),
        subjects=[client.RbacV1Subject(kind="Group", name="release-team", api_group="rbac.authorization.k8s.io")]))

    def may(groups, verb, namespace="demo"):
        return authz.create_subject_access_review(client.V1SubjectAccessReview(spec=client.V1SubjectAccessReviewSpec(
            user="bob", groups=groups, resource_attributes=client.V1ResourceAttributes(
                verb=verb, group="apps", resource="deployments", namespace=namespace)))).status.allowed

    assert may(["release-team"], "update") is True
    assert may([], "update") is False and may(["release-team"], "delete") is False and may(["release-team"], "get", "default") is False
    viewer = client.AuthorizationV1Api(config.new_client_from_config_dict(sandbox.kubeconfig(sandbox_cluster.name, readonly=True)))
    with pytest.raises(ApiException) as exc:
        viewer.create_subject_access_review(client.V1SubjectAccessReview(spec=client.V1SubjectAccessReviewSpec(
            user="bob", resource_attributes=client.V1ResourceAttributes(verb="get", resource="pods"))))
    assert exc.value.status == 403 and status_of(exc.value)["reason"] == "Forbidden"
    token = sandbox_cluster.add_user("carol", ["release-team"])
    kubeconfig = sandbox.kubeconfig(sandbox_cluster.name)
    kubeconfig["users"][0]["user"]["token"] = token
    carol = client.AuthorizationV1Api(config.new_client_from_config_dict(kubeconfig))
    rules = carol.create_self_subject_rules_review(client.V1SelfSubjectRulesReview(
        spec=client.V1SelfSubjectRulesReviewSpec(namespace="demo"))).status
    assert {"deployments"} in [set(r.resources) for r in rules.resource_rules] and rules.incomplete is False
    assert not any("deployments" in r.resources for r in carol.create_self_subject_rules_review(client.V1SelfSubjectRulesReview(
        spec=client.V1SelfSubjectRulesReviewSpec(namespace="default"))).status.resource_rules)


def test_discovery_lists_the_reviews_and_openapi_names_each_kind(kube, sandbox, sandbox_cluster, sandbox_http):
    resources = {r.name: r.verbs for r in client.AuthorizationV1Api(kube).get_api_resources().resources}
    assert resources == {"selfsubjectaccessreviews": ["create"], "selfsubjectrulesreviews": ["create"],
                         "subjectaccessreviews": ["create"], "localsubjectaccessreviews": ["create"]}
    base = sandbox.server_url(sandbox_cluster.name)
    headers = {"Authorization": f"Bearer {sandbox_cluster.token}"}
    root = sandbox_http.get(f"{base}/openapi/v3", headers=headers).json()["paths"]
    assert root["apis/apps/v1"]["serverRelativeURL"].startswith("/openapi/v3/apis/apps/v1?hash=")
    apps = sandbox_http.get(f"{base}/openapi/v3/apis/apps/v1", headers=headers).json()
    patch = apps["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"]
    assert patch["x-kubernetes-group-version-kind"] == {"group": "apps", "version": "v1", "kind": "Deployment"}
    assert "fieldValidation" in [p["name"] for p in patch["parameters"]]
    assert sandbox_http.get(f"{base}/openapi/v3/apis/nope/v1", headers=headers).status_code == 404


# ---- service accounts, bootstrap RBAC, bodies, scale, leases, pod IPs ------------------------------


def test_subject_access_review_knows_service_accounts_and_asks_about_the_groups_named(kube, sandbox_cluster):
    rbac, authz = client.RbacAuthorizationV1Api(kube), client.AuthorizationV1Api(kube)
    rbac.create_namespaced_role_binding("demo", client.V1RoleBinding(
        metadata=client.V1ObjectMeta(name="bot-views"), role_ref=client.V1RoleRef(api_group="rbac.authorization.k8s.io",
                                                                                   kind="ClusterRole", name="view"),
        subjects=[client.RbacV1Subject(kind="ServiceAccount", name="bot")]))  # no namespace: the binding's

    def may(user, groups=None, verb="list", namespace="demo"):
        return authz.create_subject_access_review(client.V1SubjectAccessReview(spec=client.V1SubjectAccessReviewSpec(
            user=user, groups=groups, resource_attributes=client.V1ResourceAttributes(
                verb=verb, group="apps", resource="deployments", namespace=namespace)))).status.allowed

    assert may("system:serviceaccount:demo:bot") is True
    assert may("system:serviceaccount:other:bot") is False and may("system:serviceaccount:demo:bot", verb="delete") is False
    assert may("bot") is False  # a user called bot is not the service account
    rbac.create_cluster_role_binding(client.V1ClusterRoleBinding(
        metadata=client.V1ObjectMeta(name="authenticated-views"), role_ref=client.V1RoleRef(
            api_group="rbac.authorization.k8s.io", kind="ClusterRole", name="view"),
        subjects=[client.RbacV1Subject(kind="Group", name="system:authenticated", api_group="rbac.authorization.k8s.io")]))
    # A review asks about exactly the groups it names, as kube-apiserver's does.
    assert may("dave", namespace="default") is False and may("dave", ["system:authenticated"], namespace="default") is True


def test_impersonating_a_service_account_needs_impersonate_on_it(sandbox, sandbox_cluster, sandbox_http):
    base = sandbox.server_url(sandbox_cluster.name)
    token = sandbox_cluster.add_user("impersonator")
    headers = {"Authorization": f"Bearer {token}", "Impersonate-User": "system:serviceaccount:demo:bot"}
    refused = sandbox_http.get(f"{base}/api/v1/namespaces/demo/pods", headers=headers)
    assert refused.status_code == 403 and refused.json()["message"] == (
        'serviceaccounts "bot" is forbidden: User "impersonator" cannot impersonate resource "serviceaccounts" in API group "" '
        'in the namespace "demo"')
    sandbox_cluster.create("roles", {"metadata": {"name": "be-bot"}, "rules": [
        {"apiGroups": [""], "resources": ["serviceaccounts"], "verbs": ["impersonate"], "resourceNames": ["bot"]}]}, "demo")
    sandbox_cluster.create("rolebindings", {"metadata": {"name": "be-bot"}, "subjects": [{"kind": "User", "name": "impersonator"}],
                                            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "be-bot"}},
                           "demo")
    sandbox_cluster.create("clusterrolebindings", {"metadata": {"name": "sa-read-pods"}, "subjects": [
        {"kind": "Group", "name": "system:serviceaccounts:demo"}], "roleRef": {"apiGroup": "rbac.authorization.k8s.io",
                                                                               "kind": "ClusterRole", "name": "view"}})
    assert sandbox_http.get(f"{base}/api/v1/namespaces/demo/pods", headers=headers).status_code == 200
    denied = sandbox_http.get(f"{base}/api/v1/namespaces/demo/pods", headers={**headers, "Impersonate-Group": "devs"})
    assert denied.status_code == 403  # it may not impersonate the group devs either


def test_bootstrap_roles_are_there_from_the_start(sandbox):
    cluster = sandbox.add_cluster("bare", populate=False)
    try:
        roles = {r["metadata"]["name"]: r for r in cluster.items("clusterroles")}
        assert {"cluster-admin", "admin", "edit", "view", "system:basic-user", "system:discovery", "system:public-info-viewer"} <= set(roles)
        assert all(r["metadata"]["labels"]["kubernetes.io/bootstrapping"] == "rbac-defaults" for r in roles.values())
        view, edit, admin = ({tuple(map(tuple, (r["apiGroups"], r["resources"], r["verbs"]))) for r in roles[n]["rules"]}
                             for n in ("view", "edit", "admin"))
        assert view < edit < admin  # aggregated: admin ⊇ edit ⊇ view
        assert not any("secrets" in r[1] for r in view) and any("secrets" in r[1] for r in edit)
        assert cluster.may("anyone", "create", "selfsubjectaccessreviews", "authorization.k8s.io")  # system:basic-user
        assert cluster.may("anyone", "get", path="/version") and not cluster.may("anyone", "get", path="/metrics")
        assert not cluster.may("anyone", "create", "selfsubjectaccessreviews", "authorization.k8s.io", groups=[])
    finally:
        sandbox.remove_cluster("bare")


def _pb(number: int, payload: bytes) -> bytes:
    return bytes([number << 3 | 2, len(payload)]) + payload  # payloads here are shorter than 128 bytes


def test_request_bodies_in_protobuf_yaml_or_an_unknown_type(sandbox, sandbox_cluster, sandbox_http):
    url = f"{sandbox.server_url(sandbox_cluster.name)}/api/v1/namespaces/default/configmaps"
    headers = {"Authorization": f"Bearer {sandbox_cluster.token}"}

    def post(body: bytes, content_type: str):
        return sandbox_http.post(url, content=body, headers={**headers, "Content-Type": content_type})

    def configmap(raw: bytes, kind: bytes = b"ConfigMap") -> bytes:
        return b"k8s\x00" + _pb(1, _pb(1, b"v1") + _pb(2, kind)) + _pb(2, raw)

    entry = _pb(1, b"k") + _pb(2, b"v")
    created = post(configmap(_pb(1, _pb(1, b"pb")) + _pb(2, entry) + bytes([4 << 3, 0])), "application/vnd.kubernetes.protobuf")
    assert created.status_code == 201, created.text
    stored = sandbox_cluster.get("configmaps", "default", "pb")
    assert stored["data"] == {"k": "v"} and stored["immutable"] is False  # a pointer's false (*bool in Go) is kept
    unknown = post(configmap(_pb(1, _pb(1, b"x")) + _pb(9, b"?")), "application/vnd.kubernetes.protobuf")
    assert unknown.status_code == 415 and unknown.json()["reason"] == "UnsupportedMediaType"
    assert "field 9 of k8s.io.api.core.v1.ConfigMap" in unknown.json()["message"]
    assert post(configmap(b"", b"Widget"), "application/vnd.kubernetes.protobuf").status_code == 415
    broken = post(b'{"metadata": {"name": "x"}}', "application/vnd.kubernetes.protobuf")
    assert broken.status_code == 400 and broken.json()["reason"] == "BadRequest"
    assert post(b"metadata: {name: from-yaml}\ndata: {a: b}\n", "application/yaml").status_code == 201
    assert sandbox_cluster.get("configmaps", "default", "from-yaml")["data"] == {"a": "b"}
    other = post(b"name=x", "application/x-www-form-urlencoded")
    assert other.status_code == 415 and other.json()["message"].startswith("the body of the request was in an unknown format")


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


def test_openapi_v2_is_served_without_schemas(sandbox, sandbox_cluster, sandbox_http):
    url = f"{sandbox.server_url(sandbox_cluster.name)}/openapi/v2"
    headers = {"Authorization": f"Bearer {sandbox_cluster.token}"}
    assert sandbox_http.get(url, headers=headers).json() == {
        "swagger": "2.0", "info": {"title": "Kubernetes", "version": "v1.30.4"}, "paths": {}, "definitions": {}}
    proto = sandbox_http.get(url, headers={**headers, "Accept": "application/com.github.proto-openapi.spec.v2@v1.0+protobuf"})
    assert proto.headers["content-type"] == "application/com.github.proto-openapi.spec.v2.v1.0+protobuf"
    assert proto.content.startswith(b"\n\x032.0\x12") and b"Kubernetes" in proto.content


def test_kubelets_renew_node_leases(sandbox_cluster):
    node = f"{sandbox_cluster.name}-w-2"
    lease = sandbox_cluster.get("leases", "kube-node-lease", node)
    assert lease["spec"]["holderIdentity"] == node and lease["spec"]["leaseDurationSeconds"] == 40
    assert lease["metadata"]["ownerReferences"][0]["uid"] == sandbox_cluster.get("nodes", "", node)["metadata"]["uid"]
    time.sleep(0.01)
    sandbox_cluster.heartbeat()
    renewed = sandbox_cluster.get("leases", "kube-node-lease", node)["spec"]["renewTime"]
    assert renewed > lease["spec"]["renewTime"] and renewed.endswith("Z") and "." in renewed  # a MicroTime
    sandbox_cluster.upgrade_node(node, "1.31.2", delay=60)  # its kubelet is being replaced: no renewals
    sandbox_cluster.heartbeat()
    assert sandbox_cluster.get("leases", "kube-node-lease", node)["spec"]["renewTime"] == renewed
    sandbox_cluster.delete("nodes", "", node)
    assert sandbox_cluster.get("leases", "kube-node-lease", node) is None  # gone with its node


def test_pods_get_addresses_from_their_nodes_pod_cidr(kube, sandbox_cluster):
    nodes = {n["metadata"]["name"]: n for n in sandbox_cluster.items("nodes")}
    cidrs = [n["spec"]["podCIDR"] for n in nodes.values()]
    assert len(set(cidrs)) == len(cidrs) and "10.244.1.0/24" == nodes[f"{sandbox_cluster.name}-cp-1"]["spec"]["podCIDR"]
    running = [p for p in sandbox_cluster.items("pods") if p["status"].get("phase") == "Running"]
    for pod in running:
        node = nodes[pod["spec"]["nodeName"]]
        ip = pod["status"]["podIP"]
        assert pod["status"]["podIPs"] == [{"ip": ip}]
        if pod["spec"].get("hostNetwork"):
            assert ip == pod["status"]["hostIP"] == node["status"]["addresses"][0]["address"]
        else:
            assert ipaddress.ip_address(ip) in ipaddress.ip_network(node["spec"]["podCIDR"]) and not ip.endswith((".0", ".1"))
    addresses = [p["status"]["podIP"] for p in running if not p["spec"].get("hostNetwork")]
    assert len(set(addresses)) == len(addresses)
    added = sandbox_cluster.add_node("late")
    assert added["spec"]["podCIDR"] not in cidrs
