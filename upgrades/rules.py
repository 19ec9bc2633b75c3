"""The rules a plan runs by, read from the database alone (no writes, no cluster I/O): whether its
window is open, whether its revision stands approved, whether a cluster's upgrade inputs still are
the approved ones, which nodes may start now, and which nodes a finished rollout left behind.

The plan services (``upgrades.services``: approving, starting) and the engine (``upgrades.engine``:
dispatching, stepping) both apply them, so they live here, below both, rather than in either one.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.utils import timezone

from clusters.models import EXECUTION_LABELS, ClusterNode
from pksweb.text import bound
from upgrades import flight, versions
from upgrades.choices import IDLE, Decision, StepPhase
from upgrades.models import Rollout, RolloutStep, UpgradePlan

WEEK = timedelta(days=7)
REASON_LIMIT = 2000  # a start reason a person writes, and the note of a finished rollout
COMMENT_LIMIT = 2000  # what an approver writes; a longer text is refused in words, not cut


def in_window(plan: UpgradePlan, now: datetime | None = None) -> bool:
    """Whether ``now`` is inside the plan's maintenance window (no window: always)."""
    now = now or timezone.now()
    if plan.window_start is None or plan.window_end is None:
        return True
    if not plan.window_weekly:
        return plan.window_start <= now < plan.window_end
    if now < plan.window_start:
        return False
    offset = (now - plan.window_start) % WEEK
    return offset < plan.window_end - plan.window_start


def approvals_standing(plan: UpgradePlan, revision: str) -> int:
    """Standing approvals of ``revision``; the author's own never counts."""
    approvals = plan.approvals.filter(revision=revision, voided=False, decision=Decision.APPROVE)
    return (approvals.exclude(approver_id=plan.author_id) if plan.author_id is not None else approvals).count()


def unapproved(rollout: Rollout) -> str:
    """Why the engine must not run ``rollout`` ('' when its revision has the plan's quorum of approvals).

    ``plan_start`` checks this too; the engine checks again so that no other path (a task
    message sent by hand, a row written directly) moves a node for a plan nobody approved.
    """
    plan = rollout.plan
    if rollout.revision != plan.revision or approvals_standing(plan, rollout.revision) < plan.quorum:
        return (f"Revision {rollout.revision[:8] or '(none)'} of {plan.name} does not have {plan.quorum} approval(s) from "
                "approvers other than its author; pksweb runs only approved plans. Submit the plan and have it approved.")
    return ""


def inputs_changed(rollout: Rollout, step: RolloutStep) -> str:
    """Why the engine must not act on ``step``'s cluster: its upgrade inputs differ from what was approved."""
    flight_plan = rollout.plan.flight_plan
    approved = flight_plan[step.order] if 0 <= step.order < len(flight_plan) else {}
    if approved.get("cluster_id") != step.cluster_id:
        return ""
    changed = flight.inputs_changed(approved, step.cluster)
    if not changed:
        return ""
    words = " and ".join(EXECUTION_LABELS[what] for what in changed)
    return (f"{step.cluster.name}'s {words} changed after revision {rollout.revision[:8]} of {rollout.plan.name} was approved; "
            "pksweb runs only what was approved. Abort this rollout and write a new plan (or change it back).")


def startable(plan: UpgradePlan, wave_steps: list[RolloutStep]) -> list[RolloutStep]:
    """The wave's nodes that may start now: per cluster, control plane one at a time first, then
    workers while fewer than ``max_unavailable`` of its nodes are in flight."""
    by_cluster: dict[int, list[RolloutStep]] = {}
    for step in wave_steps:
        by_cluster.setdefault(step.cluster_id, []).append(step)
    chosen = []
    for steps in by_cluster.values():
        busy = [s for s in steps if s.phase not in IDLE]
        pending = [s for s in steps if s.phase == StepPhase.PENDING]
        if not pending:
            continue
        if any(s.control_plane and s.phase != StepPhase.DONE for s in steps):
            if not busy and pending[0].control_plane:
                chosen.append(pending[0])
            continue
        chosen.extend(pending[:max(0, plan.max_unavailable - len(busy))])
    return chosen


def left_behind(plan: UpgradePlan, steps: list[RolloutStep]) -> str:
    """The nodes of a finished rollout's clusters (as the last probe saw them) that were not in the approved
    flight plan and do not run the target (they joined after approval), in words; "" when there are none."""
    planned = {(s.cluster_id, s.node) for s in steps}
    left = [n for n in ClusterNode.objects.filter(cluster_id__in={s.cluster_id for s in steps}).select_related("cluster")
            .order_by("cluster__name", "name")
            if (n.cluster_id, n.name) not in planned and not versions.same(n.kubelet_version, plan.target_version)]
    if not left:
        return ""
    names = ", ".join(f"{n.cluster.name}/{n.name} ({n.kubelet_version or 'version unknown'})" for n in left[:10])
    more = f" and {len(left) - 10} more" if len(left) > 10 else ""
    return bound(f"the {len(planned)} node(s) of the plan run {plan.target_version}; not in the approved plan and not at "
                 f"{plan.target_version}: {names}{more} (they joined after approval: write a plan for them)", REASON_LIMIT)
