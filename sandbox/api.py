"""The Kubernetes REST API of one sandbox cluster: paths, verbs, lists, watches.

``handle`` turns one HTTP request (already routed to a cluster) into a
``Response`` or a ``WatchStream``; the HTTP server in ``server.py`` writes it.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote

import yaml

from sandbox import admission, errors, openapi, protobuf, reviews, scale, tables
from sandbox.cluster import SandboxCluster, version_info
from sandbox.matching import field_selector, label_selector
from sandbox.patches import apply_patch
from sandbox.resources import GROUPS, ResourceType, api_group, api_group_list, api_resource_list, lookup

PUBLIC_PATHS = ("/version", "/healthz", "/livez", "/readyz")
HEALTH_CHECKS = (
    "ping", "log", "etcd", "etcd-readiness", "informer-sync", "poststarthook/start-apiserver-admission-initializer",
    "poststarthook/generic-apiserver-start-informers", "poststarthook/start-kube-aggregator-informers",
    "poststarthook/apiservice-registration-controller", "shutdown",
)
MAX_WATCH_SECONDS = 1800
BODY_TYPES = ("application/json", "application/yaml", protobuf.CONTENT_TYPE)
YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
logger = logging.getLogger(__name__)


@dataclass
class Response:
    status: int
    body: bytes
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class WatchStream:
    """A chunked stream of watch events, one JSON object per line."""

    events: AsyncIterator[bytes]
    status: int = 200
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)


def json_response(status: int, body: Any, headers: dict[str, str] | None = None) -> Response:
    return Response(status, json.dumps(body, separators=(",", ":")).encode(), headers=headers or {})


def error_response(error: errors.ApiError) -> Response:
    return json_response(error.code, error.status(), error.headers)


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    # The user's groups when the request names them (impersonation); None: the groups the cluster knows for the user.
    groups: tuple[str, ...] | None = None

    @classmethod
    def parse(cls, method: str, target: str, headers: dict[str, str], body: bytes) -> Request:
        path, _, raw_query = target.partition("?")
        query = {k: v[-1] for k, v in parse_qs(raw_query, keep_blank_values=True).items()}
        return cls(method.upper(), unquote(path).rstrip("/") or "/", query, headers, body)

    def json(self) -> Any:
        """The body as JSON data, whichever of the media types a real server reads it came in (JSON, YAML, or the
        protobuf kubectl 1.32+ sends built-in kinds in); another ``Content-Type`` is a 415, as there."""
        content_type = self.headers.get("content-type", "").split(";", 1)[0].strip().lower()
        if content_type == protobuf.CONTENT_TYPE:
            return protobuf.decode(self.body) if self.body else None
        if content_type not in ("", "application/json", "application/yaml", "*/*"):
            raise errors.unsupported_media_type(BODY_TYPES)
        try:
            if content_type == "application/yaml":
                return yaml.load(self.body or b"null", Loader=YAML_LOADER)
            return json.loads(self.body or b"null")
        except (ValueError, yaml.YAMLError) as exc:
            raise errors.bad_request(f"error decoding request body: {exc}") from None

    def flag(self, name: str) -> bool:
        return self.query.get(name, "").lower() in ("true", "1")

    @property
    def table(self) -> str | None:
        """The Table apiVersion the client asked for (``kubectl get``), or None for objects as stored."""
        return tables.wanted(self.headers.get("accept", ""))


def handle(cluster: SandboxCluster, request: Request) -> Response | WatchStream:
    """Answer one request to ``cluster`` (the path is relative to the cluster's prefix).

    Every failure is a ``Status``: an ``ApiError`` as raised, anything else (a bug in the
    simulation) 500 InternalError, as kube-apiserver answers a panic in a handler.
    """
    try:
        return _dispatch(cluster, request)
    except errors.ApiError as error:
        return error_response(error)
    except Exception as error:
        logger.exception("sandbox: %s %s on cluster %s failed", request.method, request.path, cluster.name)
        return error_response(errors.internal_error(describe_failure(error)))


def describe_failure(error: BaseException) -> str:
    """A bounded one-line account of an unexpected exception, for a 500's message."""
    text = f"{type(error).__name__}: {error}"
    return text if len(text) <= 300 else text[:300] + "…"


def _token(request: Request) -> str | None:
    auth = request.headers.get("authorization", "")
    scheme, _, token = auth.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def _dispatch(cluster: SandboxCluster, request: Request) -> Response | WatchStream:
    token = _token(request)
    user = cluster.user_for(token)
    if token is not None and user is None:
        raise errors.unauthorized()
    path = request.path
    if path in PUBLIC_PATHS or path.startswith(("/livez/", "/readyz/")):
        return _public(cluster, request)
    if user is None:
        raise errors.unauthorized()
    user = _impersonated(cluster, request, user)
    if path == "/api":
        return json_response(200, {"kind": "APIVersions", "versions": ["v1"],
                                   "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1:6443"}]})
    if path == "/apis":
        return json_response(200, api_group_list())
    if path == "/openapi/v3" or path.startswith("/openapi/v3/"):
        return _openapi(path)
    if path == "/openapi/v2":
        body, content_type = openapi.v2(f"v{cluster.server_version}", request.headers.get("accept", ""))
        return Response(200, body, content_type)
    if path == "/api/v1":
        return json_response(200, api_resource_list("", "v1"))
    parts = path.strip("/").split("/")
    if parts[0] == "apis" and len(parts) == 2 and parts[1] in GROUPS:
        return json_response(200, api_group(parts[1]))
    if parts[0] == "apis" and len(parts) == 3 and parts[1] in GROUPS and parts[2] in GROUPS[parts[1]]:
        return json_response(200, api_resource_list(parts[1], parts[2]))
    if parts[0] == "api" and len(parts) >= 3 and parts[1] == "v1":
        group, version, rest = "", "v1", parts[2:]
    elif parts[0] == "apis" and len(parts) >= 4:
        group, version, rest = parts[1], parts[2], parts[3:]
    else:
        raise errors.ApiError(404, "NotFound", "the server could not find the requested resource")
    return _resource_request(cluster, request, user, group, version, rest)


def _impersonated(cluster: SandboxCluster, request: Request, user: str) -> str:
    """The user a request acts as: ``Impersonate-User`` (and ``Impersonate-Group``) when RBAC lets the caller
    impersonate them (``kubectl --as``, ``--as-group``), else the caller.

    As kube-apiserver: a service account's user name (``system:serviceaccount:<ns>:<name>``) is impersonated
    by ``impersonate`` on that ``serviceaccounts`` object, and gets its service account groups unless groups
    are named; every impersonated user but ``system:anonymous`` gets ``system:authenticated``.
    """
    target = request.headers.get("impersonate-user", "").strip()
    groups = tuple(g.strip() for g in request.headers.get("impersonate-group", "").split(",") if g.strip())
    if not target and not groups:
        return user
    if not target:
        raise errors.internal_error(f"requested impersonating groups {list(groups)} without impersonating a user")
    account = admission.service_account_of(target)
    if account is not None:
        if not cluster.may(user, "impersonate", "serviceaccounts", "", account[0], account[1], groups=request.groups):
            raise errors.forbidden(user, "impersonate", "serviceaccounts", "", account[0], account[1])
    elif not cluster.may(user, "impersonate", "users", "", "", target, groups=request.groups):
        raise errors.forbidden(user, "impersonate", "users", "", "", target)
    for group in groups:
        if not cluster.may(user, "impersonate", "groups", "", "", group, groups=request.groups):
            raise errors.forbidden(user, "impersonate", "groups", "", "", group)
    request.groups = admission.user_groups(target, groups, named=bool(groups))
    return target


def _openapi(path: str) -> Response:
    if path == "/openapi/v3":
        return Response(200, openapi.root())
    parts = path.split("/")[3:]  # ["api", "v1"] or ["apis", group, version]
    document = None
    if len(parts) == 2 and parts[0] == "api":
        document = openapi.document("", parts[1])
    elif len(parts) == 3 and parts[0] == "apis":
        document = openapi.document(parts[1], parts[2])
    if document is None:
        raise errors.ApiError(404, "NotFound", "the server could not find the requested resource")
    return Response(200, document)


def _public(cluster: SandboxCluster, request: Request) -> Response:
    path = request.path
    if path == "/version":
        return json_response(200, version_info(cluster.server_version))
    failing = set(cluster.faults.failing_checks)
    which = path.split("/")[1]
    if "/" in path.strip("/"):
        check = path.strip("/").split("/", 1)[1]
        if check not in HEALTH_CHECKS:
            raise errors.ApiError(404, "NotFound", "the server could not find the requested resource")
        if check in failing:
            return Response(500, f"[-]{check} failed: reason withheld\n{which} check failed\n".encode(), "text/plain; charset=utf-8")
        return Response(200, b"ok", "text/plain; charset=utf-8")
    ok = not failing
    if request.flag("verbose") or "verbose" in request.query or not ok:
        lines = [f"[{'-' if c in failing else '+'}]{c} {'failed: reason withheld' if c in failing else 'ok'}" for c in HEALTH_CHECKS]
        lines.append(f"{which} check {'passed' if ok else 'failed'}")
        text = "\n".join(lines) + "\n"
    else:
        text = "ok"
    return Response(200 if ok else 500, text.encode(), "text/plain; charset=utf-8")


def _resource_request(cluster: SandboxCluster, request: Request, user: str, group: str, version: str,
                      rest: list[str]) -> Response | WatchStream:
    namespace = ""
    if rest[0] == "namespaces" and len(rest) >= 3 and lookup(group, version, rest[2]) is not None:
        namespace, rest = rest[1], rest[2:]
    resource = lookup(group, version, rest[0])
    if resource is None:
        raise errors.ApiError(404, "NotFound", "the server could not find the requested resource")
    if namespace and not resource.namespaced:
        raise errors.ApiError(404, "NotFound", "the server could not find the requested resource")
    name = rest[1] if len(rest) > 1 else ""
    sub = rest[2] if len(rest) > 2 else ""
    if len(rest) > 3 or (sub and sub not in resource.subresources):
        raise errors.ApiError(404, "NotFound", "the server could not find the requested resource")
    method = request.method
    if resource.virtual:
        if method != "POST" or name:
            raise errors.method_not_allowed()
        return json_response(201, reviews.create(cluster, user, resource, request.json(), namespace, request.groups))
    watching = request.flag("watch")
    verb = {
        ("GET", False): "watch" if watching else "list", ("POST", False): "create", ("DELETE", False): "deletecollection",
        ("GET", True): "get", ("PUT", True): "update", ("PATCH", True): "patch", ("DELETE", True): "delete",
        ("POST", True): "create",
    }.get((method, bool(name)))
    if verb is None or (method == "POST" and name and sub != "eviction") or (sub == "eviction" and method != "POST"):
        raise errors.method_not_allowed()
    # For namespaces, a request's namespace is the one named (a RoleBinding there may grant reading it).
    scope = namespace or (name if resource.plural == "namespaces" else "")
    if not cluster.may(user, verb, resource.plural if not sub else f"{resource.plural}/{sub}", group, scope, name,
                       groups=request.groups):
        raise errors.forbidden(user, verb, resource.plural if not sub else f"{resource.plural}/{sub}", group, namespace, name)
    if not name:
        if verb == "watch":
            return _watch(cluster, request, resource, namespace)
        if verb == "list":
            return _list(cluster, request, resource, namespace)
        if verb == "create":
            body = request.json() or {}
            if resource.plural == "pods" and isinstance(body, dict):
                cluster.admit_pod_security(namespace or "default", body)
            return json_response(201, cluster.create(resource, body, namespace))
        return _delete_collection(cluster, request, resource, namespace)
    if resource.namespaced and not namespace:
        raise errors.ApiError(404, "NotFound", "the server could not find the requested resource")
    if sub == "eviction":
        body = request.json() or {}
        if not isinstance(body, dict) or not isinstance(body.get("metadata") or {}, dict):
            raise errors.bad_request("the body of the request must be an Eviction object")
        if (body.get("metadata") or {}).get("name", name) != name:
            raise errors.bad_request("name in URL does not match name in Eviction object")
        cluster.evict(namespace, name)
        return json_response(201, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201})
    if sub == "scale":
        return _scale(cluster, request, resource, namespace, name, verb)
    if verb == "get":
        obj = cluster.get(resource, namespace, name)
        if obj is None:
            raise errors.not_found(resource.plural, group, name)
        if request.table:
            return _table_response(request, tables.table(resource, [obj], version=request.table, include=_include(request),
                                                         metadata={"resourceVersion": obj["metadata"].get("resourceVersion", "")}))
        return json_response(200, obj)
    if verb == "update":
        body = request.json() or {}
        if not isinstance(body, dict):
            raise errors.bad_request("the body of the request must be an object")
        if (body.get("metadata") or {}).get("name", name) != name:
            raise errors.bad_request("the name of the object does not match the name on the URL")
        body.setdefault("metadata", {})["name"] = name
        return json_response(200, cluster.replace(resource, body, namespace, sub))
    if verb == "patch":
        content_type = request.headers.get("content-type", "")
        create = content_type.startswith("application/apply-patch")
        if create and not request.query.get("fieldManager"):
            raise errors.invalid(resource.kind, group, name, [("metadata.managedFields", "Required value: is required for apply patch")])
        obj, created = cluster.patch(resource, namespace, name, lambda current: apply_patch(current, request.body, content_type),
                                     sub, create_missing=create)
        return json_response(201 if created else 200, obj)
    options = request.json() if request.body else {}
    options = options if isinstance(options, dict) else {}
    propagation = options.get("propagationPolicy") or request.query.get("propagationPolicy") or "Background"
    return json_response(200, cluster.delete(resource, namespace, name, options.get("preconditions"), propagation))


def _scale(cluster: SandboxCluster, request: Request, resource: ResourceType, namespace: str, name: str, verb: str) -> Response:
    """GET, PUT or PATCH of a workload's ``scale``: an ``autoscaling/v1`` Scale in, a Scale out (``scale.py``)."""
    if verb == "get":
        obj = cluster.get(resource, namespace, name)
        if obj is None:
            raise errors.not_found(resource.plural, resource.group, name)
        return json_response(200, scale.of(obj))
    if verb == "update":
        body = request.json()
        obj, _ = cluster.patch(resource, namespace, name, lambda current: scale.applied(current, body))
    else:
        content_type = request.headers.get("content-type", "")
        obj, _ = cluster.patch(resource, namespace, name, lambda current: scale.applied(
            current, apply_patch(scale.of(current), request.body, content_type)))
    return json_response(200, scale.of(obj))


def _encode_continue(rv: str, after: tuple[str, str]) -> str:
    return base64.urlsafe_b64encode(json.dumps({"rv": rv, "after": list(after)}).encode()).decode()


def _decode_continue(token: str) -> tuple[str, tuple[str, str]]:
    try:
        data = json.loads(base64.urlsafe_b64decode(token.encode()))
        return str(data["rv"]), (str(data["after"][0]), str(data["after"][1]))
    except (ValueError, KeyError, IndexError, TypeError):
        raise errors.bad_request("continue key is not valid: illegal base64 data or invalid JSON") from None


def _list(cluster: SandboxCluster, request: Request, resource: ResourceType, namespace: str) -> Response:
    labels = label_selector(request.query.get("labelSelector"))
    fields = field_selector(request.query.get("fieldSelector"), resource.kind)
    limit_text = request.query.get("limit", "")
    limit = int(limit_text) if limit_text.isascii() and limit_text.isdigit() else 0
    token = request.query.get("continue", "")
    with cluster.store.lock:
        list_rv = str(cluster.store.rv)
        after: tuple[str, str] | None = None
        if token:
            list_rv, after = _decode_continue(token)
        selected = []
        keys = sorted(k for k in cluster.store.objects[resource] if not namespace or k[0] == namespace)
        store = cluster.store.objects[resource]
        for key in keys:
            if after is not None and key <= after:
                continue
            obj = store[key]
            if labels(obj) and fields(obj):
                selected.append((key, obj))
    metadata: dict[str, Any] = {"resourceVersion": list_rv}
    if limit and len(selected) > limit:
        metadata["continue"] = _encode_continue(list_rv, selected[limit - 1][0])
        metadata["remainingItemCount"] = len(selected) - limit
        selected = selected[:limit]
    if request.table:
        return _table_response(request, tables.table(resource, [obj for _, obj in selected], version=request.table,
                                                     include=_include(request), metadata=metadata))
    items = [{k: v for k, v in obj.items() if k not in ("kind", "apiVersion")} for _, obj in selected]
    return json_response(200, {"kind": resource.list_kind, "apiVersion": resource.api_version, "metadata": metadata, "items": items})


def _include(request: Request) -> str:
    include = request.query.get("includeObject") or "Metadata"
    if include not in ("Object", "Metadata", "None"):
        raise errors.bad_request(f'includeObject: Unsupported value: "{include}": supported values: "Metadata", "None", "Object"')
    return include


def _table_response(request: Request, table: dict[str, Any]) -> Response:
    response = json_response(200, table)
    response.content_type = tables.content_type(request.table or tables.TABLE_VERSIONS[0])
    return response


def _delete_collection(cluster: SandboxCluster, request: Request, resource: ResourceType, namespace: str) -> Response:
    labels = label_selector(request.query.get("labelSelector"))
    fields = field_selector(request.query.get("fieldSelector"), resource.kind)
    deleted = []
    for obj in cluster.items(resource, namespace):
        if labels(obj) and fields(obj):
            try:
                deleted.append(cluster.delete(resource, obj["metadata"].get("namespace", ""), obj["metadata"]["name"]))
            except errors.ApiError as error:
                if error.code != 404:
                    raise
    items = [{k: v for k, v in obj.items() if k not in ("kind", "apiVersion")} for obj in deleted]
    return json_response(200, {"kind": resource.list_kind, "apiVersion": resource.api_version,
                               "metadata": {"resourceVersion": str(cluster.store.rv)}, "items": items})


def _watch(cluster: SandboxCluster, request: Request, resource: ResourceType, namespace: str) -> WatchStream:
    labels = label_selector(request.query.get("labelSelector"))
    fields = field_selector(request.query.get("fieldSelector"), resource.kind)
    rv_text = request.query.get("resourceVersion", "")
    since = int(rv_text) if rv_text.isascii() and rv_text.isdigit() and rv_text != "0" else None
    if rv_text and not (rv_text.isascii() and rv_text.isdigit()):
        raise errors.bad_request(f"invalid resource version: {rv_text}")
    timeout_text = request.query.get("timeoutSeconds", "")
    timeout = min(int(timeout_text), MAX_WATCH_SECONDS) if timeout_text.isascii() and timeout_text.isdigit() else MAX_WATCH_SECONDS
    bookmarks = request.flag("allowWatchBookmarks")
    table_version, include = request.table, _include(request) if request.table else "Metadata"
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[str, dict[str, Any]]] = asyncio.Queue()

    def push(event_type: str, obj: dict[str, Any]) -> None:
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            queue.put_nowait((event_type, obj))
        else:
            loop.call_soon_threadsafe(queue.put_nowait, (event_type, obj))

    try:
        watcher = cluster.watch(resource, namespace, labels, fields, push, since)
        initial_error = None
    except errors.ApiError as error:
        watcher, initial_error = None, error

    async def events() -> AsyncIterator[bytes]:
        if initial_error is not None:
            yield _line({"type": "ERROR", "object": initial_error.status()})
            return
        deadline = time.monotonic() + timeout
        last_rv = since or 0
        first = True
        try:
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return
                try:
                    event_type, obj = await asyncio.wait_for(queue.get(), timeout=min(remaining, cluster.bookmark_seconds if bookmarks else remaining))
                except TimeoutError:
                    if bookmarks and time.monotonic() < deadline:
                        rv = str(max(last_rv, cluster.store.rv))
                        bookmark = ({"kind": "Table", "apiVersion": table_version, "metadata": {"resourceVersion": rv},
                                     "columnDefinitions": [], "rows": []} if table_version else
                                    {"kind": resource.kind, "apiVersion": resource.api_version, "metadata": {"resourceVersion": rv}})
                        yield _line({"type": "BOOKMARK", "object": bookmark})
                    continue
                last_rv = int(obj["metadata"]["resourceVersion"])
                if table_version:
                    # Column definitions go with the first event only, as kube-apiserver sends them.
                    obj = tables.table(resource, [obj], version=table_version, include=include, headers=first,
                                       metadata={"resourceVersion": obj["metadata"]["resourceVersion"]})
                    first = False
                yield _line({"type": event_type, "object": obj})
        finally:
            if watcher is not None:
                cluster.unwatch(watcher)

    return WatchStream(events())


def _line(event: dict[str, Any]) -> bytes:
    return json.dumps(event, separators=(",", ":")).encode() + b"\n"
