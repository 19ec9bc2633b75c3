"""The flight plan (every step, in order) and the revision fingerprint approvals bind to."""

from __future__ import annotations

import hashlib
import json
import math
from typing import Any

from django.db.models import Avg, DurationField, ExpressionWrapper, F

from clusters.models import Cluster, ClusterNode
from upgrades.models import RolloutStep, UpgradePlan

DEFAULT_NODE_SECONDS = 180


def flight_plan(*, waves: list[list[int]], target: str) -> list[dict[str, Any]]:
    """wave → cluster → node, control-plane nodes first in each cluster."""
    clusters = {c.pk: c for c in Cluster.objects.filter(pk__in=[cid for wave in waves for cid in wave])}
    nodes_by_cluster: dict[int, list[ClusterNode]] = {}
    for node in ClusterNode.objects.filter(cluster_id__in=clusters).order_by("name"):
        nodes_by_cluster.setdefault(node.cluster_id, []).append(node)
    steps = []
    for wave_index, wave in enumerate(waves, start=1):
        for cluster_id in wave:
            cluster = clusters.get(cluster_id)
            if cluster is None:
                continue
            nodes = sorted(nodes_by_cluster.get(cluster_id, []), key=lambda n: (not n.is_control_plane, n.name))
            for node in nodes:
                inputs = cluster.execution_inputs
                steps.append({"wave": wave_index, "cluster_id": cluster.pk, "cluster": cluster.name, "node": node.name,
                              "control_plane": node.is_control_plane, "from_version": node.kubelet_version.lstrip("v"),
                              "driver": inputs["driver"], "command": inputs["command"], "server": inputs["server"],
                              **({"trust": inputs["trust"]} if inputs["trust"] else {})})
    return steps


def estimate_seconds(steps: list[dict[str, Any]], soak_seconds: int, waves: int, max_unavailable: int = 1) -> int:
    """From past rollouts' node steps where there are any (a default otherwise), knowing that the
    clusters of a wave go side by side and each takes its workers ``max_unavailable`` at a time."""
    average = (RolloutStep.objects.filter(phase="done", started_at__isnull=False, finished_at__isnull=False)
               .annotate(took=ExpressionWrapper(F("finished_at") - F("started_at"), output_field=DurationField()))
               .aggregate(avg=Avg("took"))["avg"])
    per_node = average.total_seconds() if average else DEFAULT_NODE_SECONDS
    rounds: dict[tuple[int, int], list[int]] = {}  # (wave, cluster) → [control planes, workers]
    for step in steps:
        counts = rounds.setdefault((step["wave"], step["cluster_id"]), [0, 0])
        counts[0 if step["control_plane"] else 1] += 1
    longest: dict[int, int] = {}
    for (wave, _), (control_planes, workers) in rounds.items():
        longest[wave] = max(longest.get(wave, 0), control_planes + math.ceil(workers / max(1, max_unavailable)))
    return int(per_node * sum(longest.values()) + soak_seconds * max(0, waves - 1))


def revision(plan: UpgradePlan, steps: list[dict[str, Any]]) -> str:
    """A fingerprint of everything that affects execution: the plan's settings, and for every node its
    cluster's driver, command argv, the API server its credential points at and whom the credential
    trusts to be that server (steps recorded before trust was kept have no "trust", and keep their
    revision)."""
    material = {
        "target": plan.target_version, "waves": plan.waves, "max_unavailable": plan.max_unavailable,
        "drain_timeout": plan.drain_timeout_seconds, "node_ready_timeout": plan.node_ready_timeout_seconds,
        "health_gate": plan.health_gate, "soak": plan.soak_seconds,
        "window": [plan.window_start.isoformat() if plan.window_start else None,
                   plan.window_end.isoformat() if plan.window_end else None, plan.window_weekly],
        "steps": [(s["cluster_id"], s["node"], s["control_plane"], s["driver"], s.get("command", []), s.get("server", ""),
                   *((s["trust"],) if s.get("trust") else ()))
                  for s in steps],
    }
    return hashlib.sha256(json.dumps(material, sort_keys=True, default=str).encode()).hexdigest()


def inputs_changed(step: dict[str, Any], cluster: Cluster) -> list[str]:
    """What of ``cluster``'s upgrade inputs differs from what the approved flight-plan ``step`` recorded."""
    current = cluster.execution_inputs
    changed: list[str] = [what for what in ("driver", "command", "server") if what in step and step[what] != current[what]]
    if step.get("trust", "") != current["trust"] and (step.get("trust") or current["trust"]):
        changed.append("trust")
    return changed
