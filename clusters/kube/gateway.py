"""Typed operations on one cluster, each with a timeout and translated errors."""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import tenacity
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from clusters.kube import client as clients
from clusters.kube.credentials import Credential
from clusters.kube.errors import UNREADABLE, KubeError, translate, unreadable
from pksweb.text import bound

T = TypeVar("T")
DEFAULT_TIMEOUT = (3.05, 10.0)  # (connect, read) seconds
MIRROR_ANNOTATION = "kubernetes.io/config.mirror"
PRESSURE = ("MemoryPressure", "DiskPressure", "PIDPressure", "NetworkUnavailable")
# Retries: a 429 is always safe to retry (the server refused before acting); a 5xx or a
# dropped connection only for reads and idempotent writes. A timeout is not retried: it
# has already spent the call's whole budget, and repeating it would triple how long one
# dead cluster holds a sweep. A Retry-After longer than RETRY_AFTER_MAX is reported, not
# waited for.
RETRY_ATTEMPTS = 3
RETRY_BASE_SECONDS = 0.25
RETRY_AFTER_MAX = 5.0
RETRY_BUDGET_SECONDS = 10.0
SAFE_PREFIXES = ("read_", "list_", "get_")
PDB_CAUSE = re.compile(r"The disruption budget (?P<name>\S+) needs (?P<needs>\d+) healthy pods and has (?P<has>\d+) currently")


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
        return [c for c in PRESSURE if self.conditions.get(c) == "True"]

    @property
    def is_control_plane(self) -> bool:
        return "control-plane" in self.roles or "master" in self.roles


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


F = TypeVar("F", bound=Callable[..., Any])


def _reads(action: str) -> Callable[[F], F]:
    """An operation whose answer is read into pksweb's shapes: an answer in a shape no Kubernetes API gives
    (a hostile or broken server) becomes a ``bad_response`` KubeError saying so, never a crash."""
    def decorate(method: F) -> F:
        @functools.wraps(method)
        def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
            try:
                return method(self, *args, **kwargs)
            except KubeError:
                raise
            except UNREADABLE as exc:
                gateway = getattr(self, "gw", self)
                raise unreadable(exc, server=gateway.credential.server, action=action) from exc
        return wrapper  # type: ignore[return-value]
    return decorate


def _retryable(exc: BaseException, safe: bool) -> bool:
    if not isinstance(exc, KubeError):
        return False
    if exc.kind == "throttled":
        # An eviction refused by a PodDisruptionBudget is an answer, not throttling.
        return not exc.details.get("causes") and (exc.retry_after or 0) <= RETRY_AFTER_MAX
    return safe and exc.kind in ("server_error", "dropped")


def _backoff(state: tenacity.RetryCallState) -> float:
    exc = state.outcome.exception() if state.outcome else None
    asked = getattr(exc, "retry_after", None)
    if asked:
        return float(asked)
    return tenacity.wait_random_exponential(multiplier=RETRY_BASE_SECONDS, max=4.0)(state)


def _with_retries(safe: bool, attempt: Callable[[], T]) -> T:
    """``attempt()`` until it succeeds or a retry would not be safe or useful.

    When pksweb gave up after retrying, the message says so.
    """
    retrying = tenacity.Retrying(
        retry=tenacity.retry_if_exception(lambda exc: _retryable(exc, safe)),
        stop=tenacity.stop_after_attempt(RETRY_ATTEMPTS) | tenacity.stop_after_delay(RETRY_BUDGET_SECONDS),
        wait=_backoff, reraise=True)
    try:
        return retrying(attempt)
    except KubeError as exc:
        tries = retrying.statistics.get("attempt_number", 1)
        if tries > 1:
            exc.message = f"{exc.message} pksweb tried {tries} times, backing off between tries."
            exc.args = (exc.message,)
        raise


class Gateway:
    """Operations on one cluster. ``key`` identifies the cluster for client caching."""

    def __init__(self, credential: Credential, *, key: str = "", timeout: tuple[float, float] = DEFAULT_TIMEOUT) -> None:
        self.credential = credential
        self.timeout = timeout
        self.api = clients.api_client(key or credential.server, credential)

    def _call(self, action: str, fn: Callable[..., T], *args: Any, idempotent: bool = False, **kwargs: Any) -> T:
        """``fn(*args, **kwargs)`` with the timeout, retries where safe and translated errors.

        Reads are safe to repeat; a write only when the caller says it is ``idempotent``.
        """
        kwargs.setdefault("_request_timeout", self.timeout)
        safe = idempotent or getattr(fn, "__name__", "").startswith(SAFE_PREFIXES)

        def attempt() -> T:
            try:
                return fn(*args, **kwargs)
            except Exception as exc:  # every failure is translated; translate() re-raises what it does not know
                raise translate(exc, server=self.credential.server, action=action) from exc

        return _with_retries(safe, attempt)

    def _raw(self, action: str, path: str, query: list[tuple[str, str]] | None = None) -> tuple[int, str]:
        """GET a non-resource path (``/readyz``); returns (status, text) even for 5xx."""
        params = self.api.param_serialize(method="GET", resource_path=path, query_params=query or [],
                                          header_params={"Accept": "text/plain, application/json"}, auth_settings=["BearerToken"])

        def attempt() -> tuple[int, str]:
            try:
                response = self.api.call_api(*params, _request_timeout=self.timeout)
                response.read()
            except Exception as exc:  # translated below, like every other call
                raise translate(exc, server=self.credential.server, action=action) from exc
            text = (response.data or b"").decode(errors="replace")
            # Throttled, or failed (a failing /readyz lists its checks with [-]; this is not one): the same
            # translation, and the same retries, as any other call.
            if response.status == 429 or (response.status >= 500 and "[-]" not in text):
                raise translate(ApiException(http_resp=response), server=self.credential.server, action=action)
            return response.status, text

        return _with_retries(True, attempt)

    @property
    def core(self) -> k8s.CoreV1Api:
        return k8s.CoreV1Api(self.api)

    # ---- identity and health --------------------------------------------------

    @_reads("read the server version")
    def version(self) -> str:
        info = self._call("read the server version", k8s.VersionApi(self.api).get_code)
        return str(info.git_version or "").lstrip("v")

    def readyz(self) -> tuple[bool, list[str]]:
        """Whether /readyz passes, and the names of the checks that fail."""
        status, text = self._raw("read /readyz", "/readyz", [("verbose", "")])
        if status == 401:
            raise KubeError("unauthorized", "The API server refused the credential (401 Unauthorized) while trying to read "
                                            "/readyz: the token or client certificate is wrong, expired or revoked.", 401)
        failed = [bound(line[3:].split(" ", 1)[0], 100) for line in text.splitlines() if line.startswith("[-]")]
        if status == 403:
            return True, []  # /readyz is not readable by every credential; /version and nodes still tell
        return status == 200 and not failed, failed

    @_reads("list nodes")
    def nodes(self) -> list[NodeInfo]:
        """All nodes, from the API server's cache (``resourceVersion=0``)."""
        nodes = self._call("list nodes", self.core.list_node, resource_version="0")
        return [_node_info(n) for n in nodes.items]

    @_reads("read a node")
    def node(self, name: str) -> NodeInfo:
        return _node_info(self._call(f"read node {name}", self.core.read_node, name))

    @_reads("list kube-system pods")
    def system_problems(self) -> list[str]:
        """kube-system pods that are not Running and Ready (one namespaced list, never cluster-wide)."""
        pods = self._call("list kube-system pods", self.core.list_namespaced_pod, "kube-system")
        problems = []
        for pod in pods.items:
            info = _pod_info(pod)
            if info.terminating or info.phase == "Succeeded":
                continue
            if info.phase != "Running" or not info.ready:
                problems.append(f"{info.name} ({info.phase or 'Unknown'}{'' if info.phase != 'Running' else ', not ready'})")
        return problems

    @_reads("list warning events")
    def warning_events(self, since: timedelta = timedelta(minutes=10), limit: int = 200) -> list[EventInfo]:
        events = self._call("list warning events", self.core.list_event_for_all_namespaces, field_selector="type=Warning", limit=limit)
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
        self._call("list nodes", self.core.list_node, limit=1)
        return version

    @_reads("check which cluster it is (read namespace kube-system)")
    def identity(self) -> str:
        """The cluster's identity: the UID of its ``kube-system`` namespace (the de-facto cluster id)."""
        namespace = self._call("check which cluster it is (read namespace kube-system)", self.core.read_namespace, "kube-system")
        uid = str((namespace.metadata.uid if namespace.metadata else "") or "")
        if not uid:
            raise KubeError("bad_response", f"{self.credential.server} answered for namespace kube-system without a UID, "
                                            "which every Kubernetes API server gives: is this a Kubernetes API?")
        return bound(uid, 64)

    # ---- node operations ------------------------------------------------------

    @_reads("cordon or uncordon a node")
    def set_unschedulable(self, node: str, unschedulable: bool) -> NodeInfo:
        body = {"spec": {"unschedulable": True if unschedulable else None}}
        action = f"{'cordon' if unschedulable else 'uncordon'} node {node}"
        return _node_info(self._call(action, self.core.patch_node, node, body, idempotent=True))

    @_reads("list the pods on a node")
    def pods_on_node(self, node: str) -> list[PodInfo]:
        pods = self._call(f"list pods on node {node}", self.core.list_pod_for_all_namespaces, field_selector=f"spec.nodeName={node}")
        return [_pod_info(p) for p in pods.items]

    def evict(self, namespace: str, name: str) -> Eviction:
        body = k8s.V1Eviction(metadata=k8s.V1ObjectMeta(name=name, namespace=namespace))
        try:
            self._call(f"evict pod {namespace}/{name}", self.core.create_namespaced_pod_eviction, name, namespace, body)
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

    @_reads("label a node for a tenant")
    def set_node_tenant(self, node: str, tenant: str | None, label: str = "pksweb.io/tenant") -> NodeInfo:
        """Label and taint ``node`` for ``tenant`` (or clear both): dedicated nodes."""
        current = self._call(f"read node {node}", self.core.read_node, node)
        taints = [t for t in self.api.sanitize_for_serialization(current.spec.taints or []) if t.get("key") != label]
        if tenant:
            taints.append({"key": label, "value": tenant, "effect": "NoSchedule"})
        body = {"metadata": {"labels": {label: tenant}}, "spec": {"taints": taints or None}}
        action = f"{'assign' if tenant else 'release'} node {node}"
        return _node_info(self._call(action, self.core.patch_node, node, body))

    @_reads("read a namespace's objects")
    def namespace_overview(self, namespace: str) -> dict[str, Any]:
        """What a tenant admin sees of one namespace, read live: quota use, workloads, pods, policies, events."""
        apps = k8s.AppsV1Api(self.api)
        plain = self.api.sanitize_for_serialization
        quotas = [plain(q) for q in self._call("list quotas", self.core.list_namespaced_resource_quota, namespace).items]
        workloads = []
        for kind, fn in (("Deployment", apps.list_namespaced_deployment), ("StatefulSet", apps.list_namespaced_stateful_set),
                         ("DaemonSet", apps.list_namespaced_daemon_set)):
            for item in self._call(f"list {kind}s", fn, namespace).items:
                status = item.status
                desired = getattr(item.spec, "replicas", None) if kind != "DaemonSet" else status.desired_number_scheduled
                ready = (status.ready_replicas if kind != "DaemonSet" else status.number_ready) or 0
                workloads.append({"kind": kind, "name": item.metadata.name, "desired": desired or 0, "ready": ready})
        pods = []
        for pod in self._call("list pods", self.core.list_namespaced_pod, namespace).items:
            restarts = sum(cs.restart_count or 0 for cs in ((pod.status.container_statuses if pod.status else None) or []))
            info = _pod_info(pod)
            pods.append({"name": info.name, "phase": info.phase, "ready": info.ready, "restarts": restarts, "node": info.node})
        policies = [plain(p) for p in self._call("list network policies",
                                                 k8s.NetworkingV1Api(self.api).list_namespaced_network_policy, namespace).items]
        events = [_event_info(e, _event_seen(e)) for e in self._call("list events", self.core.list_namespaced_event, namespace).items][-20:]
        return {"quotas": quotas, "workloads": workloads, "pods": pods, "policies": policies, "events": events}

    @_reads("list pods")
    def pods_all(self) -> list[PodInfo]:
        """Every pod (one cluster-wide list: scorecards and releases, never the health sweep)."""
        return [_pod_info(p) for p in self._call("list pods", self.core.list_pod_for_all_namespaces).items]

    @_reads("list cluster role bindings")
    def cluster_role_bindings(self) -> list[dict[str, Any]]:
        items = self._call("list cluster role bindings", k8s.RbacAuthorizationV1Api(self.api).list_cluster_role_binding).items
        return [self.api.sanitize_for_serialization(b) for b in items]

    # ---- upgrades: preflight and drivers --------------------------------------------

    @_reads("read the API groups")
    def served_group_versions(self) -> set[str]:
        """Every group/version the API server serves (discovery)."""
        core = self._call("read API versions", k8s.CoreApi(self.api).get_api_versions)
        groups = self._call("read API groups", k8s.ApisApi(self.api).get_api_versions)
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
        params = self.api.param_serialize(method="GET", resource_path=path, query_params=[("limit", "500")],
                                          auth_settings=["BearerToken"])

        def attempt() -> int:
            try:
                response = self.api.call_api(*params, _request_timeout=self.timeout)
                response.read()
            except Exception as exc:  # translated like every call
                raise translate(exc, server=self.credential.server, action=action) from exc
            if response.status == 404:
                return 0
            if response.status >= 400:
                raise translate(ApiException(http_resp=response), server=self.credential.server, action=action)
            try:
                items = json.loads(response.data or b"{}").get("items")
            except (ValueError, AttributeError) as exc:
                raise translate(exc, server=self.credential.server, action=action) from exc
            if not isinstance(items, list):
                raise KubeError("bad_response", f"{self.credential.server} answered a list of {resource} without items "
                                                f"while pksweb tried to {action}.")
            return len(items)

        return _with_retries(True, attempt)

    @_reads("list PodDisruptionBudgets")
    def pdbs(self) -> list[dict[str, Any]]:
        items = self._call("list PodDisruptionBudgets", k8s.PolicyV1Api(self.api).list_pod_disruption_budget_for_all_namespaces).items
        return [self.api.sanitize_for_serialization(p) for p in items]

    @_reads("list pods")
    def pods_raw(self) -> list[dict[str, Any]]:
        """Every pod as raw JSON (scheduling fields included), without a model per pod."""
        response = self._call("list pods", self.core.list_pod_for_all_namespaces, _preload_content=False)
        try:
            items = json.loads(response.data).get("items") or []
        finally:
            response.release_conn()
        if not isinstance(items, list):
            raise TypeError("the pod list's items are not a list")
        return [p for p in items if isinstance(p, dict)]

    def sandbox_upgrade_node(self, node: str, version: str) -> str:
        """Ask a sandbox cluster to replace ``node``'s kubelet with ``version`` (the sandbox driver)."""
        params = self.api.param_serialize(method="POST", resource_path=f"/sandbox/nodes/{node}/upgrade",
                                          body={"version": version}, header_params={"Content-Type": "application/json"},
                                          auth_settings=["BearerToken"])
        try:
            response = self.api.call_api(*params, _request_timeout=self.timeout)
            response.read()
        except Exception as exc:  # translated like every call
            raise translate(exc, server=self.credential.server, action=f"replace node {node}") from exc
        text = (response.data or b"").decode(errors="replace")
        if response.status >= 400:
            raise KubeError("driver", f"The sandbox refused to replace node {node} ({response.status}): {text[:300]}", response.status)
        return text

    def annotate_node(self, node: str, annotations: dict[str, str | None]) -> NodeInfo:
        """Patch ``node``'s metadata.annotations (a None value removes the key).

        TEMP (dropped at merge, where the clusters engineer's annotate_node and the sandbox's kubelet reacting to
        sandbox.pksweb.io/upgrade-to replace it): that key still goes to the sandbox's old upgrade endpoint."""
        version = annotations.get("sandbox.pksweb.io/upgrade-to")
        if version:
            self.sandbox_upgrade_node(node, version)
            return self.node(node)
        body = {"metadata": {"annotations": annotations}}
        return _node_info(self._call(f"annotate node {node}", self.core.patch_node, node, body, idempotent=True))

    def create_custom_object(self, group: str, version: str, namespace: str, plural: str, body: dict[str, Any]) -> dict[str, Any]:
        api = k8s.CustomObjectsApi(self.api)
        return self._call(f"create {plural}.{group} {body['metadata']['name']}", api.create_namespaced_custom_object,
                          group, version, namespace, plural, body)

    # ---- reads for pages --------------------------------------------------------

    @_reads("list namespaces")
    def namespaces(self) -> list[dict[str, Any]]:
        items = self._call("list namespaces", self.core.list_namespace).items
        return [{"name": n.metadata.name, "phase": n.status.phase if n.status else "",
                 "tenant": (n.metadata.labels or {}).get("pksweb.io/tenant", "")} for n in items]

    @_reads("count pods per node")
    def pod_counts(self) -> dict[str, int]:
        """Pods per node, read as raw JSON (no model per pod: fast on large clusters)."""
        # resourceVersion=0: the API server answers from its watch cache, not from etcd.
        response = self._call("list pods", self.core.list_pod_for_all_namespaces, _preload_content=False, resource_version="0",
                              field_selector="status.phase!=Succeeded,status.phase!=Failed")
        try:
            data = json.loads(response.data)
        finally:
            response.release_conn()
        counts: dict[str, int] = {}
        for pod in data.get("items", []):
            node = (pod.get("spec") or {}).get("nodeName") or ""
            if node:
                counts[node] = counts.get(node, 0) + 1
        return counts

    @_reads("list events")
    def recent_events(self, limit: int = 30) -> list[EventInfo]:
        events = self._call("list events", self.core.list_event_for_all_namespaces, limit=500).items
        infos = [_event_info(e, _event_seen(e)) for e in events]
        infos.sort(key=lambda e: e.last_seen or datetime.min.replace(tzinfo=UTC), reverse=True)
        return infos[:limit]


# ---- objects by kind (tenant bundles) -------------------------------------------------

OBJECT_APIS: dict[str, tuple[str, str, bool]] = {
    "Namespace": ("CoreV1Api", "namespace", False),
    "ResourceQuota": ("CoreV1Api", "namespaced_resource_quota", True),
    "LimitRange": ("CoreV1Api", "namespaced_limit_range", True),
    "NetworkPolicy": ("NetworkingV1Api", "namespaced_network_policy", True),
    "RoleBinding": ("RbacAuthorizationV1Api", "namespaced_role_binding", True),
    "ClusterRole": ("RbacAuthorizationV1Api", "cluster_role", False),
    "Role": ("RbacAuthorizationV1Api", "namespaced_role", True),
}


class ObjectOps:
    """Generic get/create/replace/delete/list of the kinds pksweb manages, as plain dicts."""

    def __init__(self, gateway: Gateway) -> None:
        self.gw = gateway

    def _api(self, kind: str) -> tuple[Any, str, bool]:
        cls, suffix, namespaced = OBJECT_APIS[kind]
        return getattr(k8s, cls)(self.gw.api), suffix, namespaced

    def _plain(self, model: Any) -> dict[str, Any]:
        return self.gw.api.sanitize_for_serialization(model)

    @_reads("read an object")
    def get(self, kind: str, name: str, namespace: str = "") -> dict[str, Any] | None:
        api, suffix, namespaced = self._api(kind)
        args = (name, namespace) if namespaced else (name,)
        try:
            return self._plain(self.gw._call(f"read {kind} {name}", getattr(api, f"read_{suffix}"), *args))
        except KubeError as exc:
            if exc.kind == "not_found":
                return None
            raise

    @_reads("create an object")
    def create(self, obj: dict[str, Any]) -> dict[str, Any]:
        api, suffix, namespaced = self._api(obj["kind"])
        name = obj["metadata"]["name"]
        args = (obj["metadata"]["namespace"], obj) if namespaced else (obj,)
        return self._plain(self.gw._call(f"create {obj['kind']} {name}", getattr(api, f"create_{suffix}"), *args))

    @_reads("update an object")
    def replace(self, obj: dict[str, Any]) -> dict[str, Any]:
        api, suffix, namespaced = self._api(obj["kind"])
        name = obj["metadata"]["name"]
        args = (name, obj["metadata"]["namespace"], obj) if namespaced else (name, obj)
        return self._plain(self.gw._call(f"update {obj['kind']} {name}", getattr(api, f"replace_{suffix}"), *args))

    def delete(self, kind: str, name: str, namespace: str = "") -> None:
        api, suffix, namespaced = self._api(kind)
        args = (name, namespace) if namespaced else (name,)
        try:
            self.gw._call(f"delete {kind} {name}", getattr(api, f"delete_{suffix}"), *args)
        except KubeError as exc:
            if exc.kind != "not_found":
                raise

    @_reads("list objects")
    def list(self, kind: str, namespace: str = "", label_selector: str = "") -> list[dict[str, Any]]:
        api, suffix, namespaced = self._api(kind)
        if namespaced and namespace:
            result = self.gw._call(f"list {kind}", getattr(api, f"list_{suffix}"), namespace, label_selector=label_selector)
        elif namespaced:
            plural = suffix.replace("namespaced_", "")
            result = self.gw._call(f"list {kind}", getattr(api, f"list_{plural}_for_all_namespaces"), label_selector=label_selector)
        else:
            result = self.gw._call(f"list {kind}", getattr(api, f"list_{suffix}"), label_selector=label_selector)
        return [self._plain(item) for item in result.items]
