"""A tenant namespace's desired bundle, and how a cluster's objects differ from it.

Pure functions: no I/O. Every object carries ``app.kubernetes.io/managed-by: pksweb``;
pksweb never modifies or deletes an object without it.
"""

from __future__ import annotations

import json
from typing import Any

from tenants.choices import Isolation

MANAGED_BY = "app.kubernetes.io/managed-by"
MANAGED = {MANAGED_BY: "pksweb"}
TENANT_LABEL = "pksweb.io/tenant"
NODE_SELECTOR = "scheduler.alpha.kubernetes.io/node-selector"
DEFAULT_TOLERATIONS = "scheduler.alpha.kubernetes.io/defaultTolerations"
TOLERATIONS_WHITELIST = "scheduler.alpha.kubernetes.io/tolerationsWhitelist"
POD_SECURITY_LABEL = "pod-security.kubernetes.io/enforce"
MANAGED_KEYS = ("spec", "roleRef", "subjects", "rules")  # the body fields pksweb writes and compares (not of a Namespace)
SYSTEM_NAMESPACES = frozenset({"default", "kube-system", "kube-public", "kube-node-lease"})
RESERVED_PREFIXES = ("kube-", "openshift-", "pksweb-")

Obj = dict[str, Any]


def is_managed(obj: Obj | None) -> bool:
    if not obj:
        return False
    return ((obj.get("metadata") or {}).get("labels") or {}).get(MANAGED_BY) == "pksweb"


def dedication_missing(tenant_name: str, labels: dict[str, str] | None, taints: list[str] | None) -> list[str]:
    """What a node given to ``tenant_name`` lacks of its dedication ("label", "taint"), from its labels and its
    taints written as ``key=value:Effect``."""
    return [what for what, holds in (("label", (labels or {}).get(TENANT_LABEL) == tenant_name),
                                     ("taint", f"{TENANT_LABEL}={tenant_name}:NoSchedule" in (taints or []))) if not holds]


def tenant_toleration(tenant_name: str) -> Obj:
    return {"key": TENANT_LABEL, "operator": "Equal", "value": tenant_name, "effect": "NoSchedule"}


def _meta(name: str, namespace: str | None, tenant_name: str, **extra_labels: str) -> Obj:
    meta: Obj = {"name": name, "labels": {**MANAGED, TENANT_LABEL: tenant_name, **extra_labels}}
    if namespace is not None:
        meta["namespace"] = namespace
    return meta


def desired_bundle(tenant: Any, namespace: str) -> list[Obj]:
    """The objects a tenant namespace must have, in the order they are applied."""
    name = tenant.name
    ns_meta = _meta(namespace, None, name, **{POD_SECURITY_LABEL: tenant.pod_security,
                                             "kubernetes.io/metadata.name": namespace})
    if tenant.isolation == Isolation.DEDICATED_NODES:
        toleration = json.dumps([tenant_toleration(name)], separators=(",", ":"))
        ns_meta["annotations"] = {NODE_SELECTOR: f"{TENANT_LABEL}={name}", DEFAULT_TOLERATIONS: toleration,
                                  TOLERATIONS_WHITELIST: toleration}
    bundle: list[Obj] = [{"apiVersion": "v1", "kind": "Namespace", "metadata": ns_meta}]
    hard = {"requests.cpu": tenant.quota_cpu, "limits.cpu": tenant.quota_cpu, "requests.memory": tenant.quota_memory,
            "limits.memory": tenant.quota_memory, "pods": tenant.quota_pods, "requests.storage": tenant.quota_storage,
            "services.loadbalancers": str(tenant.quota_load_balancers)}
    bundle.append({"apiVersion": "v1", "kind": "ResourceQuota", "metadata": _meta("pksweb-quota", namespace, name),
                   "spec": {"hard": hard}})
    bundle.append({"apiVersion": "v1", "kind": "LimitRange", "metadata": _meta("pksweb-limits", namespace, name),
                   "spec": {"limits": [{"type": "Container", "default": {"cpu": tenant.limit_cpu, "memory": tenant.limit_memory},
                                        "defaultRequest": {"cpu": tenant.request_cpu, "memory": tenant.request_memory}}]}})
    bundle += network_policies(tenant, namespace)
    bundle.append(tenant_admin_role())
    bundle.append({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                   "metadata": _meta("pksweb-tenant-admins", namespace, name),
                   "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": TENANT_ADMIN_ROLE},
                   "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": tenant.group}]})
    return bundle


TENANT_ADMIN_ROLE = "pksweb-tenant-admin"
_ALL = ["get", "list", "watch", "create", "update", "patch", "delete", "deletecollection"]
_READ = ["get", "list", "watch"]


def tenant_admin_role() -> Obj:
    """What a tenant's admins may do in their namespaces (bound there, never cluster-wide).

    Like Kubernetes' ``admin`` role for workloads, but the guard rails pksweb owns are
    read-only: quotas, limit ranges, network policies, roles and bindings, and the
    namespace itself (its Pod Security labels). One ClusterRole shared by all tenants.
    """
    rules = [
        {"apiGroups": [""], "resources": ["pods", "pods/log", "pods/exec", "services", "endpoints", "configmaps", "secrets",
                                          "persistentvolumeclaims", "serviceaccounts"], "verbs": _ALL},
        {"apiGroups": ["apps"], "resources": ["deployments", "replicasets", "statefulsets", "daemonsets",
                                              "deployments/scale", "replicasets/scale", "statefulsets/scale"], "verbs": _ALL},
        {"apiGroups": ["batch"], "resources": ["jobs", "cronjobs"], "verbs": _ALL},
        {"apiGroups": ["policy"], "resources": ["poddisruptionbudgets"], "verbs": _ALL},
        {"apiGroups": ["networking.k8s.io"], "resources": ["ingresses"], "verbs": _ALL},
        {"apiGroups": ["networking.k8s.io"], "resources": ["networkpolicies"], "verbs": _READ},
        {"apiGroups": [""], "resources": ["resourcequotas", "resourcequotas/status", "limitranges", "namespaces", "events"],
         "verbs": _READ},
        {"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["roles", "rolebindings"], "verbs": _READ},
    ]
    return {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": TENANT_ADMIN_ROLE, "labels": dict(MANAGED)}, "rules": rules}


def network_policies(tenant: Any, namespace: str) -> list[Obj]:
    """Default-deny ingress and egress, plus the allows the segmentation profile asks for."""
    name = tenant.name

    def policy(policy_name: str, spec: Obj) -> Obj:
        return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                "metadata": _meta(policy_name, namespace, name), "spec": {"podSelector": {}, **spec}}

    policies = [policy("pksweb-default-deny", {"policyTypes": ["Ingress", "Egress"]})]
    if tenant.allow_same_namespace:
        policies.append(policy("pksweb-allow-same-namespace", {
            "policyTypes": ["Ingress", "Egress"],
            "ingress": [{"from": [{"podSelector": {}}]}], "egress": [{"to": [{"podSelector": {}}]}]}))
    if tenant.allow_same_tenant:
        peer = {"namespaceSelector": {"matchLabels": {TENANT_LABEL: name}}}
        policies.append(policy("pksweb-allow-same-tenant", {
            "policyTypes": ["Ingress", "Egress"], "ingress": [{"from": [peer]}], "egress": [{"to": [peer]}]}))
    if tenant.allow_dns:
        policies.append(policy("pksweb-allow-dns", {"policyTypes": ["Egress"], "egress": [{
            "to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
                    "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}],
            "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]}]}))
    if tenant.ingress_from_namespaces:
        # Trusted by name, but never a tenant's namespace of that name: a tenant cannot relabel its namespaces
        # (they are cluster-scoped), so one of them called ingress-nginx is not let in.
        policies.append(policy("pksweb-allow-ingress-from", {"policyTypes": ["Ingress"], "ingress": [{"from": [
            {"namespaceSelector": {"matchExpressions": [{"key": "kubernetes.io/metadata.name", "operator": "In",
                                                         "values": sorted(tenant.ingress_from_namespaces)},
                                                        {"key": TENANT_LABEL, "operator": "DoesNotExist"}]}}]}]}))
    if tenant.egress_cidrs:
        policies.append(policy("pksweb-allow-egress-cidrs", {"policyTypes": ["Egress"], "egress": [{"to": [
            {"ipBlock": {"cidr": cidr}} for cidr in sorted(tenant.egress_cidrs)]}]}))
    return policies


def compared_fields(obj: Obj) -> Obj:
    """The parts of an object pksweb manages (what reconcile writes and drift compares)."""
    meta = obj.get("metadata") or {}
    labels = meta.get("labels") or {}
    annotations = meta.get("annotations") or {}
    fields: Obj = {"labels": labels, "annotations": annotations}
    for key in MANAGED_KEYS:
        if key in obj and obj.get("kind") != "Namespace":
            fields[key] = obj[key]
    return fields


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, inner in value.items():
            out.update(_flatten(inner, f"{prefix}.{key}" if prefix else str(key)))
        return out
    return {prefix: value}


def differences(desired: Obj, actual: Obj | None) -> list[str]:
    """Field-by-field differences of ``actual`` from ``desired`` (labels/annotations: only the desired keys)."""
    kind, name = desired["kind"], desired["metadata"]["name"]
    if actual is None:
        return [f"{kind} {name} is missing"]
    want, have = compared_fields(desired), compared_fields(actual)
    diffs = []
    for key in ("labels", "annotations"):
        for label, value in want[key].items():
            if have[key].get(label) != value:
                diffs.append(f"{kind} {name}: metadata.{key}.{label} is {_show(have[key].get(label))}, want {_show(value)}")
    for key in ("spec", "roleRef", "subjects"):
        if key not in want:
            continue
        flat_want, flat_have = _flatten(_normalise(want[key]), key), _flatten(_normalise(have.get(key)), key)
        for path in sorted(set(flat_want) | set(flat_have)):
            if flat_want.get(path) != flat_have.get(path):
                diffs.append(f"{kind} {name}: {path} is {_show(flat_have.get(path))}, want {_show(flat_want.get(path))}")
    return diffs


def _normalise(value: Any) -> Any:
    """Lists compared as JSON (order matters as in the API); empty values dropped."""
    if isinstance(value, dict):
        return {k: _normalise(v) for k, v in value.items() if v not in (None, {}, [])}
    if isinstance(value, list):
        return json.dumps(value, sort_keys=True, separators=(",", ":"))
    return str(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else value


def _show(value: Any) -> str:
    return "absent" if value is None else repr(value) if not isinstance(value, str) or len(value) < 120 else repr(value[:117] + "...")
