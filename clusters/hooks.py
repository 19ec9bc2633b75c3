"""Where the apps above clusters plug in: clusters imports neither tenants nor upgrades.

Each app registers its part in its ``AppConfig.ready()``:

- upgrades hears when a cluster's upgrade inputs change (``on_execution_change``), claims clusters while a
  rollout runs on them (``on_busy_check``) and says which clusters a rollout is upgrading (``on_upgrading``,
  a badge on the fleet page);
- tenants says which tenant a node is dedicated to (``on_node_owners``) and which tenants a node could be
  given to (``on_node_assignable``), both shown on the cluster page.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from django.core.exceptions import ValidationError

if TYPE_CHECKING:
    from clusters.models import Cluster, ClusterNode
    from pksweb.types import AnyUser

ExecutionListener = Callable[["Cluster", list[str], "AnyUser | None"], None]
BusyCheck = Callable[["Cluster", "str | None"], str]


@dataclass(frozen=True)
class NodeOwner:
    """The tenant a node is dedicated to, and what the node lacks of that dedication as the last probe saw it
    (its ``label``, its ``taint``: changed with kubectl, the assignment no longer holds)."""

    tenant: str
    missing: tuple[str, ...] = ()


class Assignee(Protocol):
    """Someone a node can be given to (a tenant): the page lists them by name and posts the id."""

    @property
    def pk(self) -> int: ...

    @property
    def name(self) -> str: ...


NodeOwners = Callable[["Cluster", list["ClusterNode"]], dict[str, NodeOwner]]
NodeAssignable = Callable[["Cluster"], Iterable[Assignee]]
Upgrading = Callable[[], dict[int, int]]

_execution_listeners: list[ExecutionListener] = []
_busy_checks: list[BusyCheck] = []
_node_owners: list[NodeOwners] = []
_node_assignable: list[NodeAssignable] = []
_upgrading: list[Upgrading] = []


def on_execution_change(listener: ExecutionListener) -> ExecutionListener:
    """Register ``listener(cluster, changed, by)``, called inside the transaction of the change when what
    decides how the cluster is upgraded changes (``cluster_update``: the labels of the driver, command argv,
    server or TLS trust that changed) or the cluster leaves pksweb (``cluster_delete``: ``[REMOVED]``). The
    upgrades app registers here to void approvals bound to the old inputs: the voiding must commit with the change."""
    if listener not in _execution_listeners:
        _execution_listeners.append(listener)
    return listener


def execution_changed(cluster: Cluster, changed: list[str], by: AnyUser | None) -> None:
    """Tell every listener that ``changed`` inputs of ``cluster`` changed (inside the caller's transaction)."""
    for listener in _execution_listeners:
        listener(cluster, changed, by)


def on_busy_check(check: BusyCheck) -> BusyCheck:
    """Register ``check(cluster, node)``: why the cluster (``node=None``: to be removed) or one of its nodes (for a
    manual operation) must be left alone right now, or ''. The upgrades app registers the rollouts' claim:
    while a rollout runs on a cluster, it owns the cluster's nodes."""
    if check not in _busy_checks:
        _busy_checks.append(check)
    return check


def busy(cluster: Cluster, node: str | None) -> str:
    """Why ``cluster`` (or its ``node``) must be left alone now, or ''."""
    return next((reason for check in _busy_checks if (reason := check(cluster, node))), "")


def node_left_alone(cluster: Cluster, node: str) -> None:
    """Refuse, on the ``node`` field, any change to a node that something else owns now (a running rollout):
    a manual operation, giving it to a tenant or taking it back all say the same."""
    reason = busy(cluster, node)
    if reason:
        raise ValidationError({"node": reason})


def on_node_owners(source: NodeOwners) -> NodeOwners:
    """Register ``source(cluster, nodes)``: node name -> its ``NodeOwner``, for the nodes that have one (the
    tenants app: dedicated nodes). One source; registering again replaces it."""
    _node_owners[:] = [source]
    return source


def node_owners(cluster: Cluster, nodes: list[ClusterNode]) -> dict[str, NodeOwner]:
    return _node_owners[0](cluster, nodes) if _node_owners else {}


def on_node_assignable(source: NodeAssignable) -> NodeAssignable:
    """Register ``source(cluster)``: who a node of ``cluster`` can be given to (the tenants app: its
    dedicated-nodes tenants on the cluster). One source; registering again replaces it."""
    _node_assignable[:] = [source]
    return source


def node_assignable(cluster: Cluster) -> Iterable[Assignee]:
    return _node_assignable[0](cluster) if _node_assignable else ()


def on_upgrading(source: Upgrading) -> Upgrading:
    """Register ``source()``: cluster id -> the id of the active rollout upgrading it (the upgrades app).
    One source; registering again replaces it."""
    _upgrading[:] = [source]
    return source


def upgrading() -> dict[int, int]:
    return _upgrading[0]() if _upgrading else {}
