"""Draining a node: cordon, then evict its pods through the Eviction API, respecting PodDisruptionBudgets.

Only the gateway is needed: node operations (``clusters.operations``) and upgrade rollouts both drain through here.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from clusters.kube.errors import KubeError
from clusters.kube.gateway import Gateway


@dataclass
class DrainResult:
    ok: bool
    report: str
    evicted: list[str]
    skipped: list[str]
    blocked: dict[str, str]
    pending: list[str]


def node_drain(*, gateway: Gateway, node: str, timeout: float, on_progress: Callable[..., None] | None = None,
               sleep: Callable[[float], None] = time.sleep, keep: Callable[[], None] | None = None) -> DrainResult:
    """Cordon ``node`` and evict every pod but DaemonSet and mirror pods through the Eviction API,
    retrying refusals (PodDisruptionBudgets) until ``timeout``. Idempotent: evicting a pod
    that is already gone counts as done. Used by node operations and by upgrade rollouts.

    ``keep()`` is called at every turn: it renews the caller's claim on the work (and raises to
    stop when another worker took it over), so a worker that dies mid-drain holds the node for
    one lease period, not for the drain's timeout."""
    report_progress = on_progress or (lambda message, **state: None)
    keep = keep or (lambda: None)
    gateway.set_unschedulable(node, True)
    pods = gateway.pods_on_node(node)
    skipped = sorted(f"{p.key} ({'mirror pod' if p.mirror else 'DaemonSet'})" for p in pods if p.mirror or p.owner_kind == "DaemonSet")
    pending = {p.key: p for p in pods if not (p.mirror or p.owner_kind == "DaemonSet") and not p.terminating}
    # As kubectl drain without --force: a pod no controller would recreate is not evicted (that would delete it for
    # good); the drain stops, the node stays cordoned, and the report names the pods to delete or move first.
    unmanaged = sorted(key for key, p in pending.items() if not p.owner_kind)
    if unmanaged:
        report = (f"Drain of {node} refused: {len(unmanaged)} pod(s) have no controller, so evicting them would delete them for "
                  f"good: {', '.join(unmanaged)}. Delete or move them yourself, then drain again. {node} stays cordoned.")
        report_progress(f"refused: {len(unmanaged)} pod(s) without a controller", unmanaged=unmanaged, pending=sorted(pending))
        return DrainResult(False, report, [], skipped, {key: "no controller" for key in unmanaged}, sorted(pending))
    evicted: list[str] = []
    gone: list[str] = []  # gone before pksweb's eviction: deleted by others, evicted by an earlier attempt, or with the node
    blocked: dict[str, str] = {}
    report_progress(f"cordoned; {len(pending)} pods to evict, {len(skipped)} skipped", evicted=evicted, skipped=skipped,
                    blocked=blocked, pending=sorted(pending))
    deadline = time.monotonic() + timeout
    while pending:
        for key, pod in list(pending.items()):
            keep()
            outcome = gateway.evict(pod.namespace, pod.name)
            if outcome.outcome in ("evicted", "gone"):
                pending.pop(key)
                blocked.pop(key, None)
                (evicted if outcome.outcome == "evicted" else gone).append(key)
                report_progress(f"evicted {key}" if outcome.outcome == "evicted" else f"{key} was gone already",
                                evicted=evicted, gone=gone, blocked=blocked, pending=sorted(pending))
            else:
                reason = f"PodDisruptionBudget {pod.namespace}/{outcome.budget}" if outcome.budget else "the API server"
                if blocked.get(key) != reason:
                    blocked[key] = reason
                    report_progress(f"{key} blocked by {reason}; retrying", evicted=evicted, blocked=blocked,
                                    pending=sorted(pending), detail=outcome.message)
        if not pending or time.monotonic() >= deadline:
            break
        sleep(min(2.0, max(0.0, deadline - time.monotonic())))
    # Evicted pods terminate gracefully; a drain is done when they are gone from the node.
    while not pending and time.monotonic() < deadline:
        keep()
        remaining = [p.key for p in gateway.pods_on_node(node) if p.key in set(evicted)]
        if not remaining:
            break
        sleep(1.0)
    lines = [f"Evicted {len(evicted)} pod(s): {', '.join(evicted) or 'none'}.",
             f"Skipped {len(skipped)}: {', '.join(skipped) or 'none'}."]
    if gone:
        lines.insert(1, f"Gone before pksweb evicted them (deleted, or evicted by an earlier attempt) {len(gone)}: "
                        f"{', '.join(gone)}.")
    try:
        gateway.node(node)
    except KubeError as exc:
        if exc.status != 404:
            raise
        lines.insert(0, f"Node {node} was deleted from the cluster during the drain: its pods went with it, not through "
                        "evictions their PodDisruptionBudgets allowed.")
        return DrainResult(False, "\n".join(lines), evicted, skipped, blocked, sorted(pending))
    if pending:
        by_budget: dict[str, list[str]] = {}
        for key in pending:
            by_budget.setdefault(blocked.get(key, "timeout"), []).append(key)
        lines.insert(0, f"Drain of {node} stopped after {int(timeout)} s with {len(pending)} pod(s) not evicted; {node} stays "
                        "cordoned.")
        lines += [f"Blocked by {why}: {', '.join(sorted(keys))}." for why, keys in sorted(by_budget.items())]
        return DrainResult(False, "\n".join(lines), evicted, skipped, blocked, sorted(pending))
    lines.insert(0, f"Node {node} drained: cordoned and empty but for DaemonSet and mirror pods.")
    return DrainResult(True, "\n".join(lines), evicted, skipped, {}, [])
