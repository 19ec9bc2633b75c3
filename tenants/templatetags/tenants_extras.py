"""Template helpers for tenant pages: quota bars and network policies in words."""

from __future__ import annotations

import re
from typing import Any

from django import template

register = template.Library()
UNITS = {"": 1, "m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15, "E": 1e18,
         "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
QUANTITY = re.compile(r"^([0-9.]+)([a-zA-Z]*)$")


def parse_quantity(value: Any) -> float | None:
    match = QUANTITY.match(str(value).strip())
    if not match or match.group(2) not in UNITS:
        return None
    return float(match.group(1)) * UNITS[match.group(2)]


@register.filter
def quota_rows(quota: dict[str, Any]) -> list[dict[str, Any]]:
    status = quota.get("status") or {}
    hard, used = status.get("hard") or (quota.get("spec") or {}).get("hard") or {}, status.get("used") or {}
    rows = []
    for name in sorted(hard):
        h, u = parse_quantity(hard[name]), parse_quantity(used.get(name, "0"))
        percent = min(100, round(100 * (u or 0) / h)) if h else 0
        rows.append({"name": name, "hard": hard[name], "used": used.get(name, "0"), "percent": percent})
    return rows


def _peer_words(peer: dict[str, Any]) -> str:
    if "ipBlock" in peer:
        return f"network {peer['ipBlock'].get('cidr')}"
    parts = []
    ns = peer.get("namespaceSelector")
    if ns is not None:
        labels = ns.get("matchLabels") or {}
        exprs = ns.get("matchExpressions") or []
        if "kubernetes.io/metadata.name" in labels:
            parts.append(f"namespace {labels['kubernetes.io/metadata.name']}")
        elif labels:
            parts.append("namespaces labelled " + ", ".join(f"{k}={v}" for k, v in labels.items()))
        elif exprs:
            parts.append("namespaces " + "; ".join(f"{e.get('key')} {e.get('operator')} {', '.join(e.get('values') or [])}" for e in exprs))
        else:
            parts.append("every namespace")
    pods = peer.get("podSelector")
    if pods is not None:
        labels = pods.get("matchLabels") or {}
        parts.append("pods " + ", ".join(f"{k}={v}" for k, v in labels.items()) if labels else
                     ("all its pods" if ns is not None else "pods of this namespace"))
    return " ".join(parts) or "anything"


@register.filter
def policy_words(policy: dict[str, Any]) -> str:
    """A NetworkPolicy as a sentence a person can check."""
    spec = policy.get("spec") or {}
    selector = (spec.get("podSelector") or {}).get("matchLabels") or {}
    target = "pods " + ", ".join(f"{k}={v}" for k, v in selector.items()) if selector else "all pods"
    types = spec.get("policyTypes") or ["Ingress"]
    sentences = []
    for kind, key, peers_key, verb in (("Ingress", "ingress", "from", "accept connections from"), ("Egress", "egress", "to", "connect to")):
        if kind not in types:
            continue
        rules = spec.get(key) or []
        if not rules:
            sentences.append(f"{target} {verb} nothing")
            continue
        for rule in rules:
            peers = rule.get(peers_key) or []
            who = "; ".join(_peer_words(p) for p in peers) if peers else "anywhere"
            ports = ", ".join(f"{p.get('protocol', 'TCP')}/{p.get('port')}" for p in rule.get("ports") or [])
            sentences.append(f"{target} may {verb} {who}{' on ' + ports if ports else ''}")
    return "; ".join(sentences)
