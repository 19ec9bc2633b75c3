"""One cluster's objects, as kube-apiserver and etcd keep them: resourceVersions, watches, and writes
(create, replace, patch) carried out with the server's validation and defaults.

All state sits behind one re-entrant lock. Objects are never mutated in place: every change
stores a new dict, so the watch log and watchers can hold references.

The store is also where the simulation runs: each change marks what it touched, and ``settle()``
(called after every change, under the lock) hands that to the controllers (``reconcile``) until
nothing is left to do; ``after()`` runs a step later (a pod starting, a kubelet coming back) and
settles again. What the rest of the cluster adds to a write is wired in by ``cluster.py``:
``admission`` plugins see a new object before it is stored (a pod's node selector, its binding),
``on_created`` reactions after (a Plan starts its upgrade).
"""

from __future__ import annotations

import copy
import hashlib
import logging
import random
import threading
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sandbox import defaults, errors, validation
from sandbox.matching import Predicate
from sandbox.resources import CLUSTERROLES, EVENTS, NAMESPACES, NODES, RESOURCES, ResourceType, by_plural

Obj = dict[str, Any]
Key = tuple[str, str]  # (namespace, name); namespace "" for cluster-scoped
Later = Callable[[float, Callable[[], None]], None]

WATCH_LOG_SIZE = 5000
NAME_CHARS = "bcdfghjklmnpqrstvwxz2456789"
SETTLE_ROUNDS = 20
logger = logging.getLogger(__name__)


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def now_micro() -> str:
    """A MicroTime, as a Lease's renewTime carries it."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def evolve(obj: Obj) -> Obj:
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


def conditions(obj: Obj, create: bool = False) -> list[Obj]:
    """An object's status.conditions that are objects (made an empty list when ``create``)."""
    status = obj.get("status")
    if not isinstance(status, dict):
        if not create:
            return []
        status = obj["status"] = {}
    found = status.get("conditions")
    if not isinstance(found, list):
        if not create:
            return []
        found = status["conditions"] = []
    if create:  # the stored list itself, so that a condition appended is kept
        status["conditions"] = found = [c for c in found if isinstance(c, dict)]
        return found
    return [c for c in found if isinstance(c, dict)]


def resource_type(resource: ResourceType | str) -> ResourceType:
    return by_plural(resource) if isinstance(resource, str) else resource


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


def _later_thread(delay: float, fn: Callable[[], None]) -> None:
    timer = threading.Timer(delay, fn)
    timer.daemon = True
    timer.start()


def _no_reconcile(namespaces: set[str], nodes_changed: bool, roles_changed: bool) -> None:
    """Until the controllers are wired in, a change has nothing to reconcile."""


class Store:
    """The objects of one cluster (``name``), their resourceVersions and watchers."""

    def __init__(self, name: str, seed: int, watch_log_size: int = WATCH_LOG_SIZE) -> None:
        self.name = name
        self.seed = seed
        self.lock = threading.RLock()
        self.random = random.Random(f"{seed}:{name}")
        self.rv = 0
        self.objects: dict[ResourceType, dict[Key, Obj]] = {r: {} for r in RESOURCES}
        self.log: deque[LogEntry] = deque(maxlen=watch_log_size)
        self.watchers: list[Watcher] = []
        self.later: Later = _later_thread
        # Controller steps that failed (``step``): tests check none did.
        self.controller_errors: deque[str] = deque(maxlen=100)
        # What the cluster wires in (``cluster.py``): admission plugins see a new object before it is stored,
        # reactions see it after, and ``reconcile`` is what ``settle`` runs for the changes marked since.
        self.admission: list[Callable[[ResourceType, Obj], None]] = []
        self.on_created: list[Callable[[ResourceType, Obj], None]] = []
        self.reconcile: Callable[[set[str], bool, bool], None] = _no_reconcile
        self._dirty_namespaces: set[str] = set()
        self._nodes_changed = False
        self._roles_changed = False
        self._settling = False
        self._soon: list[Callable[[], None]] = []

    # ---- running the simulation ---------------------------------------------------

    def after(self, delay: float, fn: Callable[[], None]) -> None:
        """Run ``fn`` after ``delay`` seconds under the lock, then settle; a delay of 0 runs it at the next settle."""
        def run() -> None:
            with self.lock:
                self.step("a timer", fn)
                self.settle()

        if delay <= 0:
            self._soon.append(fn)
        else:
            self.later(delay, run)

    def settle(self) -> None:
        """Run the controllers until nothing is left to do (called after every change)."""
        if self._settling:
            return
        self._settling = True
        try:
            for _ in range(SETTLE_ROUNDS):
                while self._soon:
                    self.step("a timer", self._soon.pop(0))
                namespaces, nodes_changed, roles_changed = self._dirty_namespaces, self._nodes_changed, self._roles_changed
                self._dirty_namespaces, self._nodes_changed, self._roles_changed = set(), False, False
                if not namespaces and not nodes_changed and not roles_changed:
                    break
                self.reconcile(namespaces, nodes_changed, roles_changed)
        finally:
            self._settling = False

    def step(self, what: str, fn: Callable[..., Any], *args: Any) -> None:
        """Run one controller step. A step that fails is logged and kept in ``controller_errors`` and the others go on,
        as a real controller manager logs a failed sync and carries on: one odd object must not stop the cluster."""
        try:
            fn(*args)
        except errors.ApiError as error:  # e.g. a pod its namespace refuses: the controller tries again at the next change
            logger.info("sandbox %s: %s: %s", self.name, what, error.message)
        except Exception as error:
            logger.exception("sandbox %s: %s failed", self.name, what)
            self.controller_errors.append(f"{what}: {type(error).__name__}: {error}")

    # ---- reading -------------------------------------------------------------------

    def uid(self) -> str:
        return str(uuid.UUID(int=self.random.getrandbits(128), version=4))

    def free_name(self, resource: ResourceType, namespace: str, prefix: str) -> str:
        """``prefix`` plus a random suffix no object of ``resource`` in ``namespace`` has yet (they do
        collide: 6,000 pods of one ReplicaSet expect about one clash among 5-letter suffixes)."""
        while True:
            name = prefix + "".join(self.random.choice(NAME_CHARS) for _ in range(5))
            if (namespace if resource.namespaced else "", name) not in self.objects[resource]:
                return name

    def get(self, resource: ResourceType | str, namespace: str, name: str) -> Obj | None:
        resource = resource_type(resource)
        with self.lock:
            return self.objects[resource].get((namespace if resource.namespaced else "", name))

    def items(self, resource: ResourceType | str, namespace: str = "") -> list[Obj]:
        """Objects of a type (in one namespace, or all), sorted as the API lists them."""
        resource = resource_type(resource)
        with self.lock:
            store = self.objects[resource]
            keys = sorted(k for k in store if not namespace or k[0] == namespace)
            return [store[k] for k in keys]

    @staticmethod
    def key(resource: ResourceType, obj: Obj) -> Key:
        meta = obj["metadata"]
        return (meta.get("namespace", "") if resource.namespaced else "", meta["name"])

    # ---- writing and watching ------------------------------------------------------

    def write(self, resource: ResourceType, obj: Obj, event: str, old: Obj | None) -> Obj:
        """Store ``obj`` (a fresh dict) at a new resourceVersion and tell watchers."""
        self.rv += 1
        obj["metadata"]["resourceVersion"] = str(self.rv)
        key = self.key(resource, obj)
        if event == "DELETED":
            self.objects[resource].pop(key, None)
        else:
            self.objects[resource][key] = obj
        entry = LogEntry(self.rv, resource, event, obj, old)
        self.log.append(entry)
        for watcher in list(self.watchers):
            if not watcher.closed and watcher.resource is resource:
                self._notify(watcher, entry)
        if resource.namespaced:
            self._dirty_namespaces.add(obj["metadata"].get("namespace", ""))
        elif resource is NODES:
            self._nodes_changed = True
        elif resource is CLUSTERROLES:
            self._roles_changed = True
        return obj

    def write_status(self, resource: ResourceType, obj: Obj, status: Obj) -> None:
        if obj.get("status") != status:
            new = evolve(obj)
            new["status"] = status
            self.write(resource, new, "MODIFIED", obj)

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
                        self._notify(watcher, entry)
            self.watchers.append(watcher)
            return watcher

    @staticmethod
    def _notify(watcher: Watcher, entry: LogEntry) -> None:
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

    # ---- the API's writes (the caller holds the lock and settles) --------------------

    @staticmethod
    def _metadata(resource: ResourceType, obj: Obj, namespace: str) -> Obj:
        """``obj``'s metadata (made when missing), in the request's namespace for a namespaced object."""
        validation.check_shape(resource, obj)
        meta: Obj = obj.get("metadata") or {}
        obj["metadata"] = meta
        if resource.namespaced:
            if meta.get("namespace") and namespace and meta["namespace"] != namespace:
                raise errors.bad_request("the namespace of the provided object does not match the namespace sent on the request")
            meta["namespace"] = namespace or meta.get("namespace") or "default"
        return meta

    def create(self, resource: ResourceType, obj: Obj, namespace: str = "") -> Obj:
        meta = self._metadata(resource, obj, namespace)
        if resource.namespaced:
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
            meta["name"] = self.free_name(resource, meta.get("namespace", ""), meta["generateName"])
        validation.validate(resource, obj)
        if self.key(resource, obj) in self.objects[resource]:
            raise errors.already_exists(resource.plural, resource.group, meta["name"])
        obj["kind"], obj["apiVersion"] = resource.kind, resource.api_version
        meta["uid"] = self._identity_uid() if resource is NAMESPACES and meta["name"] == "kube-system" else self.uid()
        meta["creationTimestamp"] = now()
        for dropped in ("deletionTimestamp", "deletionGracePeriodSeconds", "resourceVersion", "managedFields"):
            meta.pop(dropped, None)
        if defaults.has_spec(resource) or defaults.is_custom(resource):
            meta["generation"] = 1
        else:
            meta.pop("generation", None)
        self._defaults(resource, obj)
        written = self.write(resource, obj, "ADDED", None)
        for react in self.on_created:
            react(resource, written)
        return written

    def _defaults(self, resource: ResourceType, obj: Obj) -> None:
        """What the real server fills in on create (``defaults.py``), what needs this cluster's state, then admission."""
        defaults.fill(resource, obj)
        defaults.initial_status(resource, obj)
        if resource.plural == "pods":
            obj["status"]["qosClass"] = defaults.qos_class(obj["spec"])
        elif resource.plural == "services":
            spec = obj["spec"]
            if spec["type"] != "ExternalName":
                spec.setdefault("clusterIP", f"10.96.{self.random.randint(0, 255)}.{self.random.randint(1, 254)}")
                spec.setdefault("clusterIPs", [spec["clusterIP"]])
        for admit in self.admission:
            admit(resource, obj)

    def _identity_uid(self) -> str:
        """The kube-system namespace's UID, which pksweb takes for the cluster's identity: the same for the same
        (seed, cluster name) however the cluster was made, so a restarted sandbox is recognised as the same cluster."""
        digest = hashlib.sha256(f"pksweb-sandbox:{self.seed}:{self.name}:kube-system".encode()).digest()
        return str(uuid.UUID(bytes=digest[:16], version=4))

    def replace(self, resource: ResourceType, obj: Obj, namespace: str, subresource: str) -> Obj:
        """PUT: full update (``subresource="status"`` changes only the status)."""
        meta = self._metadata(resource, obj, namespace)
        key = self.key(resource, obj)
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
                validation.check_pod_update(old, new)
            if new.get("spec") != old.get("spec") and "generation" in old["metadata"]:
                meta["generation"] = old["metadata"]["generation"] + 1
            validation.validate(resource, new)
        new["kind"], new["apiVersion"] = resource.kind, resource.api_version
        return self.write(resource, new, "MODIFIED", old)

    def patch(self, resource: ResourceType, namespace: str, name: str, patcher: Callable[[Obj], Obj],
              subresource: str = "", create_missing: bool = False) -> tuple[Obj, bool]:
        """Apply ``patcher`` to the current object; returns (object, created)."""
        old = self.objects[resource].get((namespace if resource.namespaced else "", name))
        if old is None:
            if not create_missing:
                raise errors.not_found(resource.plural, resource.group, name)
            new = patcher({"metadata": {"name": name, **({"namespace": namespace} if resource.namespaced else {})}})
            return self.create(resource, new, namespace), True
        new = patcher(copy.deepcopy(old))
        if not isinstance(new, dict) or not isinstance(new.get("metadata"), dict):
            raise errors.bad_request("the patch would remove the object's metadata")
        if new["metadata"].get("name", name) != name:
            raise errors.invalid(resource.kind, resource.group, name, [("metadata.name", "Invalid value: field is immutable")])
        new["metadata"]["name"] = name
        new["metadata"]["resourceVersion"] = new["metadata"].get("resourceVersion") or old["metadata"]["resourceVersion"]
        return self.replace(resource, new, namespace, subresource), False

    def remove(self, resource: ResourceType, old: Obj) -> Obj:
        """Delete one stored object (what depends on it is the garbage collector's: ``controllers.py``)."""
        gone = evolve(old)
        gone["metadata"]["deletionTimestamp"] = now()
        self.write(resource, gone, "DELETED", old)
        return gone

    def event(self, about: Obj, type_: str, reason: str, message: str) -> None:
        """Record an Event about ``about`` (none when its namespace is gone)."""
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
        self.create(EVENTS, event, namespace)
