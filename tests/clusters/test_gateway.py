"""The gateway's ordinary operations that no page reaches directly: annotations, and reads it makes itself."""

from __future__ import annotations

import pytest

from clusters.kube import Credential, Gateway, KubeError, NodeInfo
from clusters.kube.types import is_control_plane, pressures
from clusters.models import ClusterNode


@pytest.fixture
def gateway(sandbox, sandbox_cluster):
    return Gateway(Credential.from_dict(sandbox.credential(sandbox_cluster.name)))


def _annotations(sandbox_cluster, node: str) -> dict[str, str]:
    return sandbox_cluster.get("nodes", "", node)["metadata"].get("annotations") or {}


def test_annotate_node_sets_and_removes_keys(gateway, sandbox_cluster):
    node = gateway.nodes()[-1].name
    info = gateway.annotate_node(node, {"example.io/a": "1", "example.io/b": "2"})
    assert info.name == node
    assert {"example.io/a": "1", "example.io/b": "2"}.items() <= _annotations(sandbox_cluster, node).items()
    gateway.annotate_node(node, {"example.io/a": None})
    after = _annotations(sandbox_cluster, node)
    assert "example.io/a" not in after and after["example.io/b"] == "2"


def test_annotating_a_missing_node_is_a_not_found_error(gateway):
    with pytest.raises(KubeError) as missing:
        gateway.annotate_node("no-such-node", {"example.io/a": "1"})
    assert missing.value.kind == "not_found"


def test_raw_reads_count_and_list_through_one_door(gateway, sandbox_cluster):
    assert gateway.readyz() == (True, [])
    assert gateway.count_stored("v1", "nodes") == len(gateway.nodes())
    assert gateway.count_stored("example.io/v1", "widgets") == 0  # not served: nothing to count
    assert {p["metadata"]["name"] for p in gateway.pods_raw()} == {p.name for p in gateway.pods_all()}
    assert sum(gateway.pod_counts().values()) <= len(gateway.pods_all())


@pytest.mark.parametrize(("roles", "conditions", "control_plane", "pressed"), [
    (["control-plane"], {"MemoryPressure": "True", "Ready": "True"}, True, ["MemoryPressure"]),
    (["master", "worker"], {}, True, []),
    (["worker"], {"DiskPressure": "True", "PIDPressure": "False", "NetworkUnavailable": "True"}, False,
     ["DiskPressure", "NetworkUnavailable"]),
])
def test_a_node_reads_the_same_live_and_as_recorded(roles, conditions, control_plane, pressed):
    """The rules are written once (clusters.kube.types): the gateway's NodeInfo and the recorded ClusterNode agree."""
    live = NodeInfo(name="n", roles=roles, kubelet_version="1.31.2", ready=True, conditions=conditions,
                    unschedulable=False, taints=[], labels={})
    recorded = ClusterNode(name="n", roles=roles, conditions=conditions)
    assert live.is_control_plane is recorded.is_control_plane is is_control_plane(roles) is control_plane
    assert live.pressures == recorded.pressures == pressures(conditions) == pressed
