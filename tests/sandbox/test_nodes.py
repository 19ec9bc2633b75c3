"""The sandbox's simulated kubelets: node upgrades (by the control endpoint, by the ``upgrade-to`` annotation),
node leases, pod addresses from the node's pod CIDR."""

from __future__ import annotations

import ipaddress
import time

import pytest
from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException

from tests.support.kube_api import core, status_of
from tests.support.waits import wait_for

UPGRADE_TO = "sandbox.pksweb.io/upgrade-to"


def ready_of(node) -> str:
    return next(c.status for c in node.status.conditions if c.type == "Ready")


# ---- node upgrades -------------------------------------------------------------------------


def test_node_upgrade_goes_not_ready_then_ready_at_new_version(kube, sandbox, sandbox_cluster, sandbox_http):
    v1 = core(kube)
    node = f"{sandbox_cluster.name}-w-2"
    response = sandbox_http.post(f"{sandbox.server_url(sandbox_cluster.name)}/sandbox/nodes/{node}/upgrade",
                          json={"version": "1.31.2", "delay": 0.3}, headers={"Authorization": f"Bearer {sandbox_cluster.token}"})
    assert response.status_code == 202
    assert ready_of(v1.read_node(node)) == "False"
    upgraded = wait_for(lambda: (n := v1.read_node(node)) and ready_of(n) == "True" and n, what="node back Ready")
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
    assert ready_of(core(kube).read_node(node)) == "False"


def test_upgrade_endpoint_refuses_bad_version(sandbox, sandbox_cluster, sandbox_http):
    response = sandbox_http.post(f"{sandbox.server_url(sandbox_cluster.name)}/sandbox/nodes/x/upgrade", json={"version": "latest"},
                          headers={"Authorization": f"Bearer {sandbox_cluster.token}"})
    assert response.status_code == 400 and "version must look like 1.31.2" in response.json()["message"]


# ---- node upgrades through the Kubernetes API: the upgrade-to annotation ------------------------------

def test_upgrade_to_annotation_replaces_the_kubelet_as_the_endpoint_does(kube, sandbox_cluster):
    v1 = core(kube)
    node = f"{sandbox_cluster.name}-w-2"
    start = v1.read_node(node)
    assert ready_of(start) == "True" and start.status.node_info.kubelet_version == "v1.30.4"
    seen = []  # (Ready, kubelet version, annotation there) of each version of the node, from before the patch on
    stream = watch.Watch().stream(v1.list_node, field_selector=f"metadata.name={node}",
                                  resource_version=start.metadata.resource_version, timeout_seconds=10)
    patched = v1.patch_node(node, {"metadata": {"annotations": {UPGRADE_TO: "v1.31.2"}}})
    assert patched.metadata.annotations[UPGRADE_TO] == "v1.31.2"
    for event in stream:
        n = event["object"]
        seen.append((ready_of(n), n.status.node_info.kubelet_version, UPGRADE_TO in (n.metadata.annotations or {})))
        if seen[-1] == ("True", "v1.31.2", False):
            break
    assert ("False", "v1.30.4", True) in seen  # NotReady while its kubelet is replaced, the request still there
    assert seen[-1] == ("True", "v1.31.2", False)  # back Ready at that version, the annotation removed
    assert client.VersionApi(kube).get_code().git_version == "v1.30.4"  # a worker: the control plane is unchanged
    reasons = [e.reason for e in v1.list_namespaced_event("default", field_selector=f"involvedObject.name={node}").items]
    assert reasons.count("NodeNotReady") == 1 and reasons.count("NodeReady") == 1  # one request, one replacement


def test_upgrade_to_annotation_by_update_moves_the_control_plane(kube, sandbox_cluster):
    v1 = core(kube)
    node = f"{sandbox_cluster.name}-cp-1"
    current = v1.read_node(node)
    current.metadata.annotations[UPGRADE_TO] = "1.31.2"  # with or without the v, as the endpoint takes it
    v1.replace_node(node, current)
    wait_for(lambda: client.VersionApi(kube).get_code().git_version == "v1.31.2", what="server version")
    upgraded = wait_for(lambda: (n := v1.read_node(node)) and ready_of(n) == "True" and n, what="node back Ready")
    assert upgraded.status.node_info.kubelet_version == "v1.31.2" and UPGRADE_TO not in upgraded.metadata.annotations
    assert v1.read_namespaced_pod(f"kube-apiserver-{node}", "kube-system").spec.containers[0].image.endswith(":v1.31.2")


def test_upgrade_to_annotation_refuses_what_is_not_a_version(kube, sandbox_cluster):
    v1 = core(kube)
    node = f"{sandbox_cluster.name}-w-1"
    for wrong in ("latest", "1.31", "v1.31.x", ""):
        with pytest.raises(ApiException) as exc:
            v1.patch_node(node, {"metadata": {"annotations": {UPGRADE_TO: wrong}}})
        body = status_of(exc.value)
        assert body["code"] == 422 and body["reason"] == "Invalid"
        assert body["details"]["causes"][0]["field"] == f"metadata.annotations[{UPGRADE_TO}]"
    kept = v1.read_node(node)
    assert ready_of(kept) == "True" and UPGRADE_TO not in kept.metadata.annotations


def test_upgrade_to_annotation_on_a_stuck_node_stays_until_asked_again(kube, sandbox_cluster):
    v1 = core(kube)
    node = f"{sandbox_cluster.name}-w-1"
    sandbox_cluster.faults.update({"stuck_nodes": [node]})
    v1.patch_node(node, {"metadata": {"annotations": {UPGRADE_TO: "1.31.2"}}})
    wait_for(lambda: ready_of(v1.read_node(node)) == "False", what="node NotReady")
    time.sleep(0.5)  # past the node's ready delay: a stuck kubelet never comes back
    stuck = v1.read_node(node)
    assert ready_of(stuck) == "False" and stuck.metadata.annotations[UPGRADE_TO] == "1.31.2"
    sandbox_cluster.heartbeat()  # other changes to the node do not ask again
    v1.patch_node(node, {"metadata": {"labels": {"touched": "yes"}}})
    sandbox_cluster.faults.clear()
    time.sleep(0.5)
    assert ready_of(v1.read_node(node)) == "False"
    v1.patch_node(node, {"metadata": {"annotations": {UPGRADE_TO: None}}})  # asked again: removed, then set
    v1.patch_node(node, {"metadata": {"annotations": {UPGRADE_TO: "1.31.2"}}})
    upgraded = wait_for(lambda: (n := v1.read_node(node)) and ready_of(n) == "True" and n, what="node back Ready")
    assert upgraded.status.node_info.kubelet_version == "v1.31.2" and UPGRADE_TO not in upgraded.metadata.annotations


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
