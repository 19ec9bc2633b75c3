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
    parts: list[str] = []
    current: list[str] = []
    depth = 0
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


def _label_holds(labels: dict[str, str], key: str, operator: str, values: frozenset[str]) -> bool:
    if operator == "exists":
        return key in labels
    if operator == "!exists":
        return key not in labels
    return (labels.get(key) in values) == (operator == "in")


def label_selector(text: str | None) -> Predicate:
    """A predicate over an object's labels from a ``labelSelector`` query value."""
    if not text:
        return lambda obj: True
    # (key, "in" | "notin" | "exists" | "!exists", values); ``a=b`` is ``a in (b)``, ``a!=b`` is ``a notin (b)``.
    requirements: list[tuple[str, str, frozenset[str]]] = []
    for req in _split_requirements(text):
        for op in ("!=", "==", "="):
            if op in req and "(" not in req:
                key, _, value = (s.strip() for s in req.partition(op))
                if not key:
                    raise bad_request(f"unable to parse requirement: {req!r}")
                requirements.append((key, "notin" if op == "!=" else "in", frozenset({value})))
                break
        else:
            match = _SET_RE.match(req)
            if not match:
                raise bad_request(f"unable to parse requirement: {req!r}")
            negate, key, op, values = match.groups()
            if op:
                requirements.append((key, op, frozenset(v.strip() for v in values.split(",") if v.strip())))
            else:
                requirements.append((key, "!exists" if negate else "exists", frozenset()))

    def matches(obj: Obj) -> bool:
        labels = obj.get("metadata", {}).get("labels") or {}
        return all(_label_holds(labels, *requirement) for requirement in requirements)

    return matches


def selector_object(selector: dict[str, Any] | None) -> Callable[[dict[str, str]], bool]:
    """A predicate over labels from a LabelSelector object (matchLabels/matchExpressions).

    An empty selector matches everything, a missing one nothing (as for PDBs).
    """
    if not isinstance(selector, dict):
        return lambda labels: False
    match_labels = given if isinstance(given := selector.get("matchLabels"), dict) else {}
    expressions = [e for e in selector.get("matchExpressions") or [] if isinstance(e, dict)]

    def matches(labels: dict[str, str]) -> bool:
        if any(labels.get(k) != v for k, v in match_labels.items()):
            return False
        for expr in expressions:
            key: Any = expr.get("key")
            op, values = expr.get("operator"), {str(v) for v in expr.get("values") or []}
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
    requirements: list[tuple[tuple[str, ...], bool, str]] = []  # (field path, equal, value)
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
        requirements.append((path, op != "!=", value))
    return lambda obj: all((_field_value(obj, path) == value) == equal for path, equal, value in requirements)
