"""Kubernetes version rules for upgrade plans: skew, one minor at a time, removed APIs."""

from __future__ import annotations

import re

# Vendors add a suffix (v1.29.1-eks-b9c9ed7, v1.29.1-gke.1589018, v1.29.1+k3s2): the numbers decide.
VERSION = re.compile(r"^v?([0-9]{1,4})\.([0-9]{1,4})\.([0-9]{1,6})(?:[-+][0-9A-Za-z.+_-]{0,200})?\Z")
KUBELET_SKEW = 3  # kubelets may be up to three minors older than the API server (since 1.28)

# group/version → (resources that held objects, removed in minor). From the Kubernetes deprecation guide.
REMOVED_APIS: dict[str, tuple[tuple[str, ...], int]] = {
    "extensions/v1beta1": (("ingresses", "deployments", "daemonsets", "replicasets", "networkpolicies"), 22),
    "apps/v1beta1": (("deployments", "statefulsets"), 16),
    "apps/v1beta2": (("deployments", "statefulsets", "daemonsets", "replicasets"), 16),
    "networking.k8s.io/v1beta1": (("ingresses", "ingressclasses"), 22),
    "rbac.authorization.k8s.io/v1beta1": (("roles", "rolebindings", "clusterroles", "clusterrolebindings"), 22),
    "admissionregistration.k8s.io/v1beta1": (("mutatingwebhookconfigurations", "validatingwebhookconfigurations"), 22),
    "apiextensions.k8s.io/v1beta1": (("customresourcedefinitions",), 22),
    "scheduling.k8s.io/v1beta1": (("priorityclasses",), 22),
    "coordination.k8s.io/v1beta1": (("leases",), 22),
    "batch/v1beta1": (("cronjobs",), 25),
    "discovery.k8s.io/v1beta1": (("endpointslices",), 25),
    "events.k8s.io/v1beta1": (("events",), 25),
    "autoscaling/v2beta1": (("horizontalpodautoscalers",), 25),
    "policy/v1beta1": (("poddisruptionbudgets", "podsecuritypolicies"), 25),
    "node.k8s.io/v1beta1": (("runtimeclasses",), 25),
    "autoscaling/v2beta2": (("horizontalpodautoscalers",), 26),
    "flowcontrol.apiserver.k8s.io/v1beta1": (("flowschemas", "prioritylevelconfigurations"), 26),
    "storage.k8s.io/v1beta1": (("csistoragecapacities",), 27),
    "flowcontrol.apiserver.k8s.io/v1beta2": (("flowschemas", "prioritylevelconfigurations"), 29),
    "flowcontrol.apiserver.k8s.io/v1beta3": (("flowschemas", "prioritylevelconfigurations"), 32),
}


def parse(version: str) -> tuple[int, int, int] | None:
    match = VERSION.match((version or "").strip())
    return tuple(int(p) for p in match.groups()) if match else None  # type: ignore[return-value]


def same(a: str, b: str) -> bool:
    """Whether two versions name the same release (vendor suffixes aside)."""
    left, right = parse(a), parse(b)
    return left is not None and left == right


def minor_of(version: str) -> tuple[int, int] | None:
    parsed = parse(version)
    return (parsed[0], parsed[1]) if parsed else None


def removed_between(current: str, target: str) -> dict[str, tuple[tuple[str, ...], int]]:
    """APIs removed in a minor after ``current`` and up to ``target``."""
    cur, tgt = parse(current), parse(target)
    if not cur or not tgt:
        return {}
    return {gv: spec for gv, spec in REMOVED_APIS.items() if cur[1] < spec[1] <= tgt[1] and tgt[0] == 1}
