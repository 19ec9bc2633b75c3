"""One simulated cluster: an object store with kube-apiserver semantics, plus the
controllers, scheduler and kubelets that make it behave like a cluster.

All state sits behind one re-entrant lock. Objects are never mutated in place:
every change stores a new dict, so the watch log and watchers can hold references.
"""

from __future__ import annotations

import copy
import hashlib
import ipaddress
import json
import logging
import math
import random
import re
import threading
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sandbox import access, bootstrap, defaults, errors, validation
from sandbox.faults import Faults
from sandbox.matching import Predicate, selector_object
from sandbox.resources import RESOURCES, ResourceType, by_plural

Obj = dict[str, Any]
Key = tuple[str, str]  # (namespace, name); namespace "" for cluster-scoped

WATCH_LOG_SIZE = 5000
logger = logging.getLogger(__name__)
NAME_CHARS = "bcdfghjklmnpqrstvwxz2456789"
ADMIN_USER = "system:serviceaccount:kube-system:pksweb-admin"
VIEWER_USER = "system:serviceaccount:kube-system:pksweb-viewer"
DENIED_USER = "system:serviceaccount:kube-system:pksweb-denied"
SELF_REVIEWS = frozenset({"selfsubjectaccessreviews", "selfsubjectrulesreviews"})
SYSTEM_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
NODE_LEASE_NAMESPACE = "kube-node-lease"
NODE_LEASE_SECONDS = 40
NODE_SELECTOR_ANNOTATION = "scheduler.alpha.kubernetes.io/node-selector"
DEFAULT_TOLERATIONS_ANNOTATION = "scheduler.alpha.kubernetes.io/defaultTolerations"
MIRROR_ANNOTATION = "kubernetes.io/config.mirror"


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def now_micro() -> str:
    """A MicroTime, as a Lease's renewTime carries it."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


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
    return tuple(int(p) for p in re.findall(r"\d+", version)[:3])


@dataclass
class Watcher:
    resource: ResourceType
    namespace: str
    labels: Predicate
    fields: Predicate
    push: Callable[[str, Obj], None]
    closed: bool = False

    def matches(self, obj: Obj | None) -> bool:
        if obj is None:
            return False
        if self.namespace and obj["metadata"].get("namespace") != self.namespace:
            return False
        return self.labels(obj) and self.fields(obj)


@dataclass
class LogEntry:
    rv: int
    resource: ResourceType
    type: str
    obj: Obj
    old: Obj | None = None


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
        self.lock = threading.RLock()
        self.random = random.Random(f"{self.seed}:{self.name}")
        self.token = self.token or f"{self.name}-{uuid.UUID(int=self.random.getrandbits(128)).hex}"
        self.readonly_token = self.readonly_token or f"{self.name}-ro-{uuid.UUID(int=self.random.getrandbits(128)).hex}"
        # Authenticates, but RBAC allows it nothing: for testing 403 handling.
        self.denied_token = f"{self.name}-denied-{uuid.UUID(int=self.random.getrandbits(128)).hex}"
        # Other users (``add_user``): token -> (user name, groups); what they may do is decided by RBAC.
        self.users: dict[str, tuple[str, tuple[str, ...]]] = {}
        self.rv = 0
        self.objects: dict[ResourceType, dict[Key, Obj]] = {r: {} for r in RESOURCES}
        self.log: deque[LogEntry] = deque(maxlen=self.watch_log_size)
        self.watchers: list[Watcher] = []
        self.later: Callable[[float, Callable[[], None]], None] = self._later_thread
        self._dirty_namespaces: set[str] = set()
        self._nodes_changed = False
        self._roles_changed = False
        self._settling = False
        self._soon: list[Callable[[], None]] = []
        self.stats: dict[str, int] = {}
        # Controller steps that failed (``_controller``): tests check none did.
        self.controller_errors: deque[str] = deque(maxlen=100)
        self._bootstrap_rbac()

    def _bootstrap_rbac(self) -> None:
        """The default ClusterRoles and ClusterRoleBindings (``bootstrap.py``), there before anything else."""
        with self.lock:
            for role in bootstrap.cluster_roles():
                self._create(CLUSTERROLES, role)
            for binding in bootstrap.cluster_role_bindings():
                self._create(CLUSTERROLEBINDINGS, binding)
            self._settle()

    # ---- identity and auth --------------------------------------------------

    def user_for(self, token: str | None) -> str | None:
        """The user a bearer token authenticates, or None."""
        if token and token == self.token:
            return ADMIN_USER
        if token and token == self.readonly_token:
            return VIEWER_USER
        if token and token == self.denied_token:
            return DENIED_USER
        if token and token in self.users:
            return self.users[token][0]
        return None

    def add_user(self, name: str, groups: list[str] | tuple[str, ...] = ()) -> str:
        """A bearer token for ``name`` in ``groups``; what it may do is what RBAC objects in the cluster grant."""
        token = f"{self.name}-user-{uuid.uuid4().hex}"
        self.users[token] = (name, tuple(groups))
        return token

    def may(self, user: str, verb: str, resource: str = "", group: str = "", namespace: str = "", name: str = "", *,
            groups: tuple[str, ...] | list[str] | None = None, path: str = "") -> bool:
        """Whether RBAC lets ``user`` do ``verb`` on ``resource`` (``pods/eviction`` for a subresource) or, given
        ``path``, on that non-resource URL. ``groups``: exactly the user's groups (an impersonated user's, or those
        a SubjectAccessReview names); None: those of the user's token (``add_user``) plus what every authenticated
        user (and service account) has (``access.user_groups``)."""
        if user == ADMIN_USER:
            return True
        if user in (VIEWER_USER, DENIED_USER) and verb == "create" and group == "authorization.k8s.io" and resource in SELF_REVIEWS:
            return True  # system:basic-user
        if user == DENIED_USER:
            return False
        if user == VIEWER_USER:
            return verb in ("get", "list", "watch")
        if groups is None:
            groups = access.user_groups(user, self._token_groups(user))
        with self.lock:
            bindings = [*self.objects[CLUSTERROLEBINDINGS].values(),
                        *(b for (ns, _), b in self.objects[ROLEBINDINGS].items() if namespace and ns == namespace)]
            if path:
                return access.rbac_allows_path(user=user, groups=groups, verb=verb, path=path, bindings=bindings,
                                               role_rules=self._role_rules)
            return access.rbac_allows(user=user, groups=groups, verb=verb, resource=resource, group=group, namespace=namespace,
                                      name=name, bindings=bindings, role_rules=self._role_rules)

    def _token_groups(self, user: str) -> tuple[str, ...]:
        """The groups ``add_user`` gave ``user``'s token (none for a user it does not know)."""
        return next((g for u, g in self.users.values() if u == user), ())

    def rules(self, user: str, namespace: str, groups: tuple[str, ...] | list[str] | None = None) -> tuple[list[Obj], list[Obj]]:
        """(resource rules, non-resource rules) ``user`` has in ``namespace``: a SelfSubjectRulesReview's answer."""
        basic = [{"verbs": ["create"], "apiGroups": ["authorization.k8s.io"], "resources": sorted(SELF_REVIEWS)}]
        if user == DENIED_USER:
            return basic, []
        if user == ADMIN_USER:
            return [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}, *basic], [{"verbs": ["*"], "nonResourceURLs": ["*"]}]
        if user == VIEWER_USER:
            return [{"verbs": ["get", "list", "watch"], "apiGroups": ["*"], "resources": ["*"]}, *basic], [
                {"verbs": ["get"], "nonResourceURLs": ["*"]}]
        if groups is None:
            groups = access.user_groups(user, self._token_groups(user))
        with self.lock:
            bindings = [*self.objects[CLUSTERROLEBINDINGS].values(),
                        *(b for (ns, _), b in self.objects[ROLEBINDINGS].items() if namespace and ns == namespace)]
            found = access.rules_of(user=user, groups=groups, namespace=namespace, bindings=bindings, role_rules=self._role_rules)
        resource_rules, path_rules = [], []
        for rule in found:  # each once, as the rules review lists them
            shown = {k: rule[k] for k in ("verbs", "apiGroups", "resources", "resourceNames") if rule.get(k)}
            if rule.get("resources") and shown not in resource_rules:
                resource_rules.append(shown)
            shown = {k: rule[k] for k in ("verbs", "nonResourceURLs") if rule.get(k)}
            if rule.get("nonResourceURLs") and shown not in path_rules:
                path_rules.append(shown)
        return resource_rules, path_rules

    def _role_rules(self, ref: Obj, namespace: str) -> list[Obj]:
        if ref.get("kind") == "ClusterRole":
            role = self.objects[CLUSTERROLES].get(("", ref.get("name", "")))
        else:
            role = self.objects[ROLES].get((namespace, ref.get("name", "")))
        return list((role or {}).get("rules") or [])

    def admit_pod_security(self, namespace: str, pod: Obj) -> None:
        """Pod Security admission for a pod sent to the API: refuse what the namespace's level forbids."""
        with self.lock:
            ns = self.objects[NAMESPACES].get(("", namespace))
        level, violations = access.pod_security_violations(ns, pod)
        if violations:
            name = (pod.get("metadata") or {}).get("name", "")
            raise errors.ApiError(403, "Forbidden", f'pods "{name}" is forbidden: violates PodSecurity "{level}:latest": '
                                  f'{", ".join(violations)}', {"name": name, "kind": "pods"})

    @property
    def server_version(self) -> str:
        """The control plane's version: the lowest kubelet version among control-plane nodes."""
        with self.lock:
            versions = [
                _kubelet_version(n) for n in self.objects[NODES].values()
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

    # ---- timers ---------------------------------------------------------------

    @staticmethod
    def _later_thread(delay: float, fn: Callable[[], None]) -> None:
        timer = threading.Timer(delay, fn)
        timer.daemon = True
        timer.start()

    def _after(self, delay: float, fn: Callable[[], None]) -> None:
        def run() -> None:
            with self.lock:
                self._controller("a timer", fn)
                self._settle()

        if delay <= 0:
            self._soon.append(fn)
        else:
            self.later(delay, run)

    # ---- store primitives --------------------------------------------------

    def _uid(self) -> str:
        return str(uuid.UUID(int=self.random.getrandbits(128), version=4))

    def _suffix(self, n: int = 5) -> str:
        return "".join(self.random.choice(NAME_CHARS) for _ in range(n))

    def _free_name(self, resource: ResourceType, namespace: str, prefix: str) -> str:
        """``prefix`` plus a random suffix no object of ``resource`` in ``namespace`` has yet (they do
        collide: 6,000 pods of one ReplicaSet expect about one clash among 5-letter suffixes)."""
        while True:
            name = prefix + self._suffix()
            if (namespace if resource.namespaced else "", name) not in self.objects[resource]:
                return name

    def get(self, resource: ResourceType | str, namespace: str, name: str) -> Obj | None:
        resource = by_plural(resource) if isinstance(resource, str) else resource
        with self.lock:
            return self.objects[resource].get((namespace if resource.namespaced else "", name))

    def items(self, resource: ResourceType | str, namespace: str = "") -> list[Obj]:
        """Objects of a type (in one namespace, or all), sorted as the API lists them."""
        resource = by_plural(resource) if isinstance(resource, str) else resource
        with self.lock:
            store = self.objects[resource]
            keys = sorted(k for k in store if not namespace or k[0] == namespace)
            return [store[k] for k in keys]

    def _key(self, resource: ResourceType, obj: Obj) -> Key:
        meta = obj["metadata"]
        return (meta.get("namespace", "") if resource.namespaced else "", meta["name"])

    def _write(self, resource: ResourceType, obj: Obj, event: str, old: Obj | None) -> Obj:
        """Store ``obj`` (a fresh dict) at a new resourceVersion and tell watchers."""
        self.rv += 1
        obj["metadata"]["resourceVersion"] = str(self.rv)
        key = self._key(resource, obj)
        if event == "DELETED":
            self.objects[resource].pop(key, None)
        else:
            self.objects[resource][key] = obj
        self.log.append(LogEntry(self.rv, resource, event, obj, old))
        self._notify(resource, event, obj, old)
        self._mark(resource, obj)
        return obj

    def _notify(self, resource: ResourceType, event: str, obj: Obj, old: Obj | None) -> None:
        entry = LogEntry(self.rv, resource, event, obj, old)
        for watcher in list(self.watchers):
            if not watcher.closed and watcher.resource is resource:
                self._notify_one(watcher, entry)

    def _mark(self, resource: ResourceType, obj: Obj) -> None:
        if resource.namespaced:
            self._dirty_namespaces.add(obj["metadata"].get("namespace", ""))
        elif resource is NODES:
            self._nodes_changed = True
        elif resource is CLUSTERROLES:
            self._roles_changed = True

    def watch(self, resource: ResourceType, namespace: str, labels: Predicate, fields: Predicate,
              push: Callable[[str, Obj], None], since: int | None) -> Watcher:
        """Register a watcher and replay: everything current (``since`` None) or the log after ``since``.

        Raises 410 Expired when ``since`` is older than the log keeps.
        """
        with self.lock:
            watcher = Watcher(resource, namespace, labels, fields, push)
            if since is None:
                for obj in self.items(resource, namespace):
                    if watcher.matches(obj):
                        push("ADDED", obj)
            else:
                oldest = self.log[0].rv if self.log else self.rv + 1
                if since < oldest - 1 and since < self.rv:
                    raise errors.gone(f"too old resource version: {since} ({oldest - 1})")
                for entry in self.log:
                    if entry.rv > since and entry.resource is resource:
                        self._notify_one(watcher, entry)
            self.watchers.append(watcher)
            return watcher

    @staticmethod
    def _notify_one(watcher: Watcher, entry: LogEntry) -> None:
        """Tell one watcher about one change, as its selectors saw it before and after."""
        now_matches = entry.type != "DELETED" and watcher.matches(entry.obj)
        was = watcher.matches(entry.old) if entry.old is not None else False
        if entry.type == "DELETED":
            if watcher.matches(entry.obj):
                watcher.push("DELETED", entry.obj)
        elif now_matches:
            watcher.push("MODIFIED" if was else "ADDED", entry.obj)
        elif was:
            watcher.push("DELETED", entry.obj)

    def unwatch(self, watcher: Watcher) -> None:
        with self.lock:
            watcher.closed = True
            if watcher in self.watchers:
                self.watchers.remove(watcher)

    # ---- validation and admission ---------------------------------------------

    def _admit_pod(self, pod: Obj) -> None:
        """PodNodeSelector and PodTolerationRestriction, from the namespace's annotations."""
        ns = self.objects[NAMESPACES].get(("", pod["metadata"].get("namespace", "")))
        annotations = (ns or {}).get("metadata", {}).get("annotations") or {}
        spec = pod.setdefault("spec", {})
        if annotations.get(NODE_SELECTOR_ANNOTATION):
            selector = dict(spec.get("nodeSelector") or {})
            for pair in annotations[NODE_SELECTOR_ANNOTATION].split(","):
                key, _, value = pair.partition("=")
                if key.strip():
                    if selector.get(key.strip(), value.strip()) != value.strip():
                        raise errors.forbidden("system:admission", "create", "pods", "", pod["metadata"].get("namespace", ""))
                    selector[key.strip()] = value.strip()
            spec["nodeSelector"] = selector
        if annotations.get(DEFAULT_TOLERATIONS_ANNOTATION):
            try:
                defaults = json.loads(annotations[DEFAULT_TOLERATIONS_ANNOTATION])
            except ValueError:
                defaults = []
            tolerations = list(spec.get("tolerations") or [])
            for toleration in defaults:
                if toleration not in tolerations:
                    tolerations.append(toleration)
            spec["tolerations"] = tolerations

    # ---- API verbs (used by the HTTP layer and by tests) -------------------------

    def create(self, resource: ResourceType | str, obj: Obj, namespace: str = "") -> Obj:
        resource = by_plural(resource) if isinstance(resource, str) else resource
        with self.lock:
            created = self._create(resource, copy.deepcopy(obj), namespace)
            self._settle()
            return created

    def _create(self, resource: ResourceType, obj: Obj, namespace: str = "") -> Obj:
        validation.check_shape(resource, obj)
        meta = obj["metadata"] = obj.get("metadata") or {}
        if resource.namespaced:
            if meta.get("namespace") and namespace and meta["namespace"] != namespace:
                raise errors.bad_request("the namespace of the provided object does not match the namespace sent on the request")
            meta["namespace"] = namespace or meta.get("namespace") or "default"
            ns = self.objects[NAMESPACES].get(("", meta["namespace"]))
            if ns is None:
                raise errors.not_found("namespaces", "", meta["namespace"])
            if ns["status"].get("phase") == "Terminating":
                raise errors.ApiError(
                    403, "Forbidden",
                    f'{resource.plural} "{meta.get("name", "")}" is forbidden: unable to create new content in namespace '
                    f'{meta["namespace"]} because it is being terminated',
                    {"name": meta.get("name", ""), "kind": resource.plural,
                     "causes": [{"reason": "NamespaceTerminating", "message": f"namespace {meta['namespace']} is being terminated", "field": "metadata.namespace"}]},
                )
        else:
            meta.pop("namespace", None)
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = self._free_name(resource, meta.get("namespace", ""), meta["generateName"])
        validation.validate(resource, obj)
        if self._key(resource, obj) in self.objects[resource]:
            raise errors.already_exists(resource.plural, resource.group, meta["name"])
        obj["kind"], obj["apiVersion"] = resource.kind, resource.api_version
        meta["uid"] = self._identity_uid() if resource is NAMESPACES and meta["name"] == "kube-system" else self._uid()
        meta["creationTimestamp"] = now()
        for dropped in ("deletionTimestamp", "deletionGracePeriodSeconds", "resourceVersion", "managedFields"):
            meta.pop(dropped, None)
        if defaults.has_spec(resource) or defaults.is_custom(resource):
            meta["generation"] = 1
        else:
            meta.pop("generation", None)
        self._defaults(resource, obj)
        written = self._write(resource, obj, "ADDED", None)
        if resource is PLANS:
            self._after(0.05, lambda: self._run_upgrade_plan(written))
        return written

    def _defaults(self, resource: ResourceType, obj: Obj) -> None:
        """What the real server fills in on create (``defaults.py``), plus what needs this cluster's state."""
        defaults.fill(resource, obj)
        defaults.initial_status(resource, obj)
        plural = resource.plural
        if plural == "pods":
            self._admit_pod(obj)
            obj["status"]["qosClass"] = defaults.qos_class(obj["spec"])
            if obj["spec"].get("nodeName"):
                self._bind(obj, obj["spec"]["nodeName"], write=False)
        elif plural == "services":
            spec = obj["spec"]
            if spec["type"] != "ExternalName":
                spec.setdefault("clusterIP", f"10.96.{self.random.randint(0, 255)}.{self.random.randint(1, 254)}")
                spec.setdefault("clusterIPs", [spec["clusterIP"]])

    def _identity_uid(self) -> str:
        """The kube-system namespace's UID, which pksweb takes for the cluster's identity: the same for the same
        (seed, cluster name) however the cluster was made, so a restarted sandbox is recognised as the same cluster."""
        digest = hashlib.sha256(f"pksweb-sandbox:{self.seed}:{self.name}:kube-system".encode()).digest()
        return str(uuid.UUID(bytes=digest[:16], version=4))

    def replace(self, resource: ResourceType | str, obj: Obj, namespace: str = "", subresource: str = "") -> Obj:
        """PUT: full update (``subresource="status"`` changes only the status)."""
        resource = by_plural(resource) if isinstance(resource, str) else resource
        with self.lock:
            updated = self._replace(resource, copy.deepcopy(obj), namespace, subresource)
            self._settle()
            return updated

    def _replace(self, resource: ResourceType, obj: Obj, namespace: str, subresource: str) -> Obj:
        validation.check_shape(resource, obj)
        meta = obj["metadata"] = obj.get("metadata") or {}
        if resource.namespaced:
            if meta.get("namespace") and namespace and meta["namespace"] != namespace:
                raise errors.bad_request("the namespace of the provided object does not match the namespace sent on the request")
            meta["namespace"] = namespace or meta.get("namespace") or "default"
        key = self._key(resource, obj)
        old = self.objects[resource].get(key)
        if old is None:
            raise errors.not_found(resource.plural, resource.group, meta.get("name", ""))
        if meta.get("resourceVersion") and meta["resourceVersion"] != old["metadata"]["resourceVersion"]:
            raise errors.conflict(resource.plural, resource.group, meta["name"])
        new = copy.deepcopy(old) if subresource == "status" else obj
        if subresource == "status":
            status = obj.get("status")
            new["status"] = status if isinstance(status, dict) else {}
        else:
            meta.pop("managedFields", None)
            for kept in ("uid", "creationTimestamp", "deletionTimestamp", "generation"):
                if kept in old["metadata"]:
                    meta[kept] = old["metadata"][kept]
            defaults.fill(resource, new)
            if resource.has_status and "status" in old:
                new["status"] = old["status"]
            if resource.plural == "namespaces":
                new["spec"] = old.get("spec", {})
            if resource.plural == "pods":
                self._check_pod_update(old, new)
            if new.get("spec") != old.get("spec") and "generation" in old["metadata"]:
                meta["generation"] = old["metadata"]["generation"] + 1
            validation.validate(resource, new)
        new["kind"], new["apiVersion"] = resource.kind, resource.api_version
        return self._write(resource, new, "MODIFIED", old)

    @staticmethod
    def _check_pod_update(old: Obj, new: Obj) -> None:
        """Pods are mostly immutable: only images, tolerations (added) and a few fields may change."""
        old_spec, new_spec = dict(old.get("spec") or {}), dict(new.get("spec") or {})
        for spec in (old_spec, new_spec):
            spec.pop("activeDeadlineSeconds", None)
            spec.pop("tolerations", None)
            spec["containers"] = [{k: v for k, v in c.items() if k != "image"} for c in spec.get("containers") or []]
        if old_spec != new_spec:
            raise errors.invalid("Pod", "", old["metadata"]["name"], [(
                "spec", "Forbidden: pod updates may not change fields other than `spec.containers[*].image`,"
                "`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations)"
                ",`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)",
            )])

    def patch(self, resource: ResourceType | str, namespace: str, name: str, patcher: Callable[[Obj], Obj],
              subresource: str = "", create_missing: bool = False) -> tuple[Obj, bool]:
        """Apply ``patcher`` to the current object; returns (object, created)."""
        resource = by_plural(resource) if isinstance(resource, str) else resource
        with self.lock:
            old = self.objects[resource].get((namespace if resource.namespaced else "", name))
            if old is None:
                if not create_missing:
                    raise errors.not_found(resource.plural, resource.group, name)
                new = patcher({"metadata": {"name": name, **({"namespace": namespace} if resource.namespaced else {})}})
                created = self._create(resource, new, namespace)
                self._settle()
                return created, True
            new = patcher(copy.deepcopy(old))
            if not isinstance(new, dict) or not isinstance(new.get("metadata"), dict):
                raise errors.bad_request("the patch would remove the object's metadata")
            if new["metadata"].get("name", name) != name:
                raise errors.invalid(resource.kind, resource.group, name, [("metadata.name", "Invalid value: field is immutable")])
            new["metadata"]["name"] = name
            new["metadata"]["resourceVersion"] = new["metadata"].get("resourceVersion") or old["metadata"]["resourceVersion"]
            updated = self._replace(resource, new, namespace, subresource)
            self._settle()
            return updated, False

    def delete(self, resource: ResourceType | str, namespace: str, name: str,
               preconditions: dict[str, Any] | None = None, propagation: str = "Background") -> Obj:
        resource = by_plural(resource) if isinstance(resource, str) else resource
        with self.lock:
            old = self.objects[resource].get((namespace if resource.namespaced else "", name))
            if old is None:
                raise errors.not_found(resource.plural, resource.group, name)
            preconditions = preconditions or {}
            if preconditions.get("uid") and preconditions["uid"] != old["metadata"]["uid"]:
                raise errors.conflict(resource.plural, resource.group, name)
            if preconditions.get("resourceVersion") and preconditions["resourceVersion"] != old["metadata"]["resourceVersion"]:
                raise errors.conflict(resource.plural, resource.group, name)
            result = self._delete(resource, old, propagation)
            self._settle()
            return result

    def _delete(self, resource: ResourceType, old: Obj, propagation: str = "Background") -> Obj:
        if resource is NAMESPACES:
            return self._terminate_namespace(old)
        gone = _evolve(old)
        gone["metadata"]["deletionTimestamp"] = now()
        self._write(resource, gone, "DELETED", old)
        if propagation != "Orphan":
            # The garbage collector: dependents go with their owner.
            uid = old["metadata"]["uid"]
            for dep_resource in (REPLICASETS, PODS, LEASES):
                for dep in self.items(dep_resource):
                    if any(ref.get("uid") == uid for ref in dep["metadata"].get("ownerReferences") or []):
                        self._delete(dep_resource, dep, propagation)
        if resource is NODES:
            # The pod garbage collector: pods bound to a deleted node are removed.
            for pod in self.items(PODS):
                if pod["spec"].get("nodeName") == old["metadata"]["name"] and self._key(PODS, pod) in self.objects[PODS]:
                    self._delete(PODS, pod)
        return gone

    def _terminate_namespace(self, old: Obj) -> Obj:
        if old["status"].get("phase") == "Terminating":
            return old
        terminating = _evolve(old)
        terminating["metadata"]["deletionTimestamp"] = now()
        terminating["status"] = {"phase": "Terminating"}
        self._write(NAMESPACES, terminating, "MODIFIED", old)
        name = old["metadata"]["name"]

        def finalize() -> None:
            for resource in RESOURCES:
                if resource.namespaced:
                    for obj in self.items(resource, name):
                        if (resource.namespaced and obj["metadata"].get("namespace") == name
                                and self._key(resource, obj) in self.objects[resource]):
                            self._delete(resource, obj, "Orphan")
            current = self.objects[NAMESPACES].get(("", name))
            if current is not None:
                done = copy.deepcopy(current)
                done["spec"] = {"finalizers": []}
                self._write(NAMESPACES, done, "DELETED", current)

        self._after(self.namespace_finalize_delay, finalize)
        return terminating

    # ---- eviction -------------------------------------------------------------

    def evict(self, namespace: str, name: str) -> None:
        """The Eviction API: refuse with 429 when a PodDisruptionBudget forbids it."""
        with self.lock:
            pod = self.objects[PODS].get((namespace, name))
            if pod is None:
                raise errors.not_found("pods", "", name)
            if pod["metadata"].get("deletionTimestamp"):
                return
            if pod["status"].get("phase") == "Running":
                budgets = [pdb for pdb in self.items(PDBS, namespace)
                           if selector_object(pdb["spec"].get("selector"))(pod["metadata"].get("labels") or {})]
                if len(budgets) > 1:
                    raise errors.internal_error("This pod has more than one PodDisruptionBudget, which the eviction subresource does not support.")
                if budgets:
                    status = self._pdb_status(budgets[0])
                    healthy = self._pod_ready(pod)
                    allowed = status["disruptionsAllowed"] > 0 if healthy else status["currentHealthy"] >= status["desiredHealthy"]
                    if not allowed:
                        pdb_name = budgets[0]["metadata"]["name"]
                        raise errors.too_many_requests(
                            "Cannot evict pod as it would violate the pod's disruption budget.",
                            causes=[{
                                "reason": "DisruptionBudget",
                                "message": f"The disruption budget {pdb_name} needs {status['desiredHealthy']} healthy pods "
                                           f"and has {status['currentHealthy']} currently",
                            }],
                        )
            self._delete(PODS, pod)
            self._event(pod, "Normal", "Killing", f"Stopping container {pod['spec']['containers'][0]['name']}")
            self._settle()

    # ---- the system-upgrade-controller ------------------------------------------------

    def _run_upgrade_plan(self, plan: Obj) -> None:
        """What system-upgrade-controller does with a Plan: replace the kubelet of every node it selects."""
        spec = plan.get("spec") or {}
        version = str(spec.get("version") or "").lstrip("v")
        selector = spec.get("nodeSelector") or {}
        if not version:
            return
        for node in self.items(NODES):
            if selector_object(selector)(node["metadata"].get("labels") or {}):
                self.upgrade_node(node["metadata"]["name"], version)

    # ---- kubelets and nodes -------------------------------------------------------

    def add_node(self, name: str, *, control_plane: bool = False, version: str | None = None,
                 cpu: str = "4", memory: str = "16Gi", pods: str = "110", labels: dict[str, str] | None = None) -> Obj:
        version = "v" + (version or self.version).lstrip("v")
        node_labels = {
            "kubernetes.io/hostname": name,
            "kubernetes.io/os": "linux",
            "kubernetes.io/arch": "amd64",
            **({"node-role.kubernetes.io/control-plane": ""} if control_plane else {"node-role.kubernetes.io/worker": ""}),
            **(labels or {}),
        }
        # The node's pod CIDR (10.244.<index>.0/24 for the first 255) and address: the first index no node has.
        taken = {str((n.get("spec") or {}).get("podCIDR", "")) for n in self.objects[NODES].values()}
        index = next(i for i in range(1, len(taken) + 2) if _pod_cidr(i) not in taken)
        node = {
            "metadata": {"name": name, "labels": node_labels, "annotations": {"node.alpha.kubernetes.io/ttl": "0"}},
            "spec": {"podCIDR": _pod_cidr(index), "podCIDRs": [_pod_cidr(index)],
                     **({"taints": [{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}]} if control_plane else {})},
            "status": {
                "capacity": {"cpu": cpu, "memory": memory, "pods": pods, "ephemeral-storage": "100Gi"},
                "allocatable": {"cpu": cpu, "memory": memory, "pods": pods, "ephemeral-storage": "95Gi"},
                "conditions": self._node_conditions(ready=True),
                "addresses": [{"type": "InternalIP", "address": f"172.18.{(index + 1) // 256}.{(index + 1) % 256}"},
                              {"type": "Hostname", "address": name}],
                "nodeInfo": {
                    "architecture": "amd64", "bootID": self._uid(), "containerRuntimeVersion": "containerd://1.7.18",
                    "kernelVersion": "6.1.0-25-amd64", "kubeProxyVersion": version, "kubeletVersion": version,
                    "machineID": uuid.UUID(int=self.random.getrandbits(128)).hex, "operatingSystem": "linux",
                    "osImage": "Debian GNU/Linux 12 (bookworm)", "systemUUID": self._uid(),
                },
                "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            },
        }
        with self.lock:
            created = self._create(NODES, node)
            self._renew_lease(created)
            if control_plane:
                for component in ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler"):
                    self._create(PODS, self._mirror_pod(component, created, version))
            self._settle()
            return created

    def _node_conditions(self, *, ready: bool, message: str = "") -> list[Obj]:
        stamp = now()
        conditions = [
            {"type": t, "status": "False", "reason": f"KubeletHas{r}", "message": f"kubelet has {m}",
             "lastHeartbeatTime": stamp, "lastTransitionTime": stamp}
            for t, r, m in (("MemoryPressure", "SufficientMemory", "sufficient memory available"),
                            ("DiskPressure", "NoDiskPressure", "no disk pressure"),
                            ("PIDPressure", "SufficientPID", "sufficient PID available"))
        ]
        conditions.append({
            "type": "Ready", "status": "True" if ready else "False",
            "reason": "KubeletReady" if ready else "KubeletNotReady",
            "message": message or ("kubelet is posting ready status" if ready else "container runtime status check may not have completed yet"),
            "lastHeartbeatTime": stamp, "lastTransitionTime": stamp,
        })
        return conditions

    def _mirror_pod(self, component: str, node: Obj, version: str) -> Obj:
        node_name = node["metadata"]["name"]
        return {
            "metadata": {
                "name": f"{component}-{node_name}", "namespace": "kube-system",
                "labels": {"component": component, "tier": "control-plane"},
                "annotations": {MIRROR_ANNOTATION: uuid.UUID(int=self.random.getrandbits(128)).hex},
                "ownerReferences": [{"apiVersion": "v1", "kind": "Node", "name": node_name,
                                     "uid": node["metadata"]["uid"], "controller": True}],
            },
            "spec": {"nodeName": node_name, "priorityClassName": "system-node-critical", "hostNetwork": True,
                     "containers": [{"name": component, "image": f"registry.k8s.io/{component}:{version if component != 'etcd' else '3.5.15-0'}"}],
                     "tolerations": [{"operator": "Exists", "effect": "NoExecute"}]},
        }

    def set_node_condition(self, name: str, condition: str, status: str, reason: str = "", message: str = "") -> Obj:
        """Set one node condition (e.g. MemoryPressure True) as its kubelet would."""
        with self.lock:
            old = self.objects[NODES].get(("", name))
            if old is None:
                raise errors.not_found("nodes", "", name)
            node = _evolve(old)
            conditions = _conditions(node, create=True)
            if not any(c.get("type") == condition for c in conditions):
                conditions.append({"type": condition, "status": "Unknown", "lastTransitionTime": now()})
            for cond in conditions:
                if cond.get("type") == condition:
                    if cond.get("status") != status:
                        cond["lastTransitionTime"] = now()
                    cond.update({"status": status, "lastHeartbeatTime": now()})
                    if reason:
                        cond["reason"] = reason
                    if message:
                        cond["message"] = message
            written = self._write(NODES, node, "MODIFIED", old)
            if condition == "Ready":
                self._event(node, "Normal" if status == "True" else "Warning", "NodeReady" if status == "True" else "NodeNotReady",
                            f"Node {name} status is now: {'NodeReady' if status == 'True' else 'NodeNotReady'}")
                self._pods_on_node_ready(name, status == "True")
            self._settle()
            return written

    def upgrade_node(self, name: str, version: str, delay: float | None = None) -> None:
        """Replace a node's kubelet with ``version``: NotReady now, Ready at that version after ``delay``.

        A node listed in ``faults.stuck_nodes`` never comes back.
        """
        version = "v" + version.lstrip("v")
        with self.lock:
            if ("", name) not in self.objects[NODES]:
                raise errors.not_found("nodes", "", name)
            self.set_node_condition(name, "Ready", "False", "KubeletNotReady", f"kubelet is being replaced (upgrade to {version})")

        def come_back() -> None:
            if name in self.faults.stuck_nodes or ("", name) not in self.objects[NODES]:
                return
            old = self.objects[NODES][("", name)]
            node = copy.deepcopy(old)
            info = _node_info(node)
            info["kubeletVersion"] = version
            info["kubeProxyVersion"] = version
            info["bootID"] = self._uid()
            self._write(NODES, node, "MODIFIED", old)
            for pod in self.items(PODS):
                if pod["spec"].get("nodeName") == name and MIRROR_ANNOTATION in (pod["metadata"].get("annotations") or {}):
                    image = pod["spec"]["containers"][0]["image"]
                    if "etcd" not in image:
                        updated = copy.deepcopy(pod)
                        updated["spec"]["containers"][0]["image"] = image.rsplit(":", 1)[0] + ":" + version
                        self._write(PODS, updated, "MODIFIED", pod)
            self.set_node_condition(name, "Ready", "True", "KubeletReady", "kubelet is posting ready status")
            self._renew_lease(self.objects[NODES][("", name)])

        with self.lock:
            self._after(self.node_ready_delay if delay is None else delay, come_back)
            self._settle()  # a zero delay runs at the next settle: now

    def heartbeat(self) -> None:
        """Kubelets post their status: refresh lastHeartbeatTime on Ready nodes."""
        with self.lock:
            stamp = now()
            for old in self.items(NODES):
                node = _evolve(old)
                for cond in _conditions(node):
                    cond["lastHeartbeatTime"] = stamp
                self._write(NODES, node, "MODIFIED", old)
                if self._node_ready(node):  # a kubelet being replaced renews nothing
                    self._renew_lease(node)
            self._settle()

    def _renew_lease(self, node: Obj) -> None:
        """The node's kubelet renews its Lease in kube-node-lease (made when missing; none without that namespace)."""
        name = node["metadata"]["name"]
        if ("", NODE_LEASE_NAMESPACE) not in self.objects[NAMESPACES]:
            return
        old = self.objects[LEASES].get((NODE_LEASE_NAMESPACE, name))
        if old is None:
            self._create(LEASES, {"metadata": {"name": name, "ownerReferences": [
                {"apiVersion": "v1", "kind": "Node", "name": name, "uid": node["metadata"]["uid"]}]},
                "spec": {"holderIdentity": name, "leaseDurationSeconds": NODE_LEASE_SECONDS, "renewTime": now_micro()}},
                NODE_LEASE_NAMESPACE)
            return
        lease = copy.deepcopy(old)
        lease.setdefault("spec", {})["renewTime"] = now_micro()
        self._write(LEASES, lease, "MODIFIED", old)

    def _pods_on_node_ready(self, node_name: str, ready: bool) -> None:
        for pod in self.items(PODS):
            if pod["spec"].get("nodeName") == node_name and (pod.get("status") or {}).get("phase") == "Running":
                self._set_pod_ready(pod, ready, restarted=ready)

    # ---- pods ------------------------------------------------------------------------

    @staticmethod
    def _pod_ready(pod: Obj) -> bool:
        if pod["metadata"].get("deletionTimestamp") or (pod.get("status") or {}).get("phase") != "Running":
            return False
        return any(c.get("type") == "Ready" and c.get("status") == "True" for c in _conditions(pod))

    def _bind(self, pod: Obj, node_name: str, write: bool = True) -> Obj:
        old = pod if write else None
        new = copy.deepcopy(pod) if write else pod
        new["spec"]["nodeName"] = node_name
        node = self.objects[NODES].get(("", node_name))
        stamp = now()
        new["status"] = {
            "phase": "Pending", "qosClass": new["status"].get("qosClass", "BestEffort"),
            "hostIP": _internal_ip(node) if node else "",
            "conditions": [{"type": "PodScheduled", "status": "True", "lastTransitionTime": stamp}],
            "containerStatuses": [self._container_status(c, ready=False) for c in new["spec"]["containers"]],
            "startTime": stamp,
        }
        if write:
            self._write(PODS, new, "MODIFIED", old)
        key = (new["metadata"]["namespace"], new["metadata"]["name"])
        uid = new["metadata"].get("uid")

        def start() -> None:
            current = self.objects[PODS].get(key)
            if current is None or (uid and current["metadata"].get("uid") != uid) or current["status"].get("phase") != "Pending":
                return
            node_now = self.objects[NODES].get(("", node_name))
            ready = bool(node_now) and self._node_ready(node_now)
            started = _evolve(current)
            started["status"]["phase"] = "Running"
            self._set_pod_ip(started)
            self._write(PODS, started, "MODIFIED", current)
            self._set_pod_ready(started, ready)

        self._after(self.pod_start_delay, start)
        return new

    def _set_pod_ip(self, pod: Obj) -> None:
        """``status.podIP(s)`` of a starting pod: the node's address for a host-network pod, else the lowest
        address of the node's pod CIDR that no pod on the node has (as a CNI's host-local IPAM hands them out)."""
        node = self.objects[NODES].get(("", pod["spec"].get("nodeName", "")))
        ip = ""
        if node is not None and pod["spec"].get("hostNetwork"):
            ip = _internal_ip(node)
        elif node is not None:
            try:
                network = ipaddress.ip_network(str((node.get("spec") or {}).get("podCIDR", "")))
            except ValueError:
                network = None
            if network is not None:
                used = {(p.get("status") or {}).get("podIP") for p in self.objects[PODS].values()
                        if p["spec"].get("nodeName") == node["metadata"]["name"] and p["metadata"]["uid"] != pod["metadata"]["uid"]}
                ip = next((str(a) for a in network.hosts() if a != network.network_address + 1 and str(a) not in used), "")
        if ip:
            pod["status"]["podIP"], pod["status"]["podIPs"] = ip, [{"ip": ip}]

    @staticmethod
    def _container_status(container: Obj, *, ready: bool, restarts: int = 0) -> Obj:
        state = {"running": {"startedAt": now()}} if ready else {"waiting": {"reason": "ContainerCreating"}}
        return {"name": container["name"], "image": container.get("image", ""), "imageID": "",
                "ready": ready, "started": ready, "restartCount": restarts, "state": state}

    def _set_pod_ready(self, pod: Obj, ready: bool, restarted: bool = False) -> None:
        current = self.objects[PODS].get((pod["metadata"]["namespace"], pod["metadata"]["name"]))
        if current is None:
            return
        new = _evolve(current)
        stamp = now()
        status = "True" if ready else "False"
        conditions = [c for c in _conditions(new) if c.get("type") not in ("Ready", "ContainersReady", "Initialized")]
        conditions += [
            {"type": "Initialized", "status": "True", "lastTransitionTime": stamp},
            {"type": "Ready", "status": status, "lastTransitionTime": stamp},
            {"type": "ContainersReady", "status": status, "lastTransitionTime": stamp},
        ]
        new["status"]["conditions"] = conditions
        restarts = [cs.get("restartCount", 0) + (1 if restarted else 0) for cs in new["status"].get("containerStatuses") or []]
        new["status"]["containerStatuses"] = [
            self._container_status(c, ready=ready, restarts=restarts[i] if i < len(restarts) else 0)
            for i, c in enumerate(new["spec"]["containers"])
        ]
        self._write(PODS, new, "MODIFIED", current)

    def _event(self, about: Obj, type_: str, reason: str, message: str) -> None:
        namespace = about["metadata"].get("namespace") or "default"
        if ("", namespace) not in self.objects[NAMESPACES]:
            return
        stamp = now()
        name = f"{about['metadata']['name']}.{self.random.getrandbits(64):016x}"
        event = {
            "metadata": {"name": name, "namespace": namespace},
            "involvedObject": {"kind": about.get("kind", ""), "name": about["metadata"]["name"],
                               "namespace": about["metadata"].get("namespace", ""), "uid": about["metadata"].get("uid", ""),
                               "apiVersion": about.get("apiVersion", "v1")},
            "reason": reason, "message": message, "type": type_, "count": 1,
            "firstTimestamp": stamp, "lastTimestamp": stamp, "eventTime": None,
            "source": {"component": "sandbox"}, "reportingComponent": "sandbox", "reportingInstance": self.name,
        }
        self._create(EVENTS, event, namespace)

    # ---- controllers and the scheduler ----------------------------------------------

    def _settle(self) -> None:
        """Run the controllers until nothing is left to do (called after every change)."""
        if self._settling:
            return
        self._settling = True
        try:
            for _ in range(20):
                while self._soon:
                    self._controller("a timer", self._soon.pop(0))
                namespaces, nodes_changed, roles_changed = self._dirty_namespaces, self._nodes_changed, self._roles_changed
                self._dirty_namespaces, self._nodes_changed, self._roles_changed = set(), False, False
                if not namespaces and not nodes_changed and not roles_changed:
                    break
                if roles_changed:
                    self._controller("the clusterrole aggregation controller", self._aggregate_cluster_roles)
                if nodes_changed:
                    namespaces |= {ns for (_, ns) in self.objects[NAMESPACES]}
                for ns in sorted(namespaces):
                    self._reconcile_namespace(ns, nodes_changed)
                self._controller("the scheduler", self._schedule_pending)
        finally:
            self._settling = False

    def _controller(self, what: str, fn: Callable[..., Any], *args: Any) -> None:
        """Run one controller step. A step that fails is logged and kept in ``controller_errors`` and the others go on,
        as a real controller manager logs a failed sync and carries on: one odd object must not stop the cluster."""
        try:
            fn(*args)
        except errors.ApiError as error:  # e.g. a pod its namespace refuses: the controller tries again at the next change
            logger.info("sandbox %s: %s: %s", self.name, what, error.message)
        except Exception as error:
            logger.exception("sandbox %s: %s failed", self.name, what)
            self.controller_errors.append(f"{what}: {type(error).__name__}: {error}")

    def _reconcile_namespace(self, ns: str, nodes_changed: bool) -> None:
        for deployment in self.items(DEPLOYMENTS, ns):
            self._controller(f"deployment {ns}/{deployment['metadata']['name']}", self._reconcile_deployment, deployment)
        for rs in self.items(REPLICASETS, ns):
            self._controller(f"replicaset {ns}/{rs['metadata']['name']}", self._reconcile_replicas, REPLICASETS, rs)
        for sts in self.items(STATEFULSETS, ns):
            self._controller(f"statefulset {ns}/{sts['metadata']['name']}", self._reconcile_replicas, STATEFULSETS, sts)
        for ds in self.items(DAEMONSETS, ns):
            self._controller(f"daemonset {ns}/{ds['metadata']['name']}", self._reconcile_daemonset, ds)
        for pdb in self.items(PDBS, ns):
            self._controller(f"poddisruptionbudget {ns}/{pdb['metadata']['name']}",
                             lambda pdb=pdb: self._write_status(PDBS, pdb, self._pdb_status(pdb)))
        quotas = self.items(QUOTAS, ns)
        if quotas:
            used = self._quota_used(ns)
            for quota in quotas:
                hard = dict((quota.get("spec") or {}).get("hard") or {})
                self._write_status(QUOTAS, quota, {"hard": hard, "used": {k: used.get(k, "0") for k in hard}})

    def _aggregate_cluster_roles(self) -> None:
        """Each ClusterRole with an ``aggregationRule`` gets the rules of the ClusterRoles it selects (``bootstrap.py``)."""
        roles = self.items(CLUSTERROLES)
        for role in roles:
            rules = bootstrap.aggregated_rules(role, roles)
            if rules is not None and rules != role.get("rules"):
                new = _evolve(role)
                new["rules"] = rules
                self._write(CLUSTERROLES, new, "MODIFIED", role)

    def _owned(self, owner: Obj) -> list[Obj]:
        uid = owner["metadata"]["uid"]
        return [p for p in self.items(PODS, owner["metadata"]["namespace"])
                if any(r.get("uid") == uid for r in p["metadata"].get("ownerReferences") or [])]

    def _write_status(self, resource: ResourceType, obj: Obj, status: Obj) -> None:
        if obj.get("status") != status:
            new = _evolve(obj)
            new["status"] = status
            self._write(resource, new, "MODIFIED", obj)

    def _owner_ref(self, owner: Obj) -> Obj:
        return {"apiVersion": owner["apiVersion"], "kind": owner["kind"], "name": owner["metadata"]["name"],
                "uid": owner["metadata"]["uid"], "controller": True, "blockOwnerDeletion": True}

    def _reconcile_deployment(self, deployment: Obj) -> None:
        ns = deployment["metadata"]["namespace"]
        template = deployment["spec"]["template"]
        template_hash = hashlib.sha256(json.dumps(template, sort_keys=True).encode()).hexdigest()[:10]
        owned_rs = [rs for rs in self.items(REPLICASETS, ns)
                    if any(r.get("uid") == deployment["metadata"]["uid"] for r in rs["metadata"].get("ownerReferences") or [])]
        rs_name = f"{deployment['metadata']['name']}-{template_hash}"
        current = next((rs for rs in owned_rs if rs["metadata"]["name"] == rs_name), None)
        replicas = deployment["spec"].get("replicas", 1)
        if current is None:
            labels = {**(template.get("metadata", {}).get("labels") or {}), "pod-template-hash": template_hash}
            tmpl = copy.deepcopy(template)
            tmpl.setdefault("metadata", {})["labels"] = labels
            selector = copy.deepcopy(deployment["spec"]["selector"])
            selector.setdefault("matchLabels", {})["pod-template-hash"] = template_hash
            current = self._create(REPLICASETS, {
                "metadata": {"name": rs_name, "namespace": ns, "labels": labels,
                             "ownerReferences": [self._owner_ref(deployment)]},
                "spec": {"replicas": replicas, "selector": selector, "template": tmpl},
            }, ns)
        elif current["spec"].get("replicas") != replicas:
            scaled = copy.deepcopy(current)
            scaled["spec"]["replicas"] = replicas
            current = self._write(REPLICASETS, scaled, "MODIFIED", current)
        for rs in owned_rs:
            if rs["metadata"]["name"] != rs_name and rs["spec"].get("replicas"):
                drained = copy.deepcopy(rs)
                drained["spec"]["replicas"] = 0
                self._write(REPLICASETS, drained, "MODIFIED", rs)
        pods = [p for rs in self.items(REPLICASETS, ns) for p in self._owned(rs)
                if any(r.get("uid") == deployment["metadata"]["uid"] for r in rs["metadata"].get("ownerReferences") or [])]
        ready = sum(1 for p in pods if self._pod_ready(p))
        updated = sum(1 for p in pods if p["metadata"].get("labels", {}).get("pod-template-hash") == template_hash)
        available = ready >= max(0, replicas - 1) if replicas else True
        status = {
            "observedGeneration": deployment["metadata"].get("generation", 1),
            "replicas": len(pods), "updatedReplicas": updated, "readyReplicas": ready, "availableReplicas": ready,
            "unavailableReplicas": max(0, replicas - ready),
            "conditions": [
                {"type": "Available", "status": "True" if available else "False",
                 "reason": "MinimumReplicasAvailable" if available else "MinimumReplicasUnavailable",
                 "message": "Deployment has minimum availability." if available else "Deployment does not have minimum availability."},
                {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable",
                 "message": f'ReplicaSet "{rs_name}" has successfully progressed.'},
            ],
        }
        if not status["unavailableReplicas"]:
            status.pop("unavailableReplicas")
        self._write_status(DEPLOYMENTS, deployment, status)

    def _pod_from_template(self, owner: Obj, name: str, node_name: str = "") -> Obj:
        template = copy.deepcopy(owner["spec"]["template"])
        meta = template.get("metadata") or {}
        pod = {
            "metadata": {"name": name, "namespace": owner["metadata"]["namespace"], "labels": meta.get("labels") or {},
                         "annotations": meta.get("annotations") or {}, "ownerReferences": [self._owner_ref(owner)]},
            "spec": template["spec"],
        }
        if not pod["metadata"]["annotations"]:
            pod["metadata"].pop("annotations")
        if node_name:
            pod["spec"]["nodeName"] = node_name
        return pod

    def _reconcile_replicas(self, resource: ResourceType, owner: Obj) -> None:
        pods = [p for p in self._owned(owner) if not p["metadata"].get("deletionTimestamp")]
        want = owner["spec"].get("replicas", 1)
        if resource is STATEFULSETS:
            names = {p["metadata"]["name"] for p in pods}
            for i in range(want):
                name = f"{owner['metadata']['name']}-{i}"
                if name not in names:
                    pod = self._pod_from_template(owner, name)
                    pod["metadata"]["labels"] = {**pod["metadata"]["labels"], "statefulset.kubernetes.io/pod-name": name}
                    pod["spec"]["hostname"] = name
                    self._create(PODS, pod, owner["metadata"]["namespace"])
            for pod in pods:
                index = pod["metadata"]["name"].rsplit("-", 1)[-1]
                if index.isdigit() and int(index) >= want:
                    self._delete(PODS, pod)
        else:
            for _ in range(want - len(pods)):
                name = self._free_name(PODS, owner["metadata"]["namespace"], f"{owner['metadata']['name']}-")
                self._create(PODS, self._pod_from_template(owner, name), owner["metadata"]["namespace"])
            for pod in pods[want:] if len(pods) > want else []:
                self._delete(PODS, pod)
        pods = self._owned(owner)
        ready = sum(1 for p in pods if self._pod_ready(p))
        status = {"observedGeneration": owner["metadata"].get("generation", 1), "replicas": len(pods),
                  "readyReplicas": ready, "availableReplicas": ready}
        if resource is STATEFULSETS:
            status.update({"currentReplicas": len(pods), "updatedReplicas": len(pods)})
        else:
            status["fullyLabeledReplicas"] = len(pods)
        self._write_status(resource, owner, status)

    def _tolerates(self, tolerations: list[Obj], taints: list[Obj]) -> bool:
        for taint in taints:
            if taint.get("effect") not in ("NoSchedule", "NoExecute"):
                continue
            if not any(
                (t.get("operator") == "Exists" and (not t.get("key") or t.get("key") == taint.get("key")))
                or (t.get("key") == taint.get("key") and t.get("value", "") == taint.get("value", ""))
                for t in tolerations
                if not t.get("effect") or t.get("effect") == taint.get("effect")
            ):
                return False
        return True

    @staticmethod
    def _node_ready(node: Obj) -> bool:
        return any(c.get("type") == "Ready" and c.get("status") == "True" for c in _conditions(node))

    def _pods_per_node(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for pod in self.objects[PODS].values():
            node = pod["spec"].get("nodeName")
            if node:
                counts[node] = counts.get(node, 0) + 1
        return counts

    def _fits(self, pod: Obj, node: Obj, *, daemon: bool = False, counts: dict[str, int] | None = None) -> str | None:
        """Why ``pod`` cannot run on ``node``, or None when it can.

        A DaemonSet's pods (``daemon``) go to unschedulable and not-ready nodes too. ``counts``
        (pods per node) saves a pass over every pod when many pods are placed at once.
        """
        spec = pod["spec"]
        if not daemon and not self._node_ready(node):
            return "node(s) were not ready"
        node_spec = node.get("spec") or {}
        if node_spec.get("unschedulable") and not daemon:
            return "node(s) were unschedulable"
        if not self._tolerates(spec.get("tolerations") or [], node_spec.get("taints") or []):
            return "node(s) had untolerated taint(s)"
        labels = node["metadata"].get("labels") or {}
        if any(labels.get(k) != v for k, v in (spec.get("nodeSelector") or {}).items()):
            return "node(s) didn't match Pod's node affinity/selector"
        pods = str(((node.get("status") or {}).get("allocatable") or {}).get("pods", "110"))
        capacity = int(pods) if pods.isdigit() else 110
        if (counts if counts is not None else self._pods_per_node()).get(node["metadata"]["name"], 0) >= capacity:
            return "Too many pods"
        return None

    def _reconcile_daemonset(self, ds: Obj) -> None:
        pods = [p for p in self._owned(ds) if not p["metadata"].get("deletionTimestamp")]
        by_node = {p["spec"].get("nodeName"): p for p in pods}
        desired = 0
        tolerations = [{"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule"},
                       {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute"}]
        counts = self._pods_per_node()
        for node in self.items(NODES):
            probe = {"spec": {**ds["spec"]["template"]["spec"],
                              "tolerations": (ds["spec"]["template"]["spec"].get("tolerations") or []) + tolerations}}
            reason = self._fits(probe, node, daemon=True, counts=counts)
            node_name = node["metadata"]["name"]
            if reason not in (None, "Too many pods"):
                continue
            desired += 1
            if node_name not in by_node:
                pod = self._pod_from_template(ds, self._free_name(PODS, ds["metadata"]["namespace"], f"{ds['metadata']['name']}-"), node_name)
                pod["spec"]["tolerations"] = (pod["spec"].get("tolerations") or []) + tolerations
                pod["spec"]["affinity"] = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [{"matchFields": [{"key": "metadata.name", "operator": "In", "values": [node_name]}]}]}}}
                self._create(PODS, pod, ds["metadata"]["namespace"])
        pods = self._owned(ds)
        ready = sum(1 for p in pods if self._pod_ready(p))
        status = {"currentNumberScheduled": len(pods), "desiredNumberScheduled": desired, "numberMisscheduled": 0,
                  "numberReady": ready, "numberAvailable": ready, "updatedNumberScheduled": len(pods),
                  "observedGeneration": ds["metadata"].get("generation", 1)}
        if desired - ready > 0:
            status["numberUnavailable"] = desired - ready
        self._write_status(DAEMONSETS, ds, status)

    def _schedule_pending(self) -> None:
        nodes = self.items(NODES)
        counts = self._pods_per_node()
        for pod in self.items(PODS):
            if pod["spec"].get("nodeName") or pod["metadata"].get("deletionTimestamp"):
                continue
            reasons: dict[str, int] = {}
            candidates = []
            for node in nodes:
                reason = self._fits(pod, node, counts=counts)
                if reason is None:
                    candidates.append(node)
                else:
                    reasons[reason] = reasons.get(reason, 0) + 1
            if candidates:
                target = min(candidates, key=lambda n: (counts.get(n["metadata"]["name"], 0), n["metadata"]["name"]))["metadata"]["name"]
                self._bind(pod, target)
                counts[target] = counts.get(target, 0) + 1
            else:
                message = f"0/{len(nodes)} nodes are available: " + ", ".join(f"{n} {r}" for r, n in sorted(reasons.items())) + "."
                conditions = [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": message}]
                if pod["status"].get("conditions") != conditions:
                    new = _evolve(pod)
                    new["status"]["conditions"] = conditions
                    self._write(PODS, new, "MODIFIED", pod)
                    self._event(pod, "Warning", "FailedScheduling", message)

    def _quota_used(self, ns: str) -> dict[str, str]:
        """What the quota controller would report as used in ``ns`` (pods, CPU and memory requests/limits)."""
        pods = [p for p in self.items(PODS, ns) if p["status"].get("phase") not in ("Succeeded", "Failed")
                and not p["metadata"].get("deletionTimestamp")]
        totals = {"requests.cpu": 0.0, "limits.cpu": 0.0, "requests.memory": 0.0, "limits.memory": 0.0}
        for pod in pods:
            for container in pod["spec"].get("containers") or []:
                resources = container.get("resources") or {}
                for section in ("requests", "limits"):
                    for resource in ("cpu", "memory"):
                        value = (resources.get(section) or {}).get(resource)
                        if value is not None:
                            totals[f"{section}.{resource}"] += _quantity(value)
        used = {"pods": str(len(pods)), "services.loadbalancers": str(sum(
            1 for s in self.items(SERVICES, ns) if (s.get("spec") or {}).get("type") == "LoadBalancer"))}
        for key, value in totals.items():
            used[key] = f"{round(value * 1000)}m" if key.endswith("cpu") else f"{round(value / 2**20)}Mi"
        used["cpu"], used["memory"] = used["requests.cpu"], used["requests.memory"]
        used["requests.storage"] = "0"
        return used

    # ---- PodDisruptionBudgets ------------------------------------------------------------

    def _pdb_status(self, pdb: Obj) -> Obj:
        ns = pdb["metadata"]["namespace"]
        match = selector_object(pdb["spec"].get("selector"))
        pods = [p for p in self.items(PODS, ns) if match(p["metadata"].get("labels") or {}) and not p["metadata"].get("deletionTimestamp")]
        owners: dict[str, int] = {}
        unowned = 0
        for pod in pods:
            ref = next((r for r in pod["metadata"].get("ownerReferences") or [] if r.get("controller")), None)
            owner = None
            if ref and ref.get("kind") in ("ReplicaSet", "StatefulSet"):
                owner = self.objects[REPLICASETS if ref["kind"] == "ReplicaSet" else STATEFULSETS].get((ns, ref.get("name", "")))
            if owner is not None:
                owners[owner["metadata"]["uid"]] = owner["spec"].get("replicas", 1)
            else:
                unowned += 1
        expected = sum(owners.values()) + unowned
        healthy = sum(1 for p in pods if self._pod_ready(p))
        spec = pdb["spec"]

        def scaled(value: Any, round_up: bool) -> int:
            if isinstance(value, str) and value.endswith("%") and value[:-1].isdigit():
                share = expected * int(value[:-1]) / 100
                return math.ceil(share) if round_up else math.floor(share)
            return value if isinstance(value, int) and not isinstance(value, bool) else 0

        if spec.get("maxUnavailable") is not None:
            desired = max(0, expected - scaled(spec["maxUnavailable"], True))
        elif spec.get("minAvailable") is not None:
            desired = scaled(spec["minAvailable"], True)
        else:
            desired = expected
        allowed = max(0, healthy - desired)
        key = f"{ns}/{pdb['metadata']['name']}"
        if "*" in self.faults.frozen_pdbs or key in self.faults.frozen_pdbs:
            allowed = 0
        return {
            "observedGeneration": pdb["metadata"].get("generation", 1),
            "currentHealthy": healthy, "desiredHealthy": desired, "disruptionsAllowed": allowed, "expectedPods": expected,
            "conditions": [{
                "type": "DisruptionAllowed", "status": "True" if allowed else "False",
                "reason": "SufficientPods" if allowed else "InsufficientPods", "message": "",
                "observedGeneration": pdb["metadata"].get("generation", 1), "lastTransitionTime": "1970-01-01T00:00:00Z",
            }],
        }

    def refresh_budgets(self) -> None:
        """Recompute every PodDisruptionBudget's status (after changing frozen_pdbs)."""
        with self.lock:
            for pdb in self.items(PDBS):
                self._write_status(PDBS, pdb, self._pdb_status(pdb))

    # ---- a starting fleet --------------------------------------------------------------

    def populate(self, *, nodes: int = 3, control_planes: int = 1, pods_per_node: int = 3) -> None:
        """A realistic small cluster: system namespaces, nodes, kube-system, and demo workloads."""
        with self.lock:
            for ns in (*SYSTEM_NAMESPACES, "system-upgrade"):
                self._create(NAMESPACES, {"metadata": {"name": ns}})
            for i in range(1, control_planes + 1):
                self.add_node(f"{self.name}-cp-{i}", control_plane=True)
            workers = max(0, nodes - control_planes)
            for i in range(1, workers + 1):
                self.add_node(f"{self.name}-w-{i}")
            self._create(SERVICEACCOUNTS, {"metadata": {"name": "default", "namespace": "default"}}, "default")
            self._create(DAEMONSETS, self._workload("kube-proxy", "registry.k8s.io/kube-proxy:v" + self.version.lstrip("v"),
                                                    {"k8s-app": "kube-proxy"}, tolerations=[{"operator": "Exists"}]), "kube-system")
            self._create(DEPLOYMENTS, self._workload("coredns", "registry.k8s.io/coredns/coredns:v1.11.1",
                                                     {"k8s-app": "kube-dns"}, replicas=2), "kube-system")
            total = pods_per_node * workers
            if total:
                self._create(NAMESPACES, {"metadata": {"name": "demo", "labels": {"app.kubernetes.io/part-of": "demo"}}})
                db = min(3, workers)
                web = max(1, (total - db) // 2)
                api = max(0, total - db - web)
                self._create(DEPLOYMENTS, self._workload("web", "nginx:1.27", {"app": "web"}, replicas=web), "demo")
                if api:
                    self._create(DEPLOYMENTS, self._workload("api", "ghcr.io/example/api:2.4.1", {"app": "api"}, replicas=api), "demo")
                self._create(STATEFULSETS, self._workload("db", "postgres:16", {"app": "db"}, replicas=db), "demo")
                self._create(PDBS, {"metadata": {"name": "web"}, "spec": {"maxUnavailable": 1, "selector": {"matchLabels": {"app": "web"}}}}, "demo")
                self._create(PDBS, {"metadata": {"name": "db"}, "spec": {"minAvailable": max(1, db - 1), "selector": {"matchLabels": {"app": "db"}}}}, "demo")
                self._create(SERVICES, {"metadata": {"name": "web"}, "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "protocol": "TCP"}]}}, "demo")
            self._settle()

    @staticmethod
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

    def make_ready_now(self) -> None:
        """Start every Pending pod at once (populate without waiting for pod start delays)."""
        with self.lock:
            for pod in self.items(PODS):
                if pod["status"].get("phase") == "Pending" and pod["spec"].get("nodeName"):
                    started = _evolve(pod)
                    started["status"]["phase"] = "Running"
                    self._set_pod_ip(started)
                    self._write(PODS, started, "MODIFIED", pod)
                    node = self.objects[NODES].get(("", pod["spec"]["nodeName"]))
                    self._set_pod_ready(started, bool(node) and self._node_ready(node))
            self._settle()


def _evolve(obj: Obj) -> Obj:
    """A copy of a stored object to change its metadata or status, and write as a new version.

    Cheaper than a deep copy (pods are copied on every kubelet step): the spec and other
    sections are shared with the stored version, which is safe because stored objects are
    never changed in place; what changes spec deep-copies first.
    """
    new = dict(obj)
    new["metadata"] = copy.deepcopy(obj.get("metadata") or {})
    if "status" in obj:
        new["status"] = copy.deepcopy(obj["status"])
    return new


def _conditions(obj: Obj, create: bool = False) -> list[Obj]:
    """An object's status.conditions that are objects (made an empty list when ``create``)."""
    status = obj.get("status")
    if not isinstance(status, dict):
        if not create:
            return []
        status = obj["status"] = {}
    conditions = status.get("conditions")
    if not isinstance(conditions, list):
        if not create:
            return []
        conditions = status["conditions"] = []
    if create:  # the stored list itself, so that a condition appended is kept
        status["conditions"] = conditions = [c for c in conditions if isinstance(c, dict)]
        return conditions
    return [c for c in conditions if isinstance(c, dict)]


def _node_info(node: Obj) -> Obj:
    """A node's status.nodeInfo, made when missing (the node is a copy about to be written)."""
    status = node["status"] = node.get("status") if isinstance(node.get("status"), dict) else {}
    info = status["nodeInfo"] = status.get("nodeInfo") if isinstance(status.get("nodeInfo"), dict) else {}
    return info


def _kubelet_version(node: Obj) -> str:
    info = (node.get("status") or {}).get("nodeInfo") or {}
    return str(info.get("kubeletVersion") or "") if isinstance(info, dict) else ""


def _pod_cidr(index: int) -> str:
    return f"10.{244 + index // 256}.{index % 256}.0/24"


def _internal_ip(node: Obj) -> str:
    addresses = (node.get("status") or {}).get("addresses") or []
    found = [a.get("address", "") for a in addresses if isinstance(a, dict) and a.get("type") == "InternalIP"]
    return str(found[0]) if found else ""


QUANTITY_UNITS = {"": 1, "m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}


def _quantity(value: Any) -> float:
    match = re.match(r"^([0-9.]+)([a-zA-Z]*)$", str(value).strip())
    return float(match.group(1)) * QUANTITY_UNITS.get(match.group(2), 1) if match else 0.0


NAMESPACES = by_plural("namespaces")
NODES = by_plural("nodes")
PODS = by_plural("pods")
EVENTS = by_plural("events")
SERVICES = by_plural("services")
QUOTAS = by_plural("resourcequotas")
PLANS = by_plural("plans", "upgrade.cattle.io")
SERVICEACCOUNTS = by_plural("serviceaccounts")
DEPLOYMENTS = by_plural("deployments", "apps")
REPLICASETS = by_plural("replicasets", "apps")
DAEMONSETS = by_plural("daemonsets", "apps")
STATEFULSETS = by_plural("statefulsets", "apps")
PDBS = by_plural("poddisruptionbudgets", "policy")
LEASES = by_plural("leases", "coordination.k8s.io")
ROLES = by_plural("roles", "rbac.authorization.k8s.io")
ROLEBINDINGS = by_plural("rolebindings", "rbac.authorization.k8s.io")
CLUSTERROLES = by_plural("clusterroles", "rbac.authorization.k8s.io")
CLUSTERROLEBINDINGS = by_plural("clusterrolebindings", "rbac.authorization.k8s.io")
