"""What tenants adds to the cluster pages (registered with ``clusters.hooks`` in the app's ready()):
the tenant each dedicated node is given to, and the tenants a node could be given to."""

from __future__ import annotations

from collections.abc import Iterable

from clusters.hooks import Assignee, NodeOwner
from clusters.models import Cluster, ClusterNode
from tenants.bundle import dedication_missing
from tenants.selectors import assignable_tenants, node_tenants


def node_owners(cluster: Cluster, nodes: list[ClusterNode]) -> dict[str, NodeOwner]:
    """Node name -> the tenant it is assigned to, with what the last probe saw missing of the assignment on the
    node itself (changed with kubectl, it no longer holds)."""
    owners = node_tenants(cluster=cluster)
    return {node.name: NodeOwner(owners[node.name], tuple(dedication_missing(owners[node.name], node.labels, node.taints)))
            for node in nodes if owners.get(node.name)}


def node_assignable(cluster: Cluster) -> Iterable[Assignee]:
    """The dedicated-nodes tenants a node of ``cluster`` can be given to."""
    return assignable_tenants(cluster=cluster)
