"""Preflight rules and approvals bound to the exact plan revision."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.utils import timezone

from clusters.models import Cluster, ClusterNode
from pksweb.models import Event
from upgrades import rules, services
from upgrades.models import Approval

pytestmark = pytest.mark.django_db


def plan_for(fleet, operator, django_capture_on_commit_callbacks, **fields):
    clusters, _ = fleet
    with django_capture_on_commit_callbacks(execute=False):
        return services.plan_create(author=operator, **{"name": "p", "target_version": "1.31.2", "waves": [[clusters[0].pk]], **fields})


def failures(plan):
    return [f"{f['check']}: {f['message']}" for f in plan.preflight["failures"]]


@pytest.mark.parametrize(
    ("target", "message"),
    [("1.29.9", "pksweb never downgrades"), ("1.32.0", "must go through 1.31 first"), ("latest", "is not a Kubernetes version")],
)
def test_version_rules(fleet, operator, target, message, django_capture_on_commit_callbacks):
    if target == "latest":
        with pytest.raises(ValidationError, match=message):
            plan_for(fleet, operator, django_capture_on_commit_callbacks, target_version=target)
        return
    plan = plan_for(fleet, operator, django_capture_on_commit_callbacks, target_version=target)
    assert any(message in f for f in failures(plan)), failures(plan)


def test_kubelet_newer_than_target_is_refused(fleet, operator, django_capture_on_commit_callbacks):
    clusters, _ = fleet
    ClusterNode.objects.filter(cluster=clusters[0], name__endswith="-w-1").update(kubelet_version="v1.32.1")
    plan = plan_for(fleet, operator, django_capture_on_commit_callbacks)
    assert any("newer than the target 1.31.2" in f for f in failures(plan))


def test_pdb_with_max_unavailable_zero_blocks(fleet, operator, django_capture_on_commit_callbacks):
    clusters, sims = fleet
    sims[0].replace("poddisruptionbudgets", {**sims[0].get("poddisruptionbudgets", "demo", "web"),
                                             "spec": {"maxUnavailable": 0, "selector": {"matchLabels": {"app": "web"}}}}, "demo")
    plan = plan_for(fleet, operator, django_capture_on_commit_callbacks)
    blocking = [f for f in failures(plan) if f.startswith("pdb:")]
    assert blocking and "PodDisruptionBudget demo/web allows no disruption at all (maxUnavailable: 0)" in blocking[0]
    assert "it would block evicting web-" in blocking[0]


def test_pods_with_nowhere_to_go(fleet, operator, django_capture_on_commit_callbacks):
    clusters, sims = fleet
    for node in ClusterNode.objects.filter(cluster=clusters[0], name__endswith="-w-2"):
        node.unschedulable = True
        node.save()
    plan = plan_for(fleet, operator, django_capture_on_commit_callbacks)
    assert any(f.startswith("capacity:") and "would have nowhere to go" in f for f in failures(plan)), failures(plan)


def test_unhealthy_cluster_and_missing_driver_fail(fleet, operator, django_capture_on_commit_callbacks):
    clusters, _ = fleet
    Cluster.objects.filter(pk=clusters[0].pk).update(status="degraded", reasons=["1 of 3 nodes not Ready: x"], upgrade_driver="")
    plan = plan_for(fleet, operator, django_capture_on_commit_callbacks)
    assert any("is degraded: 1 of 3 nodes not Ready" in f for f in failures(plan))
    assert any("No upgrade driver is configured" in f for f in failures(plan))
    with pytest.raises(ValidationError, match="Preflight fails"):
        services.plan_submit(plan=plan, by=operator)


def test_flight_plan_and_estimate(fleet, operator, django_capture_on_commit_callbacks):
    clusters, _ = fleet
    plan = plan_for(fleet, operator, django_capture_on_commit_callbacks, waves=[[clusters[1].pk], [clusters[0].pk]])
    assert [(s["wave"], s["cluster"], s["control_plane"]) for s in plan.flight_plan] == [
        (1, clusters[1].name, True), (1, clusters[1].name, False), (1, clusters[1].name, False),
        (2, clusters[0].name, True), (2, clusters[0].name, False), (2, clusters[0].name, False)]
    assert plan.preflight["estimate_seconds"] == 6 * 180 and len(plan.revision) == 64
    side_by_side = services.plan_update(plan=plan, editor=operator, waves=[[c.pk for c in clusters]])
    assert side_by_side.preflight["estimate_seconds"] == 3 * 180  # three clusters at once, three nodes each


def test_author_cannot_approve_and_quorum(fleet, operator, approver, django_capture_on_commit_callbacks):
    from pksweb.choices import Role
    from tests.factories import UserFactory

    second = UserFactory(username="approver2", role=Role.APPROVER)
    plan = plan_for(fleet, operator, django_capture_on_commit_callbacks, quorum=2)
    with django_capture_on_commit_callbacks(execute=False):
        plan = services.plan_submit(plan=plan, by=operator)
        with pytest.raises(PermissionDenied):
            services.plan_decide(plan=plan, approver=operator, revision=plan.revision, decision="approve")
        plan = services.plan_decide(plan=plan, approver=approver, revision=plan.revision, decision="approve")
        assert plan.state == "submitted"  # one of two
        with pytest.raises(ValidationError, match="one person counts once"):
            services.plan_decide(plan=plan, approver=approver, revision=plan.revision, decision="approve")
        plan = services.plan_decide(plan=plan, approver=second, revision=plan.revision, decision="approve")
    assert plan.state == "approved"


def test_approver_who_wrote_the_plan_cannot_approve_it(fleet, approver, operator, django_capture_on_commit_callbacks):
    plan = plan_for(fleet, operator, django_capture_on_commit_callbacks)
    plan.author = approver
    plan.save()
    with django_capture_on_commit_callbacks(execute=False):
        plan = services.plan_submit(plan=plan, by=operator)
        with pytest.raises(ValidationError, match="You wrote this plan"):
            services.plan_decide(plan=plan, approver=approver, revision=plan.revision, decision="approve")


def test_edit_voids_approvals_and_stale_revision_is_refused(fleet, operator, approver, django_capture_on_commit_callbacks):
    plan = plan_for(fleet, operator, django_capture_on_commit_callbacks)
    with django_capture_on_commit_callbacks(execute=False):
        plan = services.plan_submit(plan=plan, by=operator)
        seen = plan.revision
        plan = services.plan_decide(plan=plan, approver=approver, revision=seen, decision="approve")
        assert plan.state == "approved"
        plan = services.plan_update(plan=plan, editor=operator, drain_timeout_seconds=120)
    assert plan.state == "draft" and plan.revision != seen
    assert Approval.objects.get().voided
    with django_capture_on_commit_callbacks(execute=False):
        plan = services.plan_submit(plan=plan, by=operator)
        with pytest.raises(ValidationError, match="The plan changed since you reviewed it"):
            services.plan_decide(plan=plan, approver=approver, revision=seen, decision="approve")


def test_rejection_returns_to_draft_and_needs_a_comment(fleet, operator, approver, django_capture_on_commit_callbacks):
    plan = plan_for(fleet, operator, django_capture_on_commit_callbacks)
    with django_capture_on_commit_callbacks(execute=False):
        plan = services.plan_submit(plan=plan, by=operator)
        with pytest.raises(ValidationError, match="Say why"):
            services.plan_decide(plan=plan, approver=approver, revision=plan.revision, decision="reject")
        plan = services.plan_decide(plan=plan, approver=approver, revision=plan.revision, decision="reject", comment="not this week")
    assert plan.state == "draft"


def test_start_needs_approval_and_the_window(fleet, operator, approver, django_capture_on_commit_callbacks):
    now = timezone.now()
    plan = plan_for(fleet, operator, django_capture_on_commit_callbacks, window_start=now + timedelta(hours=1),
                    window_end=now + timedelta(hours=3))
    with django_capture_on_commit_callbacks(execute=False):
        with pytest.raises(ValidationError, match="Only an approved plan can start"):
            services.plan_start(plan=plan, by=operator)
        plan = services.plan_submit(plan=plan, by=operator)
        plan = services.plan_decide(plan=plan, approver=approver, revision=plan.revision, decision="approve")
        with pytest.raises(ValidationError, match="The maintenance window is not open"):
            services.plan_start(plan=plan, by=operator)
        with pytest.raises(PermissionDenied, match="Only operators start"):  # approvers sign off; they never start
            services.plan_start(plan=plan, by=approver, outside_window_reason="urgent CVE")
        rollout = services.plan_start(plan=plan, by=operator, outside_window_reason="urgent CVE")
    assert rollout.outside_window_reason == "urgent CVE" and rollout.start_reason == "urgent CVE" and rollout.state == "running"
    started = Event.objects.get(kind="rollout.started")
    assert "outside its window: urgent CVE" in started.message and started.payload["reason"] == "urgent CVE"


def test_weekly_window():
    from upgrades.models import UpgradePlan

    start = timezone.now().replace(microsecond=0) - timedelta(days=14, hours=1)
    plan = UpgradePlan(window_start=start, window_end=start + timedelta(hours=2), window_weekly=True)
    assert rules.in_window(plan)  # two weeks later, one hour into the window
    assert not rules.in_window(plan, timezone.now() + timedelta(hours=2))
    assert rules.in_window(plan, timezone.now() + timedelta(days=7))
