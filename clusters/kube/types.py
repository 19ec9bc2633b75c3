"""What the gateway answers: pksweb's shapes of nodes, pods, events, probes and evictions.

The rules that read a node (its pressures, whether it is a control-plane node) are written here once;
``clusters.models.ClusterNode`` (a node as the last probe saw it) asks them too.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from clusters.kube.errors import KubeError

PRESSURE = ("MemoryPressure", "DiskPressure", "PIDPressure", "NetworkUnavailable")
CONTROL_PLANE_ROLES = frozenset({"control-plane", "master"})


def pressures(conditions: Mapping[str, str]) -> list[str]:
    """The pressure conditions a node reports as ``True`` (``conditions``: type -> "True"/"False"/"Unknown")."""
    return [c for c in PRESSURE if conditions.get(c) == "True"]


def is_control_plane(roles: Iterable[str]) -> bool:
    """Whether a node with these roles (from its ``node-role.kubernetes.io/*`` labels) runs the control plane."""
    return not CONTROL_PLANE_ROLES.isdisjoint(roles)


@dataclass
class NodeInfo:
    name: str
    roles: list[str]
    kubelet_version: str
    ready: bool | None
    conditions: dict[str, str]  # type -> "True"/"False"/"Unknown"
    unschedulable: bool
    taints: list[str]
    labels: dict[str, str]
    ready_message: str = ""

    @property
    def pressures(self) -> list[str]:
        return pressures(self.conditions)

    @property
    def is_control_plane(self) -> bool:
        return is_control_plane(self.roles)


@dataclass
class PodInfo:
    namespace: str
    name: str
    phase: str
    ready: bool
    owner_kind: str
    owner_name: str
    mirror: bool
    terminating: bool
    node: str = ""

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass
class EventInfo:
    namespace: str
    type: str
    reason: str
    message: str
    object: str
    last_seen: datetime | None


@dataclass
class ProbeResult:
    """What one health probe saw. ``error`` set means the API could not be reached."""

    version: str = ""
    ready: bool = False
    failed_checks: list[str] = field(default_factory=list)
    nodes: list[NodeInfo] = field(default_factory=list)
    system_problems: list[str] = field(default_factory=list)
    warnings: list[EventInfo] = field(default_factory=list)
    error: KubeError | None = None
    latency_ms: float = 0.0
    identity: str = ""  # the kube-system namespace's UID, when asked for


@dataclass(frozen=True)
class Expectation:
    """What a cluster looked like at its last probe, to notice when a credential reaches another one."""

    version: str = ""
    nodes: frozenset[str] = frozenset()

    def differs(self, version: str, nodes: list[str]) -> bool:
        if self.version and version.lstrip("v") != self.version.lstrip("v"):
            return True
        return bool(self.nodes) and bool(nodes) and not (self.nodes & set(nodes))


@dataclass
class Eviction:
    """How one eviction went: ``evicted``, ``gone`` (already deleted) or ``blocked`` (by a PDB)."""

    outcome: str
    budget: str = ""
    message: str = ""
