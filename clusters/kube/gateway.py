"""Typed operations on one cluster, each with a timeout and translated errors."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar, cast

from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from clusters.kube import client as clients
from clusters.kube.credentials import Credential
from clusters.kube.errors import UNREADABLE, KubeError, translate, unreadable
from clusters.kube.objects import ObjectOps
from clusters.kube.retry import SAFE_PREFIXES, reads, with_retries
from clusters.kube.types import EventInfo, Eviction, Expectation, NodeInfo, PodInfo, ProbeResult
from pksweb.text import bound

T = TypeVar("T")
DEFAULT_TIMEOUT = (3.05, 10.0)  # (connect, read) seconds
MIRROR_ANNOTATION = "kubernetes.io/config.mirror"
PDB_CAUSE = re.compile(r"The disruption budget (?P<name>\S+) needs (?P<needs>[0-9]+) healthy pods and has (?P<has>[0-9]+) currently")


def _node_info(node: k8s.V1Node) -> NodeInfo:
    # Every optional part of a node may be missing (a minimal or hostile answer): read each defensively.
    meta = node.metadata or k8s.V1ObjectMeta()
    spec = node.spec or k8s.V1NodeSpec()
    status = node.status or k8s.V1NodeStatus()
    labels = {str(k): str(v) for k, v in (meta.labels or {}).items()}
    roles = sorted(k.split("/", 1)[1] for k in labels if k.startswith("node-role.kubernetes.io/") and "/" in k)
    found = [c for c in (status.conditions or []) if c is not None]
    conditions = {str(c.type): str(c.status) for c in found}
    ready_condition = next((c for c in found if c.type == "Ready"), None)
    ready = None if ready_condition is None or ready_condition.status == "Unknown" else ready_condition.status == "True"
    taints = [f"{t.key}{'=' + t.value if t.value else ''}:{t.effect}" for t in (spec.taints or []) if t is not None]
    return NodeInfo(
        name=str(meta.name or ""),
        roles=roles,
        kubelet_version=str(status.node_info.kubelet_version or "") if status.node_info else "",
        ready=ready,
        conditions=conditions,
        unschedulable=bool(spec.unschedulable),
        taints=taints,
        labels=labels,
        ready_message=str(ready_condition.message or "") if ready_condition is not None else "",
    )


def _pod_info(pod: k8s.V1Pod) -> PodInfo:
    meta = pod.metadata or k8s.V1ObjectMeta()
    status = pod.status or k8s.V1PodStatus()
    owner = next((r for r in (meta.owner_references or []) if r is not None and r.controller), None)
    ready = any(c is not None and c.type == "Ready" and c.status == "True" for c in (status.conditions or []))
    return PodInfo(
        namespace=str(meta.namespace or ""),
        name=str(meta.name or ""),
        phase=str(status.phase or ""),
        ready=ready,
        owner_kind=str(owner.kind or "") if owner else "",
        owner_name=str(owner.name or "") if owner else "",
        mirror=MIRROR_ANNOTATION in (meta.annotations or {}),
        terminating=meta.deletion_timestamp is not None,
        node=str((pod.spec.node_name if pod.spec else "") or ""),
    )


def _event_info(event: k8s.CoreV1Event, seen: datetime | None) -> EventInfo:
    about = event.involved_object or k8s.V1ObjectReference()
    meta = event.metadata or k8s.V1ObjectMeta()
    return EventInfo(str(meta.namespace or ""), str(event.type or ""), str(event.reason or ""), str(event.message or ""),
                     f"{str(about.kind or '').lower()}/{about.name or ''}", seen)


def _event_seen(event: k8s.CoreV1Event) -> datetime | None:
    return event.last_timestamp or event.event_time or (event.metadata.creation_timestamp if event.metadata else None)


class Gateway:
    """Operations on one cluster. ``key`` identifies the cluster for client caching."""

    def __init__(self, credential: Credential, *, key: str = "", timeout: tuple[float, float] = DEFAULT_TIMEOUT) -> None:
        self.credential = credential
        self.timeout = timeout
        self.api = clients.api_client(key or credential.server, credential)

    def call(self, action: str, fn: Callable[..., T], *args: Any, idempotent: bool = False, **kwargs: Any) -> T:
        """``fn(*args, **kwargs)`` (a typed API method) with the timeout, retries where safe and translated errors.

        Reads are safe to repeat; a write only when the caller says it is ``idempotent``.
        """
        kwargs.setdefault("_request_timeout", self.timeout)
        safe = idempotent or getattr(fn, "__name__", "").startswith(SAFE_PREFIXES)

        def attempt() -> T:
            try:
                return fn(*args, **kwargs)
            except Exception as exc:  # every failure is translated; translate() re-raises what it does not know
                raise translate(exc, server=self.credential.server, action=action) from exc

        return with_retries(safe, attempt)

    def _get(self, action: str, path: str, query: list[tuple[str, str]] | None = None, *,
             accept: str = "application/json", answers: Callable[[int, bytes], bool] = lambda status, body: False,
             ) -> tuple[int, bytes]:
        """GET ``path`` where the client has no typed method (``/readyz``, a resource by group/version) or where
        pksweb reads the JSON itself (no model per pod); returns (status, body).

        A failure is translated and retried like any other read, unless ``answers(status, body)`` says the
        caller reads that failure as an answer (a 404 counts nothing; a failing /readyz lists its checks).
        """
        params = self.api.param_serialize(method="GET", resource_path=path, query_params=query or [],
                                          header_params={"Accept": accept}, auth_settings=["BearerToken"])

        def attempt() -> tuple[int, bytes]:
            try:
                response = self.api.call_api(*params, _request_timeout=self.timeout)
                read: Callable[[], bytes | None] = response.read  # the client leaves read() unannotated
                data = read() or b""
            except Exception as exc:  # translated below, like every other call
                raise translate(exc, server=self.credential.server, action=action) from exc
            if not 200 <= response.status < 300 and not answers(response.status, data):
                raise translate(ApiException(http_resp=response), server=self.credential.server, action=action)
            return response.status, data

        return with_retries(True, attempt)

    def _get_items(self, action: str, path: str, query: list[tuple[str, str]] | None = None) -> list[Any]:
        """The ``items`` of a list read as raw JSON (none when it has none); items that are not a list are an
        answer of no Kubernetes API."""
        items = json.loads(self._get(action, path, query)[1] or b"{}").get("items") or []
        if not isinstance(items, list):
            raise TypeError(f"the list's items are not a list while pksweb tried to {action}")
        return items

    def plain(self, model: object) -> dict[str, Any]:
        """A client model as the JSON the API server speaks (plain dicts and lists)."""
        sanitize = cast(Callable[[object], dict[str, Any]], self.api.sanitize_for_serialization)
        return sanitize(model)

    @property
    def core(self) -> k8s.CoreV1Api:
        return k8s.CoreV1Api(self.api)

    # ---- identity and health --------------------------------------------------

    @reads("read the server version")
    def version(self) -> str:
        info = self.call("read the server version", k8s.VersionApi(self.api).get_code)
        return str(info.git_version or "").lstrip("v")

    def readyz(self) -> tuple[bool, list[str]]:
        """Whether /readyz passes, and the names of the checks that fail."""
        # A failing /readyz answers 500 listing its checks with [-]: an answer, read below; so are 401 and 403.
        status, body = self._get("read /readyz", "/readyz", [("verbose", "")], accept="text/plain, application/json",
                                 answers=lambda status, body: status != 429 and (status < 500 or b"[-]" in body))
        text = body.decode(errors="replace")
        if status == 401:
            raise KubeError("unauthorized", "The API server refused the credential (401 Unauthorized) while trying to read "
                                            "/readyz: the token or client certificate is wrong, expired or revoked.", 401)
        failed = [bound(line[3:].split(" ", 1)[0], 100) for line in text.splitlines() if line.startswith("[-]")]
        if status == 403:
            return True, []  # /readyz is not readable by every credential; /version and nodes still tell
        return status == 200 and not failed, failed

    @reads("list nodes")
    def nodes(self) -> list[NodeInfo]:
        """All nodes, from the API server's cache (``resourceVersion=0``)."""
        nodes = self.call("list nodes", self.core.list_node, resource_version="0")
        return [_node_info(n) for n in nodes.items]

    @reads("read a node")
    def node(self, name: str) -> NodeInfo:
        return _node_info(self.call(f"read node {name}", self.core.read_node, name))

    @reads("list kube-system pods")
    def system_problems(self) -> list[str]:
        """kube-system pods that are not Running and Ready (one namespaced list, never cluster-wide)."""
        pods = self.call("list kube-system pods", self.core.list_namespaced_pod, "kube-system")
        problems = []
        for pod in pods.items:
            info = _pod_info(pod)
            if info.terminating or info.phase == "Succeeded":
                continue
            if info.phase != "Running" or not info.ready:
                problems.append(f"{info.name} ({info.phase or 'Unknown'}{'' if info.phase != 'Running' else ', not ready'})")
        return problems

    @reads("list warning events")
    def warning_events(self, since: timedelta = timedelta(minutes=10), limit: int = 200) -> list[EventInfo]:
        events = self.call("list warning events", self.core.list_event_for_all_namespaces, field_selector="type=Warning", limit=limit)
        cutoff = datetime.now(UTC) - since
        recent = []
        for event in events.items:
            seen = _event_seen(event)
            if seen is not None and seen < cutoff:
                continue
            recent.append(_event_info(event, seen))
        return recent

    def probe(self, *, identify: bool = False, expect: Expectation | None = None) -> ProbeResult:
        """The dial tone: readyz, version, nodes, kube-system pods and recent warnings.

        At most one /readyz, one /version and one node list; never a cluster-wide pod list.
        Transport failures end the probe with ``error`` set. The cluster's identity is read too
        when ``identify`` says so (those registered without a check) or when the answers do not
        look like the cluster last seen (``expect``: another version, none of its nodes): the
        credential may now reach another cluster (a proxy or DNS name moved).
        """
        started = datetime.now(UTC)
        result = ProbeResult()
        try:
            result.ready, result.failed_checks = self.readyz()
            result.version = self.version()
            result.nodes = self.nodes()
            result.system_problems = self.system_problems()
            try:
                result.warnings = self.warning_events()
            except KubeError as exc:
                if exc.kind != "forbidden":
                    raise
            if identify or (expect is not None and expect.differs(result.version, [n.name for n in result.nodes])):
                try:
                    result.identity = self.identity()
                except KubeError:
                    pass  # the dial tone does not depend on it; the next probe asks again
        except KubeError as exc:
            result.error = exc
        except UNREADABLE as exc:
            # An answer in a shape no Kubernetes API gives: the dial tone is not there, and the reason says why.
            result.error = unreadable(exc, server=self.credential.server, action="read its health")
        result.latency_ms = (datetime.now(UTC) - started).total_seconds() * 1000
        return result

    def check_access(self) -> str:
        """Connect and prove the credential can read what pksweb needs; returns the version."""
        version = self.version()
        self.call("list nodes", self.core.list_node, limit=1)
        return version

    @reads("check which cluster it is (read namespace kube-system)")
    def identity(self) -> str:
        """The cluster's identity: the UID of its ``kube-system`` namespace (the de-facto cluster id)."""
        namespace = self.call("check which cluster it is (read namespace kube-system)", self.core.read_namespace, "kube-system")
        uid = str((namespace.metadata.uid if namespace.metadata else "") or "")
        if not uid:
            raise KubeError("bad_response", f"{self.credential.server} answered for namespace kube-system without a UID, "
                                            "which every Kubernetes API server gives: is this a Kubernetes API?")
        return bound(uid, 64)

    # ---- node operations ------------------------------------------------------

    @reads("cordon or uncordon a node")
    def set_unschedulable(self, node: str, unschedulable: bool) -> NodeInfo:
        body = {"spec": {"unschedulable": True if unschedulable else None}}
        action = f"{'cordon' if unschedulable else 'uncordon'} node {node}"
        return _node_info(self.call(action, self.core.patch_node, node, body, idempotent=True))

    @reads("list the pods on a node")
    def pods_on_node(self, node: str) -> list[PodInfo]:
        pods = self.call(f"list pods on node {node}", self.core.list_pod_for_all_namespaces, field_selector=f"spec.nodeName={node}")
        return [_pod_info(p) for p in pods.items]

    def evict(self, namespace: str, name: str) -> Eviction:
        body = k8s.V1Eviction(metadata=k8s.V1ObjectMeta(name=name, namespace=namespace))
        try:
            self.call(f"evict pod {namespace}/{name}", self.core.create_namespaced_pod_eviction, name, namespace, body)
        except KubeError as exc:
            if exc.kind == "not_found":
                return Eviction("gone")
            if exc.status == 429 and exc.details.get("causes"):
                cause = next((str(c.get("message") or "") for c in exc.details["causes"] if c.get("reason") == "DisruptionBudget"), "")
                match = PDB_CAUSE.search(cause)
                return Eviction("blocked", match.group("name") if match else "", cause or exc.message)
            if exc.status == 429:
                return Eviction("blocked", "", exc.message)
            raise
        return Eviction("evicted")


    # ---- tenant bundles and dedicated nodes -------------------------------------

    @property
    def objects(self) -> ObjectOps:
        """Generic get/create/replace/delete/list of the kinds in a tenant bundle."""
        return ObjectOps(self)

    @reads("label a node for a tenant")
    def set_node_tenant(self, node: str, tenant: str | None, label: str = "pksweb.io/tenant") -> NodeInfo:
        """Label and taint ``node`` for ``tenant`` (or clear both): dedicated nodes."""
        current = self.call(f"read node {node}", self.core.read_node, node)
        found = (current.spec.taints if current.spec else None) or []
        taints = [t for t in (self.plain(taint) for taint in found) if t.get("key") != label]
        if tenant:
            taints.append({"key": label, "value": tenant, "effect": "NoSchedule"})
        body = {"metadata": {"labels": {label: tenant}}, "spec": {"taints": taints or None}}
        action = f"{'assign' if tenant else 'release'} node {node}"
        return _node_info(self.call(action, self.core.patch_node, node, body))

    @reads("annotate a node")
    def annotate_node(self, node: str, annotations: dict[str, str | None]) -> NodeInfo:
        """Set ``node``'s annotations (a merge patch of ``metadata.annotations``; ``None`` removes a key)."""
        body = {"metadata": {"annotations": annotations}}
        return _node_info(self.call(f"annotate node {node}", self.core.patch_node, node, body, idempotent=True))

    @reads("read a namespace's objects")
    def namespace_overview(self, namespace: str) -> dict[str, Any]:
        """What a tenant admin sees of one namespace, read live: quota use, workloads, pods, policies, events."""
        apps = k8s.AppsV1Api(self.api)
        plain = self.plain
        quotas = [plain(q) for q in self.call("list quotas", self.core.list_namespaced_resource_quota, namespace).items]
        workloads = []
        listers: tuple[tuple[str, Callable[..., Any]], ...] = (("Deployment", apps.list_namespaced_deployment), ("StatefulSet", apps.list_namespaced_stateful_set),
                         ("DaemonSet", apps.list_namespaced_daemon_set))
        for kind, fn in listers:
            for item in self.call(f"list {kind}s", fn, namespace).items:
                status = item.status
                desired = getattr(item.spec, "replicas", None) if kind != "DaemonSet" else status.desired_number_scheduled
                ready = (status.ready_replicas if kind != "DaemonSet" else status.number_ready) or 0
                workloads.append({"kind": kind, "name": item.metadata.name, "desired": desired or 0, "ready": ready})
        pods = []
        for pod in self.call("list pods", self.core.list_namespaced_pod, namespace).items:
            restarts = sum(cs.restart_count or 0 for cs in ((pod.status.container_statuses if pod.status else None) or []))
            info = _pod_info(pod)
            pods.append({"name": info.name, "phase": info.phase, "ready": info.ready, "restarts": restarts, "node": info.node})
        policies = [plain(p) for p in self.call("list network policies",
                                                 k8s.NetworkingV1Api(self.api).list_namespaced_network_policy, namespace).items]
        events = [_event_info(e, _event_seen(e)) for e in self.call("list events", self.core.list_namespaced_event, namespace).items][-20:]
        return {"quotas": quotas, "workloads": workloads, "pods": pods, "policies": policies, "events": events}

    @reads("list pods")
    def pods_all(self) -> list[PodInfo]:
        """Every pod (one cluster-wide list: scorecards and releases, never the health sweep)."""
        return [_pod_info(p) for p in self.call("list pods", self.core.list_pod_for_all_namespaces).items]

    @reads("list cluster role bindings")
    def cluster_role_bindings(self) -> list[dict[str, Any]]:
        items = self.call("list cluster role bindings", k8s.RbacAuthorizationV1Api(self.api).list_cluster_role_binding).items
        return [self.plain(b) for b in items]

    # ---- upgrades: preflight and drivers --------------------------------------------

    @reads("read the API groups")
    def served_group_versions(self) -> set[str]:
        """Every group/version the API server serves (discovery)."""
        core = self.call("read API versions", k8s.CoreApi(self.api).get_api_versions)
        groups = self.call("read API groups", k8s.ApisApi(self.api).get_api_versions)
        served = set(core.versions or [])
        for group in groups.groups or []:
            served |= {v.group_version for v in group.versions or []}
        return served

    def count_stored(self, group_version: str, resource: str) -> int:
        """How many objects the cluster returns for ``resource`` through ``group_version`` (0 if not served).

        Anything but an answer or a 404 raises: a preflight that could not look must say so, not count 0.
        """
        path = f"/api/{group_version}/{resource}" if "/" not in group_version else f"/apis/{group_version}/{resource}"
        action = f"count {resource} in {group_version}"
        status, body = self._get(action, path, [("limit", "500")], answers=lambda status, body: status == 404)
        if status == 404:
            return 0
        try:
            items = json.loads(body or b"{}").get("items")
        except (ValueError, AttributeError) as exc:
            raise translate(exc, server=self.credential.server, action=action) from exc
        if not isinstance(items, list):
            raise KubeError("bad_response", f"{self.credential.server} answered a list of {resource} without items "
                                            f"while pksweb tried to {action}.")
        return len(items)

    @reads("list PodDisruptionBudgets")
    def pdbs(self) -> list[dict[str, Any]]:
        items = self.call("list PodDisruptionBudgets", k8s.PolicyV1Api(self.api).list_pod_disruption_budget_for_all_namespaces).items
        return [self.plain(p) for p in items]

    @reads("list pods")
    def pods_raw(self) -> list[dict[str, Any]]:
        """Every pod as raw JSON (scheduling fields included), without a model per pod."""
        items = self._get_items("list pods", "/api/v1/pods")
        return [p for p in items if isinstance(p, dict)]

    def create_custom_object(self, group: str, version: str, namespace: str, plural: str, body: dict[str, Any]) -> dict[str, Any]:
        api = k8s.CustomObjectsApi(self.api)
        created = self.call(f"create {plural}.{group} {body['metadata']['name']}", api.create_namespaced_custom_object,
                            group, version, namespace, plural, body)
        return cast(dict[str, Any], created)  # a custom object comes back as the JSON it is

    # ---- reads for pages --------------------------------------------------------

    @reads("list namespaces")
    def namespaces(self) -> list[dict[str, Any]]:
        items = self.call("list namespaces", self.core.list_namespace).items
        metas = [(n.metadata or k8s.V1ObjectMeta(), n.status) for n in items]
        return [{"name": meta.name, "phase": status.phase if status else "",
                 "tenant": (meta.labels or {}).get("pksweb.io/tenant", "")} for meta, status in metas]

    @reads("count pods per node")
    def pod_counts(self) -> dict[str, int]:
        """Pods per node, read as raw JSON (no model per pod: fast on large clusters)."""
        # resourceVersion=0: the API server answers from its watch cache, not from etcd.
        items = self._get_items("list pods", "/api/v1/pods", [("resourceVersion", "0"),
                                                              ("fieldSelector", "status.phase!=Succeeded,status.phase!=Failed")])
        counts: dict[str, int] = {}
        for pod in items:
            node = (pod.get("spec") or {}).get("nodeName") or ""
            if node:
                counts[node] = counts.get(node, 0) + 1
        return counts

    @reads("list events")
    def recent_events(self, limit: int = 30) -> list[EventInfo]:
        events = self.call("list events", self.core.list_event_for_all_namespaces, limit=500).items
        infos = [_event_info(e, _event_seen(e)) for e in events]
        infos.sort(key=lambda e: e.last_seen or datetime.min.replace(tzinfo=UTC), reverse=True)
        return infos[:limit]
