"""Who is told what, decided per recipient at send time, against a real HTTP receiver (in this process's worker-less
mode: the fan-out and the channel's sender are called as their tasks call them)."""

from __future__ import annotations

import pytest
from django.db import transaction

from notifications.choices import DeliveryState, NotifyKind
from notifications.delivery import channel_drain
from notifications.fanout import event_fanout
from notifications.models import Delivery
from pksweb.events import publish

pytestmark = pytest.mark.django_db


def status(cluster, old, new):
    with transaction.atomic():
        return publish(kind="cluster.status_changed", message=f"Cluster {cluster.name} is {new}", subject_type="cluster",
                       subject_id=cluster.pk, subject_label=cluster.name, payload={"old": old, "new": new})


def run(event, *channels):
    event_fanout(event=event)
    for channel in channels:
        assert channel_drain(channel_id=channel.pk) is None


def test_unreachable_reaches_operators_and_the_admins_of_tenants_on_it_only(
        receiver, cluster, namespace, operator, viewer, tenant, other_tenant, tenant_admin, other_tenant_admin, channel_for, subscribe):
    ops, acme, globex = channel_for("ops"), channel_for("acme", tenant), channel_for("globex", other_tenant)
    subscribe(operator, NotifyKind.CLUSTER_UNREACHABLE, ops)
    subscribe(viewer, NotifyKind.CLUSTER_UNREACHABLE, ops)  # a viewer is not told (operators are)
    subscribe(tenant_admin, NotifyKind.CLUSTER_UNREACHABLE, acme)
    subscribe(other_tenant_admin, NotifyKind.CLUSTER_UNREACHABLE, globex)  # globex has nothing on prod-eu
    subscribe(tenant_admin, NotifyKind.CLUSTER_RECOVERED, acme)
    run(status(cluster, "healthy", "unreachable"), ops, acme, globex)
    run(status(cluster, "unreachable", "healthy"), ops, acme, globex)

    got = receiver.received()
    assert [(r["path"], r["body"]["title"]) for r in got] == [
        ("/ops", "Cluster prod-eu is unreachable"), ("/acme", "Cluster prod-eu is unreachable"),
        ("/acme", "Cluster prod-eu answers again")]
    assert f"https://pksweb.example/clusters/{cluster.pk}/" in got[0]["body"]["message"]
    # The tenant hears about its namespaces, with a link to its own page, never to the cluster's.
    assert "acme-payments" in got[1]["body"]["message"] and f"/tenants/{tenant.pk}/" in got[1]["body"]["message"]
    assert "/clusters/" not in got[1]["body"]["message"]
    sent = Delivery.objects.filter(state=DeliveryState.SENT)
    assert sent.count() == 3 and set(sent.values_list("recipients", flat=True)) == {"op", "acme-admin"}


def test_a_tenant_admin_hears_nothing_of_what_the_policy_hides(receiver, cluster, namespace, tenant, other_tenant, operator,
                                                               tenant_admin, other_tenant_admin, channel_for, subscribe):
    ops, acme, globex = channel_for("ops"), channel_for("acme", tenant), channel_for("globex", other_tenant)
    # Subscriptions made when they were allowed, then the world changed: globex's admin joins acme's channel's
    # subscriptions directly (not through the service), and acme's admin a platform channel.
    subscribe(other_tenant_admin, NotifyKind.NAMESPACE_DRIFTED, acme)
    subscribe(tenant_admin, NotifyKind.CLUSTER_UNREACHABLE, ops)
    subscribe(other_tenant_admin, NotifyKind.NAMESPACE_DRIFTED, globex)
    subscribe(tenant_admin, NotifyKind.NAMESPACE_DRIFTED, acme)
    with transaction.atomic():
        drift = publish(kind="tenant.namespace_drifted", message="Namespace acme-payments on prod-eu is drifted: quota",
                        subject_type="tenant", subject_id=tenant.pk, tenant=tenant, payload={"namespace": namespace.pk})
    run(drift, ops, acme, globex)
    run(status(cluster, "healthy", "unreachable"), ops, acme, globex)
    got = receiver.received()
    assert [(r["path"], r["body"]["title"]) for r in got] == [("/acme", "Namespace acme-payments on prod-eu is drifted: quota")]
    assert Delivery.objects.get().recipients == "acme-admin"


def test_plans_go_to_approvers_and_decisions_to_the_author(receiver, operator, approver, viewer, channel_for, subscribe):
    from upgrades.models import UpgradePlan

    plan = UpgradePlan.objects.create(name="to 1.31", target_version="1.31.2", waves=[[1]], author=operator)
    board, mine = channel_for("board"), channel_for("mine")
    subscribe(approver, NotifyKind.PLAN_AWAITING, board)
    subscribe(operator, NotifyKind.PLAN_APPROVED, mine)
    subscribe(operator, NotifyKind.PLAN_REJECTED, mine)
    from upgrades.models import Approval

    Approval.objects.create(plan=plan, approver=approver, approver_name=approver.username, revision="r", decision="approve",
                            comment="fine by the board")
    for kind, message, actor in (("upgrade.plan_submitted", "Upgrade plan to 1.31 submitted for approval", operator),
                                 ("upgrade.plan_approved", "Upgrade plan to 1.31 approved by appr (1 of 2)", approver),
                                 ("upgrade.plan_rejected", "Upgrade plan to 1.31 rejected by appr: not on a Friday", approver)):
        with transaction.atomic():
            event = publish(kind=kind, message=message, actor=actor, subject_type="plan", subject_id=plan.pk,
                            subject_label=plan.name, payload={"plan": plan.pk})
        run(event, board, mine)
    got = receiver.received()
    assert [(r["path"], r["body"]["title"]) for r in got] == [
        ("/board", "Upgrade plan to 1.31 submitted for approval"),
        ("/mine", "Upgrade plan to 1.31 approved by appr (1 of 2)"),
        ("/mine", "Upgrade plan to 1.31 rejected by appr: not on a Friday")]
    assert "Comment: fine by the board" in got[1]["body"]["message"]
    assert f"https://pksweb.example/upgrades/{plan.pk}/" in got[2]["body"]["message"]


def test_a_cluster_flapping_ten_times_sends_one_message_and_one_recovery(receiver, cluster, operator, channel_for, subscribe):
    ops = channel_for("ops")
    subscribe(operator, NotifyKind.CLUSTER_UNREACHABLE, ops)
    subscribe(operator, NotifyKind.CLUSTER_RECOVERED, ops)
    for _ in range(10):
        run(status(cluster, "healthy", "unreachable"), ops)
        run(status(cluster, "unreachable", "healthy"), ops)
    assert [r["body"]["title"] for r in receiver.received()] == ["Cluster prod-eu is unreachable", "Cluster prod-eu is healthy"]
    assert Delivery.objects.filter(state=DeliveryState.SUPPRESSED).count() == 18
    assert "debounced" in Delivery.objects.filter(state=DeliveryState.SUPPRESSED).first().reason


def test_a_failing_receiver_is_retried_then_recorded_with_its_reason(receiver, cluster, operator, channel_for, subscribe, settings):
    ops = channel_for("ops")
    subscribe(operator, NotifyKind.CLUSTER_UNREACHABLE, ops)
    receiver.fault("ops", status=500)
    event_fanout(event=status(cluster, "healthy", "unreachable"))
    wait = channel_drain(channel_id=ops.pk)
    assert wait is not None and 0 < wait <= settings.PKSWEB_NOTIFY_BACKOFF  # backoff before the next attempt
    delivery = Delivery.objects.get()
    assert (delivery.state, delivery.attempts) == (DeliveryState.RETRYING, 1)
    delivery.next_at = delivery.created_at
    delivery.save()
    assert channel_drain(channel_id=ops.pk) is None
    delivery.refresh_from_db()
    assert delivery.state == DeliveryState.FAILED and "500" in delivery.reason and "2 attempts" in delivery.reason
    assert len(receiver.received("ops")) == 2


def test_after_the_debounce_the_latest_state_is_sent_when_it_differs(receiver, cluster, operator, channel_for, subscribe, settings):
    """The trailing edge: a cluster that flapped and ended unreachable is said to be unreachable once the window ends;
    one that ended healthy, as it was last said, is not mentioned again."""
    import time

    from notifications.fanout import gate_settle, subject_key

    settings.PKSWEB_NOTIFY_DEBOUNCE = 0.5
    ops = channel_for("ops")
    subscribe(operator, NotifyKind.CLUSTER_UNREACHABLE, ops)
    subscribe(operator, NotifyKind.CLUSTER_RECOVERED, ops)
    for old, new in (("healthy", "unreachable"), ("unreachable", "healthy"), ("healthy", "unreachable")):
        event = status(cluster, old, new)
        decided = event_fanout(event=event)
        assert channel_drain(channel_id=ops.pk) is None
    assert decided.held and decided.held[0][1] <= 0.5  # the third is held back, a settle is due when the window ends
    key = f"{ops.pk}:{subject_key(event, NotifyKind.CLUSTER_UNREACHABLE)}"
    assert gate_settle(key=key).held  # too early: wait for the window
    time.sleep(0.6)
    assert gate_settle(key=key).queued == [ops.pk]
    assert channel_drain(channel_id=ops.pk) is None
    assert gate_settle(key=key).queued == []  # once
    assert [r["body"]["title"] for r in receiver.received()] == [
        "Cluster prod-eu is unreachable", "Cluster prod-eu is healthy", "Cluster prod-eu is unreachable"]
    # it recovers and fails again within the window: it ends as the channel was last told, so nothing more is said
    settings.PKSWEB_NOTIFY_DEBOUNCE = 300
    assert event_fanout(event=status(cluster, "unreachable", "healthy")).held
    assert not event_fanout(event=status(cluster, "healthy", "unreachable")).queued
    from notifications.models import Gate

    Gate.objects.filter(key=key).update(sent={})  # the window is over
    assert gate_settle(key=key).queued == []
    assert len(receiver.received()) == 3


def test_the_sweep_catches_up_on_an_event_whose_task_was_lost(receiver, cluster, operator, channel_for, subscribe):
    from notifications import tasks
    from notifications.models import Fanout

    ops = channel_for("ops")
    subscribe(operator, NotifyKind.CLUSTER_UNREACHABLE, ops)
    event = status(cluster, "healthy", "unreachable")  # its queued task never ran (no worker here)
    queued = []
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(tasks.notify_subject, "delay", lambda *a: queued.append(a))
        tasks.notify_sweep()
    assert queued == [("cluster", str(cluster.pk))]
    event_fanout(event=event)
    assert Fanout.objects.filter(event_id=event.pk).exists()
