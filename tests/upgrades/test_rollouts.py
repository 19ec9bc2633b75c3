"""Rollouts against sandbox clusters over HTTP: node by node, halts with reasons, pause, resume, abort."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from tests.upgrades.conftest import drive
from upgrades import services
from upgrades.models import RolloutStep

pytestmark = pytest.mark.django_db


def start(plan, user, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False):
        return services.plan_start(plan=plan, by=user)


def not_ready_events(sim, node):
    return [e for e in sim.items("events", "default") if e["involvedObject"]["name"] == node and e["reason"] == "NodeNotReady"]


def test_two_waves_three_clusters_every_node_once(approved_plan, fleet, operator, django_capture_on_commit_callbacks):
    clusters, sims = fleet
    rollout = start(approved_plan, operator, django_capture_on_commit_callbacks)
    steps = list(RolloutStep.objects.filter(rollout=rollout).order_by("order"))
    assert [(s.wave, s.cluster_id, s.control_plane) for s in steps][:3] == [(1, clusters[0].pk, True), (1, clusters[0].pk, False),
                                                                            (1, clusters[0].pk, False)]
    assert len(steps) == 9
    done = drive(rollout)
    assert done.state == "succeeded", done.reason
    for sim in sims:
        for node in sim.items("nodes"):
            assert node["status"]["nodeInfo"]["kubeletVersion"] == "v1.31.2"
            assert not node["spec"].get("unschedulable")
            assert len(not_ready_events(sim, node["metadata"]["name"])) == 1  # replaced exactly once
        assert sim.server_version == "1.31.2"
    assert all(s.phase == "done" for s in RolloutStep.objects.filter(rollout=rollout))


def test_pdb_blocked_drain_halts_naming_the_budget(make_approved, fleet, operator, django_capture_on_commit_callbacks):
    _, sims = fleet
    plan = make_approved(drain_timeout_seconds=10)
    sims[0].faults.update({"frozen_pdbs": ["demo/web"]})
    sims[0].refresh_budgets()
    halted = drive(start(plan, operator, django_capture_on_commit_callbacks))
    assert halted.state == "halted"
    assert "Blocked by PodDisruptionBudget web" in halted.reason and "stopped after 10 s" in halted.reason
    step = RolloutStep.objects.filter(rollout=halted).exclude(phase="done").first()
    assert step.phase == "drain" and "halted:" in step.log


def test_stuck_node_halts(make_approved, fleet, operator, django_capture_on_commit_callbacks):
    _, sims = fleet
    cp = f"{sims[0].name}-cp-1"
    plan = make_approved(node_ready_timeout_seconds=1)
    sims[0].faults.update({"stuck_nodes": [cp]})
    halted = drive(start(plan, operator, django_capture_on_commit_callbacks))
    assert halted.state == "halted"
    assert f"Node {cp} of {sims[0].name} did not come back Ready at v1.31.2 within 1 s" in halted.reason


def test_gate_failure_halts(approved_plan, fleet, operator, monkeypatch, django_capture_on_commit_callbacks):
    _, sims = fleet
    monkeypatch.setattr(services, "GATE_GRACE_SECONDS", 0)
    sims[0].faults.update({"failing_checks": ["etcd"]})
    halted = drive(start(approved_plan, operator, django_capture_on_commit_callbacks))
    assert halted.state == "halted" and "Health gate failed on" in halted.reason and "readyz failing: etcd" in halted.reason
    sims[0].faults.clear()
    with pytest.MonkeyPatch.context():
        services.rollout_resume(rollout=halted, by=operator)
    assert drive(halted).state == "succeeded"


def test_pause_then_resume(approved_plan, fleet, operator, django_capture_on_commit_callbacks):
    rollout = start(approved_plan, operator, django_capture_on_commit_callbacks)
    for _ in range(3):
        services.rollout_advance(rollout_id=rollout.pk)
    services.rollout_pause(rollout=rollout, by=operator)
    paused = drive(rollout)
    assert paused.state == "paused"
    in_flight = RolloutStep.objects.filter(rollout=rollout).exclude(phase__in=["done", "pending"])
    assert not in_flight.exists()  # the node in flight finished first
    with pytest.raises(ValidationError, match="not running"):
        services.rollout_pause(rollout=paused, by=operator)
    services.rollout_resume(rollout=paused, by=operator)
    assert drive(paused).state == "succeeded"


def test_abort_uncordons_and_says_so(make_approved, fleet, operator, django_capture_on_commit_callbacks):
    _, sims = fleet
    plan = make_approved(drain_timeout_seconds=10)
    sims[0].faults.update({"frozen_pdbs": ["demo/web"]})
    sims[0].refresh_budgets()
    halted = drive(start(plan, operator, django_capture_on_commit_callbacks))
    step = RolloutStep.objects.filter(rollout=halted).exclude(phase="done").first()
    assert sims[0].get("nodes", "", step.node)["spec"].get("unschedulable") is True
    aborted = services.rollout_abort(rollout=halted, by=operator)
    assert aborted.state == "aborted" and f"node {step.node} uncordoned" in aborted.reason
    assert not sims[0].get("nodes", "", step.node)["spec"].get("unschedulable")


def test_one_active_rollout_per_plan(approved_plan, operator, django_capture_on_commit_callbacks):
    start(approved_plan, operator, django_capture_on_commit_callbacks)
    with pytest.raises(ValidationError, match="Only an approved plan can start"):
        start(approved_plan, operator, django_capture_on_commit_callbacks)


def test_window_closing_mid_rollout_pauses_after_the_current_node(make_approved, operator, django_capture_on_commit_callbacks):
    from datetime import timedelta

    from django.utils import timezone

    from upgrades.models import UpgradePlan

    now = timezone.now()
    plan = make_approved(window_start=now - timedelta(hours=1), window_end=now + timedelta(hours=1))
    rollout = start(plan, operator, django_capture_on_commit_callbacks)
    for _ in range(2):
        services.rollout_advance(rollout_id=rollout.pk)  # the first node is under way
    UpgradePlan.objects.filter(pk=plan.pk).update(window_end=timezone.now() - timedelta(seconds=1))
    paused = drive(rollout)
    assert paused.state == "paused" and paused.reason == "The maintenance window closed."
    steps = RolloutStep.objects.filter(rollout=rollout).order_by("order")
    assert steps[0].phase == "done" and all(s.phase == "pending" for s in steps[1:])  # finished the node in flight


def test_recurring_window_waits_for_the_next_opening(make_approved, operator, django_capture_on_commit_callbacks):
    from datetime import timedelta

    from django.utils import timezone

    from upgrades.models import UpgradePlan

    now = timezone.now()
    plan = make_approved(window_start=now - timedelta(minutes=30), window_end=now + timedelta(minutes=30), window_weekly=True)
    rollout = start(plan, operator, django_capture_on_commit_callbacks)
    UpgradePlan.objects.filter(pk=plan.pk).update(window_start=now - timedelta(hours=3), window_end=now - timedelta(hours=2))
    assert services.rollout_advance(rollout_id=rollout.pk) == 30.0
    rollout.refresh_from_db()
    assert rollout.state == "running" and rollout.waiting_for_window
    assert RolloutStep.objects.filter(rollout=rollout).exclude(phase="pending").count() == 0
    UpgradePlan.objects.filter(pk=plan.pk).update(window_start=now - timedelta(days=7, minutes=1), window_end=now + timedelta(hours=1))
    assert drive(rollout).state == "succeeded"
    rollout.refresh_from_db()
    assert not rollout.waiting_for_window
