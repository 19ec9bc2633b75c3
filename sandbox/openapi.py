"""Just enough OpenAPI v3 (``/openapi/v3``) for kubectl's ``apply``: which operations each kind has.

kubectl reads it to learn that the server checks fields itself (a ``fieldValidation``
query parameter on the kind's PATCH), so it sends ``fieldValidation=Strict`` instead of
validating against schemas it would otherwise download. No schemas are served: ``kubectl
apply`` then computes its strategic merge patch from the types compiled into it (and a
JSON merge patch for custom resources), as it does with any server whose OpenAPI lacks
a kind; ``kubectl explain`` has nothing to explain.
"""

from __future__ import annotations

import hashlib
import json
from functools import cache
from typing import Any

from sandbox.resources import RESOURCES, ResourceType

Obj = dict[str, Any]
QUERY_PARAMETERS = ("dryRun", "fieldManager", "fieldValidation", "force", "pretty")


def gv_path(group: str, version: str) -> str:
    return f"apis/{group}/{version}" if group else f"api/{version}"


def _operation(resource: ResourceType, action: str) -> Obj:
    parameters = [{"name": name, "in": "query", "schema": {"type": "string" if name != "force" else "boolean", "uniqueItems": True}}
                  for name in QUERY_PARAMETERS if action != "get" and (name != "force" or action == "patch")]
    return {"operationId": f"{action}{resource.kind}", "parameters": parameters,
            "responses": {"200": {"description": "OK"}, "401": {"description": "Unauthorized"}},
            "x-kubernetes-action": action,
            "x-kubernetes-group-version-kind": {"group": resource.group, "version": resource.version, "kind": resource.kind}}


def _paths(resource: ResourceType) -> dict[str, Obj]:
    base = f"/{gv_path(resource.group, resource.version)}"
    collection = f"{base}/namespaces/{{namespace}}/{resource.plural}" if resource.namespaced else f"{base}/{resource.plural}"
    if resource.virtual:
        return {collection: {"post": _operation(resource, "post")}}
    return {collection: {"get": _operation(resource, "list"), "post": _operation(resource, "post")},
            f"{collection}/{{name}}": {"get": _operation(resource, "get"), "put": _operation(resource, "put"),
                                       "patch": _operation(resource, "patch"), "delete": _operation(resource, "delete")}}


@cache
def document(group: str, version: str) -> bytes | None:
    """The OpenAPI document of one group/version, or None when the sandbox serves no such group/version."""
    resources = [r for r in RESOURCES if r.group == group and r.version == version]
    if not resources:
        return None
    paths: dict[str, Obj] = {}
    for resource in resources:
        paths.update(_paths(resource))
    doc = {"openapi": "3.0.0", "info": {"title": "Kubernetes", "version": "unversioned"}, "paths": paths,
           "components": {"schemas": {}}}
    return json.dumps(doc, separators=(",", ":")).encode()


@cache
def root() -> bytes:
    """``/openapi/v3``: where each group/version's document is (client-relative, so a path prefix is kept)."""
    paths = {}
    for group, version in dict.fromkeys((r.group, r.version) for r in RESOURCES):
        digest = hashlib.sha256(document(group, version) or b"").hexdigest()[:32].upper()
        paths[gv_path(group, version)] = {"serverRelativeURL": f"/openapi/v3/{gv_path(group, version)}?hash={digest}"}
    return json.dumps({"paths": paths}, separators=(",", ":")).encode()


V2_PROTOBUF = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf"


def _field(number: int, payload: bytes) -> bytes:
    """One length-delimited protobuf field (the document's strings and messages are all such)."""
    size, length = b"", len(payload)
    while True:
        size += bytes([(length & 0x7F) | (0x80 if length > 0x7F else 0)])
        length >>= 7
        if not length:
            break
    return bytes([number << 3 | 2]) + size + payload


def v2(version: str, accept: str) -> tuple[bytes, str]:
    """``/openapi/v2`` as (body, content type): protobuf when ``accept`` asks for it, else JSON."""
    if "application/com.github.proto-openapi.spec.v2" in accept:
        # Document: swagger 1, info 2 (title 1, version 2), paths 8.
        info = _field(1, b"Kubernetes") + _field(2, version.encode())
        return _field(1, b"2.0") + _field(2, info) + _field(8, b""), V2_PROTOBUF
    document = {"swagger": "2.0", "info": {"title": "Kubernetes", "version": version}, "paths": {}, "definitions": {}}
    return json.dumps(document, separators=(",", ":")).encode(), "application/json"
