"""Rollouts against sandbox clusters over HTTP: node by node, halts with reasons, pause, resume, abort."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from pksweb.models import Event
from tests.support.rollouts import drive, rollout_advance, start
from upgrades import engine, services
from upgrades.models import RolloutStep

pytestmark = pytest.mark.django_db


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
    assert "Blocked by PodDisruptionBudget demo/web" in halted.reason and "stopped after 10 s" in halted.reason
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
    monkeypatch.setattr(engine, "GATE_GRACE_SECONDS", 0)
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
        rollout_advance(rollout_id=rollout.pk)
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
    with django_capture_on_commit_callbacks(execute=False) as queued:
        aborted = services.rollout_abort(rollout=halted, by=operator)
    assert aborted.state == "aborted" and "uncordoning 1 node(s)" in aborted.reason and step.node in aborted.reason
    # The request called no cluster: a worker uncordons (a task queued on commit, beside the push), and says so.
    assert len(queued) == 2 and sims[0].get("nodes", "", step.node)["spec"].get("unschedulable") is True
    engine.step_advance(step_id=step.pk)
    assert not sims[0].get("nodes", "", step.node)["spec"].get("unschedulable")
    step.refresh_from_db()
    assert step.phase == "failed" and f"node {step.node} uncordoned" in step.log
    assert Event.objects.filter(kind="rollout.step_changed", message__contains=f"after the abort: node {step.node} uncordoned").exists()


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
        rollout_advance(rollout_id=rollout.pk)  # the first node is under way
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
    assert rollout_advance(rollout_id=rollout.pk) == 30.0
    rollout.refresh_from_db()
    assert rollout.state == "running" and rollout.waiting_for_window
    assert RolloutStep.objects.filter(rollout=rollout).exclude(phase="pending").count() == 0
    UpgradePlan.objects.filter(pk=plan.pk).update(window_start=now - timedelta(days=7, minutes=1), window_end=now + timedelta(hours=1))
    assert drive(rollout).state == "succeeded"
    rollout.refresh_from_db()
    assert not rollout.waiting_for_window


def drive_watching(rollout, limit: float = 60.0):
    """Drive the rollout, noting after every round which nodes were in flight at once."""
    rounds = []

    def note():
        rounds.append([(s.cluster_id, s.node, s.control_plane) for s in
                       RolloutStep.objects.filter(rollout=rollout).exclude(phase__in=["pending", "done", "failed"])])

    return drive(rollout, limit, after_round=note), rounds


def test_clusters_of_a_wave_upgrade_at_the_same_time(approved_plan, fleet, operator, django_capture_on_commit_callbacks):
    clusters, sims = fleet
    done, rounds = drive_watching(start(approved_plan, operator, django_capture_on_commit_callbacks))
    assert done.state == "succeeded", done.reason
    second_wave = {clusters[1].pk, clusters[2].pk}
    assert any({c for c, _, _ in r} == second_wave for r in rounds), "the second wave's clusters never ran side by side"
    for r in rounds:  # never a node of wave 2 while the canary runs, one node per cluster (max_unavailable 1)
        assert not ({c for c, _, _ in r} & second_wave and clusters[0].pk in {c for c, _, _ in r})
        assert len(r) == len({c for c, _, _ in r})
    for sim in sims:
        for node in sim.items("nodes"):
            assert len(not_ready_events(sim, node["metadata"]["name"])) == 1


def test_max_unavailable_takes_that_many_workers_at_once_after_the_control_plane(db, sandbox, operator, approver,
                                                                                django_capture_on_commit_callbacks):
    from clusters.kube import Credential
    from clusters.models import Cluster
    from clusters.services import cluster_register
    from clusters.sweep import cluster_probe

    sim = sandbox.add_cluster("wide-1", nodes=6, pods_per_node=1, pod_start_delay=0.01, node_ready_delay=0.05)
    try:
        with django_capture_on_commit_callbacks(execute=False):
            cluster = cluster_register(name="wide-1", created_by=operator, check=False,
                                       credential=Credential.from_dict(sandbox.credential("wide-1")))
            Cluster.objects.filter(pk=cluster.pk).update(upgrade_driver="sandbox")
            cluster_probe(cluster=Cluster.objects.get(pk=cluster.pk))
            plan = services.plan_create(author=operator, name="wide", target_version="1.31.2", waves=[[cluster.pk]],
                                        max_unavailable=2, drain_timeout_seconds=30, node_ready_timeout_seconds=30)
            assert plan.preflight["failures"] == [], plan.preflight
            plan = services.plan_submit(plan=plan, by=operator)
            plan = services.plan_decide(plan=plan, approver=approver, revision=plan.revision, decision="approve")
        done, rounds = drive_watching(start(plan, operator, django_capture_on_commit_callbacks))
        assert done.state == "succeeded", done.reason
        assert max(len(r) for r in rounds) == 2, "never two workers at once"
        for r in rounds:
            assert len(r) <= 2
            assert not (any(cp for _, _, cp in r) and len(r) > 1), f"the control plane overlapped another node: {r}"
        first_worker = next(i for i, r in enumerate(rounds) if any(not cp for _, _, cp in r))
        assert not any(cp for r in rounds[first_worker:] for _, _, cp in r)  # control plane first
        for node in sim.items("nodes"):
            assert node["status"]["nodeInfo"]["kubeletVersion"] == "v1.31.2"
            assert not node["spec"].get("unschedulable")
            assert len(not_ready_events(sim, node["metadata"]["name"])) == 1
    finally:
        sandbox.remove_cluster("wide-1")


def test_preflight_refuses_more_unavailable_nodes_than_pods_can_survive(fleet, operator, django_capture_on_commit_callbacks):
    clusters, _ = fleet
    with django_capture_on_commit_callbacks(execute=False):
        plan = services.plan_create(author=operator, name="too wide", target_version="1.31.2", waves=[[clusters[0].pk]],
                                    max_unavailable=2)
    messages = [f["message"] for f in plan.preflight["failures"] if f["check"] == "capacity"]
    assert messages and "with 2 nodes drained at once (only 1 other node can take it): lower max_unavailable" in messages[0]


@pytest.mark.parametrize("first", ["step_tick", "rollout_tick"])
@pytest.mark.parametrize("how", ["never approved", "approved by its author only", "approved at an older revision"])
def test_no_task_call_runs_an_unapproved_plan(fleet, operator, approver, how, first, django_capture_on_commit_callbacks):
    """A rollout row written by hand (a forged task message, a direct database write) for a plan without a valid
    approval: calling the tasks directly moves no node; the rollout halts and says why."""
    from upgrades import tasks
    from upgrades.models import Approval, Rollout

    clusters, sims = fleet
    with django_capture_on_commit_callbacks(execute=False):
        plan = services.plan_create(author=operator, name="forged",
                                    target_version="1.31.2", waves=[[clusters[0].pk]], drain_timeout_seconds=30,
                                    node_ready_timeout_seconds=30)
    if how == "approved by its author only":
        Approval.objects.create(plan=plan, approver=operator, approver_name=operator.username, revision=plan.revision,
                                decision="approve")
    if how == "approved at an older revision":
        Approval.objects.create(plan=plan, approver=approver, approver_name=approver.username, revision="0" * 64,
                                decision="approve")
    rollout = Rollout.objects.create(plan=plan, revision=plan.revision, started_by=operator)
    steps = RolloutStep.objects.bulk_create([
        RolloutStep(rollout=rollout, order=i, wave=s["wave"], cluster_id=s["cluster_id"], node=s["node"],
                    control_plane=s["control_plane"], phase="cordon") for i, s in enumerate(plan.flight_plan)])
    calls = {"step_tick": lambda: tasks.step_tick(steps[0].pk, 0),  # a chain message for a node, sent by hand
             "rollout_tick": lambda: tasks.rollout_tick(rollout.pk)}  # the dispatcher, asked by hand
    with django_capture_on_commit_callbacks(execute=False):
        calls[first]()
        for name, call in calls.items():
            if name != first:
                call()
    rollout.refresh_from_db()
    assert rollout.state == "halted" and "pksweb runs only approved plans" in rollout.reason
    for node in sims[0].items("nodes"):
        assert not node["spec"].get("unschedulable") and node["status"]["nodeInfo"]["kubeletVersion"] == "v1.30.4"
