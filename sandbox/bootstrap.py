"""The RBAC every cluster starts with, as kube-apiserver's bootstrap policy seeds it, and role aggregation.

- ``cluster-admin`` (everything; bound to the group ``system:masters``);
- ``admin``, ``edit`` and ``view``: aggregated roles. Their rules are not written here but
  gathered, as the clusterrole-aggregation controller does, from every ClusterRole whose
  labels match their ``aggregationRule`` (``rbac.authorization.k8s.io/aggregate-to-admin``,
  ``-edit``, ``-view``): ``system:aggregate-to-*`` hold the rules, ``edit`` is labelled into
  ``admin`` and ``view`` into ``edit``, so admin ⊇ edit ⊇ view. A ClusterRole anyone adds
  with such a label extends them, as on a real cluster. The rules are the real ones, cut to
  the API groups and kinds a real cluster has (the sandbox serves fewer; a rule naming a kind
  it does not serve costs nothing);
- ``system:basic-user`` (ask what one may do), ``system:discovery`` and
  ``system:public-info-viewer`` (discovery, health and version URLs), bound to
  ``system:authenticated`` (the last also to ``system:unauthenticated``).

Every object is labelled ``kubernetes.io/bootstrapping: rbac-defaults`` and annotated
``rbac.authorization.kubernetes.io/autoupdate: "true"``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

Obj = dict[str, Any]
RBAC = "rbac.authorization.k8s.io"
BOOTSTRAP_LABELS = {"kubernetes.io/bootstrapping": "rbac-defaults"}
AUTOUPDATE = {"rbac.authorization.kubernetes.io/autoupdate": "true"}
AGGREGATE_TO = "rbac.authorization.k8s.io/aggregate-to-"

READ = ["get", "list", "watch"]
WRITE = ["create", "delete", "deletecollection", "patch", "update"]
READ_WRITE = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]


def _rule(verbs: list[str], groups: list[str], resources: list[str]) -> Obj:
    return {"verbs": list(verbs), "apiGroups": list(groups), "resources": list(resources)}


def _urls(verbs: list[str], urls: list[str]) -> Obj:
    return {"verbs": list(verbs), "nonResourceURLs": list(urls)}


AGGREGATE_TO_VIEW = [
    _rule(READ, [""], ["configmaps", "endpoints", "persistentvolumeclaims", "persistentvolumeclaims/status", "pods",
                       "replicationcontrollers", "replicationcontrollers/scale", "serviceaccounts", "services", "services/status"]),
    _rule(READ, [""], ["bindings", "events", "limitranges", "namespaces/status", "pods/log", "pods/status",
                       "replicationcontrollers/status", "resourcequotas", "resourcequotas/status"]),
    _rule(READ, [""], ["namespaces"]),
    _rule(READ, ["discovery.k8s.io"], ["endpointslices"]),
    _rule(READ, ["apps"], ["controllerrevisions", "daemonsets", "daemonsets/status", "deployments", "deployments/scale",
                           "deployments/status", "replicasets", "replicasets/scale", "replicasets/status", "statefulsets",
                           "statefulsets/scale", "statefulsets/status"]),
    _rule(READ, ["autoscaling"], ["horizontalpodautoscalers", "horizontalpodautoscalers/status"]),
    _rule(READ, ["batch"], ["cronjobs", "cronjobs/status", "jobs", "jobs/status"]),
    _rule(READ, ["policy"], ["poddisruptionbudgets", "poddisruptionbudgets/status"]),
    _rule(READ, ["networking.k8s.io"], ["ingresses", "ingresses/status", "networkpolicies"]),
]

AGGREGATE_TO_EDIT = [
    _rule(READ, [""], ["pods/attach", "pods/exec", "pods/portforward", "pods/proxy", "secrets", "services/proxy"]),
    _rule(["impersonate"], [""], ["serviceaccounts"]),
    _rule(WRITE, [""], ["pods", "pods/attach", "pods/exec", "pods/portforward", "pods/proxy"]),
    _rule(["create"], [""], ["pods/eviction"]),
    _rule(WRITE, [""], ["configmaps", "events", "persistentvolumeclaims", "replicationcontrollers", "replicationcontrollers/scale",
                        "secrets", "serviceaccounts", "services", "services/proxy"]),
    _rule(["create"], [""], ["serviceaccounts/token"]),
    _rule(WRITE, ["apps"], ["daemonsets", "deployments", "deployments/rollback", "deployments/scale", "replicasets",
                            "replicasets/scale", "statefulsets", "statefulsets/scale"]),
    _rule(WRITE, ["autoscaling"], ["horizontalpodautoscalers"]),
    _rule(WRITE, ["batch"], ["cronjobs", "jobs"]),
    _rule(WRITE, ["policy"], ["poddisruptionbudgets"]),
    _rule(WRITE, ["networking.k8s.io"], ["ingresses", "networkpolicies"]),
    _rule(READ_WRITE, ["coordination.k8s.io"], ["leases"]),
]

AGGREGATE_TO_ADMIN = [
    _rule(["create"], ["authorization.k8s.io"], ["localsubjectaccessreviews"]),
    _rule(READ_WRITE, [RBAC], ["rolebindings", "roles"]),
]


def _meta(name: str, labels: dict[str, str] | None = None) -> Obj:
    return {"name": name, "labels": {**BOOTSTRAP_LABELS, **(labels or {})}, "annotations": dict(AUTOUPDATE)}


def _aggregated(name: str, into: str | None, selects: str) -> Obj:
    return {"metadata": _meta(name, {f"{AGGREGATE_TO}{into}": "true"} if into else None),
            "aggregationRule": {"clusterRoleSelectors": [{"matchLabels": {f"{AGGREGATE_TO}{selects}": "true"}}]},
            "rules": []}


def cluster_roles() -> list[Obj]:
    return [
        {"metadata": _meta("cluster-admin"), "rules": [_rule(["*"], ["*"], ["*"]), _urls(["*"], ["*"])]},
        _aggregated("admin", None, "admin"),
        _aggregated("edit", "admin", "edit"),
        _aggregated("view", "edit", "view"),
        {"metadata": _meta("system:aggregate-to-admin", {f"{AGGREGATE_TO}admin": "true"}), "rules": AGGREGATE_TO_ADMIN},
        {"metadata": _meta("system:aggregate-to-edit", {f"{AGGREGATE_TO}edit": "true"}), "rules": AGGREGATE_TO_EDIT},
        {"metadata": _meta("system:aggregate-to-view", {f"{AGGREGATE_TO}view": "true"}), "rules": AGGREGATE_TO_VIEW},
        {"metadata": _meta("system:basic-user"), "rules": [
            _rule(["create"], ["authentication.k8s.io"], ["selfsubjectreviews"]),
            _rule(["create"], ["authorization.k8s.io"], ["selfsubjectaccessreviews", "selfsubjectrulesreviews"])]},
        {"metadata": _meta("system:discovery"), "rules": [_urls(["get"], [
            "/api", "/api/*", "/apis", "/apis/*", "/healthz", "/livez", "/openapi", "/openapi/*", "/readyz", "/version", "/version/"])]},
        {"metadata": _meta("system:public-info-viewer"), "rules": [_urls(["get"], [
            "/healthz", "/livez", "/readyz", "/version", "/version/"])]},
    ]


def _group(name: str) -> Obj:
    return {"apiGroup": RBAC, "kind": "Group", "name": name}


def cluster_role_bindings() -> list[Obj]:
    def binding(name: str, *groups: str) -> Obj:
        return {"metadata": _meta(name), "roleRef": {"apiGroup": RBAC, "kind": "ClusterRole", "name": name},
                "subjects": [_group(g) for g in groups]}

    return [binding("cluster-admin", "system:masters"), binding("system:basic-user", "system:authenticated"),
            binding("system:discovery", "system:authenticated"),
            binding("system:public-info-viewer", "system:authenticated", "system:unauthenticated")]


def _selects(selector: Any, labels: dict[str, str]) -> bool:
    if not isinstance(selector, dict):
        return False
    match = selector.get("matchLabels") or {}
    expressions = selector.get("matchExpressions") or []
    if not isinstance(match, dict) or not isinstance(expressions, list) or (not match and not expressions):
        return False  # an empty selector selects nothing here (the controller would take every role)
    for expression in expressions:
        if not isinstance(expression, dict):
            return False
        key: Any = expression.get("key")
        operator, values = expression.get("operator"), expression.get("values") or []
        if ((operator == "In" and labels.get(key) not in values) or (operator == "NotIn" and labels.get(key) in values)
                or (operator == "Exists" and key not in labels) or (operator == "DoesNotExist" and key in labels)
                or operator not in ("In", "NotIn", "Exists", "DoesNotExist")):
            return False
    return all(labels.get(k) == v for k, v in match.items())


def aggregated_rules(role: Obj, roles: Iterable[Obj]) -> list[Obj] | None:
    """What the aggregation controller makes of ``role``'s rules: those of every other ClusterRole its
    ``aggregationRule`` selects (by name, without repeats); None when ``role`` aggregates nothing."""
    rule = role.get("aggregationRule")
    if not isinstance(rule, dict):
        return None
    selectors = rule.get("clusterRoleSelectors") or []
    name = (role.get("metadata") or {}).get("name")
    found: list[Obj] = []
    for other in sorted(roles, key=lambda r: str((r.get("metadata") or {}).get("name", ""))):
        meta = other.get("metadata") or {}
        labels = given if isinstance(given := meta.get("labels"), dict) else {}
        if meta.get("name") == name or not any(_selects(s, labels) for s in selectors):
            continue
        found += [r for r in other.get("rules") or [] if isinstance(r, dict) and r not in found]
    return found
