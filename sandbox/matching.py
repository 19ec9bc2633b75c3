"""Label and field selectors, parsed and matched as kube-apiserver does."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from sandbox.errors import bad_request

Obj = dict[str, Any]
Predicate = Callable[[Obj], bool]

_SET_RE = re.compile(r"^\s*(!?)\s*([A-Za-z0-9./_-]+)\s*(?:(in|notin)\s*\(([^)]*)\))?\s*$")


def _split_requirements(text: str) -> list[str]:
    """Split on commas that are not inside a set's parentheses."""
    parts, depth, current = [], 0, []
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    parts.append("".join(current))
    return [p.strip() for p in parts if p.strip()]


def label_selector(text: str | None) -> Predicate:
    """A predicate over an object's labels from a ``labelSelector`` query value."""
    if not text:
        return lambda obj: True
    checks: list[Callable[[dict[str, str]], bool]] = []
    for req in _split_requirements(text):
        for op in ("!=", "==", "="):
            if op in req and "(" not in req:
                key, _, value = (s.strip() for s in req.partition(op))
                if not key:
                    raise bad_request(f"unable to parse requirement: {req!r}")
                if op == "!=":
                    checks.append(lambda labels, k=key, v=value: labels.get(k) != v)
                else:
                    checks.append(lambda labels, k=key, v=value: labels.get(k) == v)
                break
        else:
            match = _SET_RE.match(req)
            if not match:
                raise bad_request(f"unable to parse requirement: {req!r}")
            negate, key, op, values = match.groups()
            if op:
                allowed = {v.strip() for v in values.split(",") if v.strip()}
                if op == "in":
                    checks.append(lambda labels, k=key, a=allowed: labels.get(k) in a)
                else:
                    checks.append(lambda labels, k=key, a=allowed: labels.get(k) not in a)
            elif negate:
                checks.append(lambda labels, k=key: k not in labels)
            else:
                checks.append(lambda labels, k=key: k in labels)
    return lambda obj: all(check(obj.get("metadata", {}).get("labels") or {}) for check in checks)


def selector_object(selector: dict[str, Any] | None) -> Callable[[dict[str, str]], bool]:
    """A predicate over labels from a LabelSelector object (matchLabels/matchExpressions).

    An empty selector matches everything, a missing one nothing (as for PDBs).
    """
    if not isinstance(selector, dict):
        return lambda labels: False
    match_labels = selector.get("matchLabels") if isinstance(selector.get("matchLabels"), dict) else {}
    expressions = [e for e in selector.get("matchExpressions") or [] if isinstance(e, dict)]

    def matches(labels: dict[str, str]) -> bool:
        if any(labels.get(k) != v for k, v in match_labels.items()):
            return False
        for expr in expressions:
            key, op, values = expr.get("key"), expr.get("operator"), {str(v) for v in expr.get("values") or []}
            if op == "In" and labels.get(key) not in values:
                return False
            if op == "NotIn" and labels.get(key) in values:
                return False
            if op == "Exists" and key not in labels:
                return False
            if op == "DoesNotExist" and key in labels:
                return False
        return True

    return matches


FIELD_PATHS: dict[str, tuple[str, ...]] = {
    "metadata.name": ("metadata", "name"),
    "metadata.namespace": ("metadata", "namespace"),
    "spec.nodeName": ("spec", "nodeName"),
    "status.phase": ("status", "phase"),
    "spec.unschedulable": ("spec", "unschedulable"),
    "involvedObject.name": ("involvedObject", "name"),
    "involvedObject.kind": ("involvedObject", "kind"),
    "involvedObject.namespace": ("involvedObject", "namespace"),
    "involvedObject.uid": ("involvedObject", "uid"),
    "involvedObject.apiVersion": ("involvedObject", "apiVersion"),
    "involvedObject.resourceVersion": ("involvedObject", "resourceVersion"),
    "involvedObject.fieldPath": ("involvedObject", "fieldPath"),
    "reportingComponent": ("reportingComponent",),
    "source": ("source", "component"),
    "type": ("type",),
    "reason": ("reason",),
    "spec.schedulerName": ("spec", "schedulerName"),
    "spec.restartPolicy": ("spec", "restartPolicy"),
    "status.nominatedNodeName": ("status", "nominatedNodeName"),
    "spec.serviceAccountName": ("spec", "serviceAccountName"),
    "status.podIP": ("status", "podIP"),
}


def _field_value(obj: Obj, path: tuple[str, ...]) -> str:
    value: Any = obj
    for part in path:
        value = value.get(part) if isinstance(value, dict) else None
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def field_selector(text: str | None, kind: str) -> Predicate:
    """A predicate from a ``fieldSelector`` (=, ==, != on the supported fields)."""
    if not text:
        return lambda obj: True
    checks: list[Predicate] = []
    for req in _split_requirements(text):
        for op in ("!=", "==", "="):
            if op in req:
                key, _, value = (s.strip() for s in req.partition(op))
                break
        else:
            raise bad_request(f"invalid selector: '{text}'; can't understand '{req}'")
        path = FIELD_PATHS.get(key)
        if path is None:
            raise bad_request(f'field label not supported: {key}')
        if op == "!=":
            checks.append(lambda obj, p=path, v=value: _field_value(obj, p) != v)
        else:
            checks.append(lambda obj, p=path, v=value: _field_value(obj, p) == v)
    return lambda obj: all(check(obj) for check in checks)
