"""One simulated cluster: the door tests, the HTTP layer and the server use, and the seeding of a starting fleet.

The cluster is composed of parts that share one ``Store`` (objects, resourceVersions, watches and
the one lock everything runs under): ``Admission`` (tokens, RBAC, Pod Security, placement and
quota), ``Kubelets`` (nodes, pods starting, kubelets replaced), ``Scheduler`` and ``Controllers``.
``SandboxCluster`` builds them, wires what each adds to a write into the store (admission plugins,
reactions to a new object, the controllers that settle every change) and answers for them.
"""

from __future__ import annotations

import copy
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sandbox import bootstrap, errors
from sandbox.admission import Admission
from sandbox.controllers import Controllers
from sandbox.faults import Faults
from sandbox.kubelet import Kubelets, kubelet_version
from sandbox.matching import Predicate
from sandbox.resources import (
    CLUSTERROLEBINDINGS,
    CLUSTERROLES,
    DAEMONSETS,
    DEPLOYMENTS,
    NAMESPACES,
    NODES,
    PDBS,
    SERVICEACCOUNTS,
    SERVICES,
    STATEFULSETS,
    ResourceType,
)
from sandbox.scheduler import Scheduler
from sandbox.store import WATCH_LOG_SIZE, Obj, Store, Watcher, resource_type

SYSTEM_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")


def version_info(version: str) -> dict[str, str]:
    major, minor, *_ = version.lstrip("v").split(".")
    return {
        "major": major,
        "minor": minor,
        "gitVersion": f"v{version.lstrip('v')}",
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2024-01-01T00:00:00Z",
        "goVersion": "go1.22.5",
        "compiler": "gc",
        "platform": "linux/amd64",
    }


def version_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"[0-9]+", version)[:3])


@dataclass
class SandboxCluster:
    """A simulated cluster. Create with ``Sandbox.add_cluster``; reach into it in tests."""

    name: str
    version: str = "1.30.4"
    token: str = ""
    readonly_token: str = ""
    seed: int = 0
    pod_start_delay: float = 0.2
    node_ready_delay: float = 2.0
    namespace_finalize_delay: float = 0.3
    watch_log_size: int = WATCH_LOG_SIZE
    bookmark_seconds: float = 5.0
    faults: Faults = field(default_factory=Faults)

    def __post_init__(self) -> None:
        self.store = store = Store(self.name, self.seed, self.watch_log_size)
        self.token = self.token or f"{self.name}-{uuid.UUID(int=store.random.getrandbits(128)).hex}"
        self.readonly_token = self.readonly_token or f"{self.name}-ro-{uuid.UUID(int=store.random.getrandbits(128)).hex}"
        # Authenticates, but RBAC allows it nothing: for testing 403 handling.
        self.denied_token = f"{self.name}-denied-{uuid.UUID(int=store.random.getrandbits(128)).hex}"
        self.admission = Admission(store, token=self.token, readonly_token=self.readonly_token, denied_token=self.denied_token)
        self.kubelets = Kubelets(store, self.faults, version=self.version, pod_start_delay=self.pod_start_delay,
                                 node_ready_delay=self.node_ready_delay)
        self.scheduler = Scheduler(store, self.kubelets)
        self.controllers = Controllers(store, self.admission, self.scheduler, self.kubelets, self.faults,
                                       namespace_finalize_delay=self.namespace_finalize_delay)
        store.admission += [self.admission.admit_pod, self.scheduler.admit]
        store.on_created.append(self.controllers.created)
        store.reconcile = self.controllers.reconcile
        self.stats: dict[str, int] = {}
        self._bootstrap_rbac()

    def _bootstrap_rbac(self) -> None:
        """The default ClusterRoles and ClusterRoleBindings (``bootstrap.py``), there before anything else."""
        with self.store.lock:
            for role in bootstrap.cluster_roles():
                self.store.create(CLUSTERROLES, role)
            for binding in bootstrap.cluster_role_bindings():
                self.store.create(CLUSTERROLEBINDINGS, binding)
            self.store.settle()

    # ---- identity and auth (``admission.py``) ---------------------------------------

    def user_for(self, token: str | None) -> str | None:
        """The user a bearer token authenticates, or None."""
        return self.admission.user_for(token)

    def add_user(self, name: str, groups: list[str] | tuple[str, ...] = ()) -> str:
        """A bearer token for ``name`` in ``groups``; what it may do is what RBAC objects in the cluster grant."""
        return self.admission.add_user(name, groups)

    def may(self, user: str, verb: str, resource: str = "", group: str = "", namespace: str = "", name: str = "", *,
            groups: tuple[str, ...] | list[str] | None = None, path: str = "") -> bool:
        """Whether RBAC lets ``user`` do ``verb`` (``Admission.may``)."""
        return self.admission.may(user, verb, resource, group, namespace, name, groups=groups, path=path)

    def rules(self, user: str, namespace: str, groups: tuple[str, ...] | list[str] | None = None) -> tuple[list[Obj], list[Obj]]:
        """(resource rules, non-resource rules) ``user`` has in ``namespace``: a SelfSubjectRulesReview's answer."""
        return self.admission.rules(user, namespace, groups)

    def admit_pod_security(self, namespace: str, pod: Obj) -> None:
        """Pod Security admission for a pod sent to the API: refuse what the namespace's level forbids."""
        self.admission.admit_pod_security(namespace, pod)

    # ---- what the cluster says about itself ------------------------------------------

    @property
    def rv(self) -> int:
        """The latest resourceVersion."""
        return self.store.rv

    @property
    def server_version(self) -> str:
        """The control plane's version: the lowest kubelet version among control-plane nodes."""
        with self.store.lock:
            versions = [
                kubelet_version(n) for n in self.store.objects[NODES].values()
                if "node-role.kubernetes.io/control-plane" in (n["metadata"].get("labels") or {})
            ]
        versions = [v for v in versions if len(version_tuple(v)) == 3]
        return min(versions, key=version_tuple).lstrip("v") if versions else self.version

    def count_request(self, method: str, path: str, query: dict[str, str]) -> None:
        """Count what clients ask (``GET /sandbox/stats``): probes must stay cheap."""
        if path == "/readyz" or path.startswith("/readyz/"):
            kind = "readyz"
        elif path == "/version":
            kind = "version"
        elif method == "GET" and path == "/api/v1/nodes":
            kind = "node_list_rv0" if query.get("resourceVersion") == "0" else "node_list"
        elif method == "GET" and path == "/api/v1/pods":
            kind = "pod_list_cluster_wide"
        else:
            kind = "other"
        self.stats[kind] = self.stats.get(kind, 0) + 1

    # ---- API verbs (used by the HTTP layer and by tests) -------------------------------

    def get(self, resource: ResourceType | str, namespace: str, name: str) -> Obj | None:
        return self.store.get(resource, namespace, name)

    def items(self, resource: ResourceType | str, namespace: str = "") -> list[Obj]:
        """Objects of a type (in one namespace, or all), sorted as the API lists them."""
        return self.store.items(resource, namespace)

    def watch(self, resource: ResourceType, namespace: str, labels: Predicate, fields: Predicate,
              push: Callable[[str, Obj], None], since: int | None) -> Watcher:
        """Register a watcher and replay (``Store.watch``)."""
        return self.store.watch(resource, namespace, labels, fields, push, since)

    def unwatch(self, watcher: Watcher) -> None:
        self.store.unwatch(watcher)

    def create(self, resource: ResourceType | str, obj: Obj, namespace: str = "") -> Obj:
        with self.store.lock:
            created = self.store.create(resource_type(resource), copy.deepcopy(obj), namespace)
            self.store.settle()
            return created

    def replace(self, resource: ResourceType | str, obj: Obj, namespace: str = "", subresource: str = "") -> Obj:
        """PUT: full update (``subresource="status"`` changes only the status)."""
        with self.store.lock:
            updated = self.store.replace(resource_type(resource), copy.deepcopy(obj), namespace, subresource)
            self.store.settle()
            return updated

    def patch(self, resource: ResourceType | str, namespace: str, name: str, patcher: Callable[[Obj], Obj],
              subresource: str = "", create_missing: bool = False) -> tuple[Obj, bool]:
        """Apply ``patcher`` to the current object; returns (object, created)."""
        with self.store.lock:
            result = self.store.patch(resource_type(resource), namespace, name, patcher, subresource, create_missing)
            self.store.settle()
            return result

    def delete(self, resource: ResourceType | str, namespace: str, name: str,
               preconditions: dict[str, Any] | None = None, propagation: str = "Background") -> Obj:
        resource = resource_type(resource)
        with self.store.lock:
            old = self.store.objects[resource].get((namespace if resource.namespaced else "", name))
            if old is None:
                raise errors.not_found(resource.plural, resource.group, name)
            preconditions = preconditions or {}
            if preconditions.get("uid") and preconditions["uid"] != old["metadata"]["uid"]:
                raise errors.conflict(resource.plural, resource.group, name)
            if preconditions.get("resourceVersion") and preconditions["resourceVersion"] != old["metadata"]["resourceVersion"]:
                raise errors.conflict(resource.plural, resource.group, name)
            result = self.controllers.delete(resource, old, propagation)
            self.store.settle()
            return result

    def evict(self, namespace: str, name: str) -> None:
        """The Eviction API: refuse with 429 when a PodDisruptionBudget forbids it."""
        self.controllers.evict(namespace, name)

    def refresh_budgets(self) -> None:
        """Recompute every PodDisruptionBudget's status (after changing frozen_pdbs)."""
        self.controllers.refresh_budgets()

    # ---- nodes (``kubelet.py``) --------------------------------------------------------

    def add_node(self, name: str, *, control_plane: bool = False, version: str | None = None,
                 cpu: str = "4", memory: str = "16Gi", pods: str = "110", labels: dict[str, str] | None = None) -> Obj:
        return self.kubelets.add_node(name, control_plane=control_plane, version=version, cpu=cpu, memory=memory,
                                      pods=pods, labels=labels)

    def set_node_condition(self, name: str, condition: str, status: str, reason: str = "", message: str = "") -> Obj:
        """Set one node condition (e.g. MemoryPressure True) as its kubelet would."""
        return self.kubelets.set_node_condition(name, condition, status, reason, message)

    def upgrade_node(self, name: str, version: str, delay: float | None = None) -> None:
        """Replace a node's kubelet with ``version``: NotReady now, Ready at that version after ``delay``.

        A node listed in ``faults.stuck_nodes`` never comes back.
        """
        self.kubelets.upgrade_node(name, version, delay)

    def heartbeat(self) -> None:
        """Kubelets post their status: refresh lastHeartbeatTime on Ready nodes."""
        self.kubelets.heartbeat()

    # ---- a starting fleet --------------------------------------------------------------

    def populate(self, *, nodes: int = 3, control_planes: int = 1, pods_per_node: int = 3) -> None:
        """A realistic small cluster: system namespaces, nodes, kube-system, and demo workloads."""
        create = self.store.create
        with self.store.lock:
            for ns in (*SYSTEM_NAMESPACES, "system-upgrade"):
                create(NAMESPACES, {"metadata": {"name": ns}})
            for i in range(1, control_planes + 1):
                self.add_node(f"{self.name}-cp-{i}", control_plane=True)
            workers = max(0, nodes - control_planes)
            for i in range(1, workers + 1):
                self.add_node(f"{self.name}-w-{i}")
            create(SERVICEACCOUNTS, {"metadata": {"name": "default", "namespace": "default"}}, "default")
            create(DAEMONSETS, _workload("kube-proxy", "registry.k8s.io/kube-proxy:v" + self.version.lstrip("v"),
                                         {"k8s-app": "kube-proxy"}, tolerations=[{"operator": "Exists"}]), "kube-system")
            create(DEPLOYMENTS, _workload("coredns", "registry.k8s.io/coredns/coredns:v1.11.1",
                                          {"k8s-app": "kube-dns"}, replicas=2), "kube-system")
            total = pods_per_node * workers
            if total:
                create(NAMESPACES, {"metadata": {"name": "demo", "labels": {"app.kubernetes.io/part-of": "demo"}}})
                db = min(3, workers)
                web = max(1, (total - db) // 2)
                api = max(0, total - db - web)
                create(DEPLOYMENTS, _workload("web", "nginx:1.27", {"app": "web"}, replicas=web), "demo")
                if api:
                    create(DEPLOYMENTS, _workload("api", "ghcr.io/example/api:2.4.1", {"app": "api"}, replicas=api), "demo")
                create(STATEFULSETS, _workload("db", "postgres:16", {"app": "db"}, replicas=db), "demo")
                create(PDBS, {"metadata": {"name": "web"}, "spec": {"maxUnavailable": 1, "selector": {"matchLabels": {"app": "web"}}}}, "demo")
                create(PDBS, {"metadata": {"name": "db"}, "spec": {"minAvailable": max(1, db - 1), "selector": {"matchLabels": {"app": "db"}}}}, "demo")
                create(SERVICES, {"metadata": {"name": "web"}, "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "protocol": "TCP"}]}}, "demo")
            self.store.settle()

    def make_ready_now(self) -> None:
        """Start every Pending pod at once (populate without waiting for pod start delays)."""
        self.kubelets.start_pending_now()


def _workload(name: str, image: str, labels: dict[str, str], replicas: int | None = None,
              tolerations: list[Obj] | None = None) -> Obj:
    spec: Obj = {
        "selector": {"matchLabels": labels},
        "template": {"metadata": {"labels": labels},
                     "spec": {"containers": [{"name": name, "image": image,
                                              "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}}}],
                              **({"tolerations": tolerations} if tolerations else {})}},
    }
    if replicas is not None:
        spec["replicas"] = replicas
    return {"metadata": {"name": name, "labels": labels}, "spec": spec}
