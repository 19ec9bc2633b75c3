"""What the sandbox fills in, as kube-apiserver does, and how it fails: always with a Status.

A minimal manifest (what ``kubectl create`` of a hand-written file sends) must come back
with the fields a real server adds, must not upset the simulated controllers and
kubelets, and an unexpected error anywhere must answer 500 with a ``Status`` on a
connection that stays usable.
"""

from __future__ import annotations

import http.client
import json

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from sandbox import Sandbox
from tests.support.waits import wait_for


def meta(name: str, **kwargs) -> client.V1ObjectMeta:
    return client.V1ObjectMeta(name=name, **kwargs)


@pytest.fixture
def raw(sandbox, sandbox_cluster, sandbox_http):
    """The stored JSON at an API path (the client's typed models would hide what is absent)."""
    def get(path: str) -> dict:
        response = sandbox_http.get(sandbox.server_url(sandbox_cluster.name) + path,
                                    headers={"Authorization": f"Bearer {sandbox_cluster.token}"})
        assert response.status_code == 200, response.text
        return response.json()

    return get


def test_a_node_sent_with_metadata_only_is_filled_in_and_the_cluster_carries_on(kube, sandbox_cluster, raw):
    v1 = client.CoreV1Api(kube)
    made = v1.create_node(client.V1Node(metadata=meta("bare-node")))
    assert made.metadata.uid and made.metadata.creation_timestamp and made.metadata.resource_version
    stored = raw("/api/v1/nodes/bare-node")
    assert stored["spec"] == {}
    assert stored["status"]["daemonEndpoints"] == {"kubeletEndpoint": {"Port": 0}}
    assert stored["status"]["nodeInfo"]["kubeletVersion"] == ""
    # The controllers, scheduler and kubelets still work with it in the cluster.
    assert "bare-node" in [n.metadata.name for n in v1.list_node().items]
    assert client.VersionApi(kube).get_code().git_version == "v1.30.4"
    apps = client.AppsV1Api(kube)
    apps.create_namespaced_deployment("default", client.V1Deployment(metadata=meta("after"), spec=client.V1DeploymentSpec(
        selector=client.V1LabelSelector(match_labels={"app": "after"}),
        template=client.V1PodTemplateSpec(metadata=meta(None, labels={"app": "after"}),
                                          spec=client.V1PodSpec(containers=[client.V1Container(name="c", image="nginx:1.27")])))))
    wait_for(lambda: apps.read_namespaced_deployment("after", "default").status.ready_replicas == 1, what="the deployment to run")
    assert all(p.spec.node_name != "bare-node" for p in v1.list_namespaced_pod("default").items)  # a node with no kubelet is not Ready
    v1.patch_node("bare-node", {"spec": {"unschedulable": True}})
    v1.delete_node("bare-node")
    assert list(sandbox_cluster.store.controller_errors) == []


def test_pod_defaults(kube, sandbox_cluster, raw):
    v1 = client.CoreV1Api(kube)
    v1.create_namespaced_pod("default", client.V1Pod(metadata=meta("solo"), spec=client.V1PodSpec(containers=[
        client.V1Container(name="pinned", image="busybox:1.36"), client.V1Container(name="floating", image="busybox")])))
    pod = raw("/api/v1/namespaces/default/pods/solo")
    spec = pod["spec"]
    assert (spec["restartPolicy"], spec["dnsPolicy"], spec["schedulerName"], spec["terminationGracePeriodSeconds"]) == (
        "Always", "ClusterFirst", "default-scheduler", 30)
    assert spec["serviceAccountName"] == "default" and spec["securityContext"] == {} and spec["enableServiceLinks"] is True
    pinned, floating = spec["containers"]
    assert pinned["terminationMessagePath"] == "/dev/termination-log" and pinned["terminationMessagePolicy"] == "File"
    assert pinned["imagePullPolicy"] == "IfNotPresent" and floating["imagePullPolicy"] == "Always"
    assert pod["metadata"]["generation"] == 1 and pod["status"]["qosClass"] == "BestEffort"
    wait_for(lambda: v1.read_namespaced_pod("solo", "default").status.phase == "Running", what="the pod to run")


def test_guaranteed_and_burstable_pods(kube):
    v1 = client.CoreV1Api(kube)
    equal = client.V1ResourceRequirements(limits={"cpu": "100m", "memory": "64Mi"})
    asked = client.V1ResourceRequirements(requests={"cpu": "100m"})
    for name, resources in (("guaranteed", equal), ("burstable", asked)):
        v1.create_namespaced_pod("default", client.V1Pod(metadata=meta(name), spec=client.V1PodSpec(
            containers=[client.V1Container(name="c", image="busybox:1.36", resources=resources)])))
    assert v1.read_namespaced_pod("guaranteed", "default").status.qos_class == "Guaranteed"
    assert v1.read_namespaced_pod("burstable", "default").status.qos_class == "Burstable"


def test_workload_defaults_come_back_on_an_update_that_leaves_them_out(kube, sandbox_cluster, raw):
    apps = client.AppsV1Api(kube)
    body = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
            "spec": {"selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}},
                                  "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]}}}}
    apps.create_namespaced_deployment("default", body)
    stored = raw("/apis/apps/v1/namespaces/default/deployments/web")
    assert stored["spec"]["replicas"] == 1 and stored["spec"]["revisionHistoryLimit"] == 10
    assert stored["spec"]["progressDeadlineSeconds"] == 600
    assert stored["spec"]["strategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}}
    template = stored["spec"]["template"]["spec"]
    assert template["restartPolicy"] == "Always" and template["containers"][0]["imagePullPolicy"] == "IfNotPresent"
    replicasets = {rs.metadata.name for rs in apps.list_namespaced_replica_set("default").items}
    # A PUT of the object as first written (no defaults): the server defaults it again, the template is unchanged.
    apps.replace_namespaced_deployment("web", "default", body)
    again = raw("/apis/apps/v1/namespaces/default/deployments/web")
    assert again["spec"] == stored["spec"] and again["metadata"]["generation"] == stored["metadata"]["generation"]
    assert {rs.metadata.name for rs in apps.list_namespaced_replica_set("default").items} == replicasets
    assert list(sandbox_cluster.store.controller_errors) == []


@pytest.mark.parametrize(("rules", "types"), [
    ({}, ["Ingress"]),
    ({"ingress": [{}]}, ["Ingress"]),
    ({"egress": [{"to": [{"ipBlock": {"cidr": "10.0.0.0/8"}}]}]}, ["Ingress", "Egress"]),
])
def test_network_policy_types_are_derived_when_left_out(kube, rules, types):
    net = client.NetworkingV1Api(kube)
    made = net.create_namespaced_network_policy("default", {"metadata": {"name": "policy"}, "spec": {"podSelector": {}, **rules}})
    assert made.spec.policy_types == types
    updated = net.replace_namespaced_network_policy("policy", "default", {
        "metadata": {"name": "policy"}, "spec": {"podSelector": {}, "egress": [{}]}})
    assert updated.spec.policy_types == ["Ingress", "Egress"]  # derived again on update, as a real server does


def test_service_defaults(kube, raw):
    v1 = client.CoreV1Api(kube)
    v1.create_namespaced_service("default", client.V1Service(metadata=meta("svc"), spec=client.V1ServiceSpec(
        ports=[client.V1ServicePort(port=80)])))
    spec = raw("/api/v1/namespaces/default/services/svc")["spec"]
    assert spec["type"] == "ClusterIP" and spec["sessionAffinity"] == "None" and spec["clusterIPs"] == [spec["clusterIP"]]
    assert spec["ports"] == [{"port": 80, "protocol": "TCP", "targetPort": 80}]
    assert spec["ipFamilies"] == ["IPv4"] and spec["internalTrafficPolicy"] == "Cluster"


def test_kinds_without_spec_get_none_and_bindings_get_their_subjects_api_group(kube, raw):
    v1, rbac = client.CoreV1Api(kube), client.RbacAuthorizationV1Api(kube)
    v1.create_namespaced_config_map("default", client.V1ConfigMap(metadata=meta("cfg")))
    stored = raw("/api/v1/namespaces/default/configmaps/cfg")
    assert "spec" not in stored and "status" not in stored and "generation" not in stored["metadata"]
    rbac.create_namespaced_role_binding("default", client.V1RoleBinding(
        metadata=meta("b"), role_ref=client.V1RoleRef(api_group="rbac.authorization.k8s.io", kind="ClusterRole", name="view"),
        subjects=[client.RbacV1Subject(kind="User", name="alice")]))
    assert rbac.read_namespaced_role_binding("b", "default").subjects[0].api_group == "rbac.authorization.k8s.io"


def test_a_body_of_the_wrong_shape_is_400_and_bad_values_422(kube, sandbox, sandbox_cluster, sandbox_http):
    v1 = client.CoreV1Api(kube)
    # The client's models refuse such a body, so send the JSON as another client would.
    response = sandbox_http.post(f"{sandbox.server_url(sandbox_cluster.name)}/api/v1/namespaces/default/configmaps",
                                 json={"metadata": {"name": "x", "labels": ["not", "a", "map"]}},
                                 headers={"Authorization": f"Bearer {sandbox_cluster.token}"})
    body = response.json()
    assert response.status_code == 400 and body["kind"] == "Status" and "cannot unmarshal array" in body["message"]
    with pytest.raises(ApiException) as exc:
        v1.create_namespaced_config_map("default", {"metadata": {"name": "x", "labels": {"bad key!": "v"}}})
    assert exc.value.status == 422 and json.loads(exc.value.body)["details"]["causes"][0]["field"] == "metadata.labels"
    with pytest.raises(ApiException) as exc:
        v1.create_namespaced_pod("default", {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c"}]}})
    assert exc.value.status == 422 and "spec.containers[0].image: Required value" in json.loads(exc.value.body)["message"]


def test_an_unexpected_error_is_a_500_status_on_a_connection_that_stays_open(sandbox, sandbox_cluster, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("the simulation tripped")

    monkeypatch.setattr(sandbox_cluster, "create", broken)
    authority = sandbox.client_ssl_context()
    connection = http.client.HTTPSConnection("127.0.0.1", sandbox.port, context=authority, timeout=10)
    headers = {"Authorization": f"Bearer {sandbox_cluster.token}", "Content-Type": "application/json"}
    prefix = f"/c/{sandbox_cluster.name}"
    try:
        connection.request("POST", f"{prefix}/api/v1/namespaces/default/configmaps", body=json.dumps({"metadata": {"name": "x"}}),
                           headers=headers)
        response = connection.getresponse()
        body = json.loads(response.read())
        assert response.status == 500 and body["kind"] == "Status" and body["reason"] == "InternalError"
        assert "RuntimeError: the simulation tripped" in body["message"]
        connection.request("GET", f"{prefix}/api/v1/namespaces/default/configmaps", headers=headers)  # the same connection
        again = connection.getresponse()
        assert again.status == 200 and json.loads(again.read())["kind"] == "ConfigMapList"
    finally:
        connection.close()


def test_kube_system_uid_depends_on_seed_and_name_only():
    """pksweb takes a cluster's identity from it: a restarted sandbox must be the same cluster, another one not."""
    def uid(seed: int, name: str, **options) -> str:
        cluster = Sandbox(seed=seed, tls=False).add_cluster(name, **options)
        if not options.get("populate", True):  # made by hand, in another order, after other objects
            cluster.create("namespaces", {"metadata": {"name": "other"}})
            cluster.create("configmaps", {"metadata": {"name": "first"}}, "other")
            cluster.create("namespaces", {"metadata": {"name": "kube-system"}})
        return cluster.get("namespaces", "", "kube-system")["metadata"]["uid"]

    first = uid(1, "sandbox-1", nodes=5)
    assert uid(1, "sandbox-1", nodes=2, pods_per_node=0) == first
    assert uid(1, "sandbox-1", populate=False) == first
    assert len({first, uid(2, "sandbox-1"), uid(1, "sandbox-2")}) == 3


def test_a_watch_that_fails_midway_ends_with_an_error_event(kube, sandbox, sandbox_cluster, sandbox_http, monkeypatch):
    from sandbox import tables

    def broken(*args, **kwargs):
        raise RuntimeError("no table today")

    monkeypatch.setattr(tables, "table", broken)
    url = f"{sandbox.server_url(sandbox_cluster.name)}/api/v1/namespaces/kube-system/pods"
    with sandbox_http.stream("GET", url, params={"watch": "true", "timeoutSeconds": "5"},
                             headers={"Authorization": f"Bearer {sandbox_cluster.token}",
                                      "Accept": "application/json;as=Table;v=v1;g=meta.k8s.io"}) as response:
        events = [json.loads(line) for line in response.iter_lines() if line]
    assert events[-1]["type"] == "ERROR" and events[-1]["object"]["code"] == 500
    assert "RuntimeError: no table today" in events[-1]["object"]["message"]
    assert client.CoreV1Api(kube).list_namespaced_pod("kube-system").items  # and the server carries on
