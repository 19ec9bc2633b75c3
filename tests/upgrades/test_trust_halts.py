"""Issue 13's regressions on the upgrade side, while a rollout runs and after: a halt that holds whatever
explains it, aborts that leave no node cordoned by pksweb, a rollout that owns its clusters, clusters with
history that can still be removed, and success said only when it is true."""

from __future__ import annotations

import sys
import threading
import time

import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django.urls import reverse
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clusters.kube import Credential
from clusters.models import Cluster
from clusters.services import cluster_delete, cluster_register, cluster_update
from clusters.sweep import cluster_probe
from pksweb.models import Event
from tests.support.rollouts import drive, rollout_advance, start, worker_nodes
from upgrades import engine, services
from upgrades.models import Rollout, RolloutStep

pytestmark = pytest.mark.django_db


# ---- 1. a rollout that cannot halt -----------------------------------------------------------------


def test_a_drain_blocked_over_long_pod_names_halts_with_its_reason(make_approved, fleet, operator, django_capture_on_commit_callbacks):
    clusters, sims = fleet
    for node in worker_nodes(clusters[0]):
        for i in range(4):
            name = f"web-{i}-{node}-" + "x" * (200 - len(node))
            owner = {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-long", "uid": "0" * 8, "controller": True}
            sims[0].create("pods", {"metadata": {"name": name, "labels": {"app": "web"}, "ownerReferences": [owner]},
                                    "spec": {"nodeName": node, "containers": [{"name": "web", "image": "nginx:1.27"}]}}, "demo")
    sims[0].make_ready_now()
    sims[0].faults.update({"frozen_pdbs": ["demo/web"]})
    sims[0].refresh_budgets()
    plan = make_approved(drain_timeout_seconds=10)
    rollout = drive(start(plan, operator, django_capture_on_commit_callbacks))
    assert rollout.state == "halted", rollout.reason
    assert "Blocked by PodDisruptionBudget demo/web" in rollout.reason and "x" * 150 in rollout.reason  # kept whole
    halted = Event.objects.get(kind="rollout.halted", subject_id=str(rollout.pk))
    assert len(halted.message) <= 500 and halted.message.endswith("more characters cut]")
    asked = dict(sims[0].stats)
    assert rollout_advance(rollout_id=rollout.pk) is None  # stopped: no drain starts again
    assert dict(sims[0].stats) == asked


def test_a_command_drivers_endless_output_halts_the_rollout(make_approved, fleet, operator, settings, tmp_path,
                                                             django_capture_on_commit_callbacks):
    settings.PKSWEB_ALLOW_COMMAND_DRIVER = True
    clusters, _ = fleet
    script = "import sys; print('überlang ' * 5000); print('fatal: the node did not come back', file=sys.stderr); sys.exit(3)"
    with django_capture_on_commit_callbacks(execute=False):
        for cluster in clusters:
            cluster_update(cluster=cluster, updated_by=operator, upgrade_driver="command",
                           upgrade_command=[sys.executable, "-c", script, "{node}"])
    plan = make_approved()
    rollout = drive(start(plan, operator, django_capture_on_commit_callbacks))
    assert rollout.state == "halted" and "exited with 3" in rollout.reason and "fatal: the node did not come back" in rollout.reason
    assert len(Event.objects.get(kind="rollout.halted").message) <= 500
    step = RolloutStep.objects.filter(rollout=rollout, phase="upgrade").first()
    assert step is not None and "halted:" in step.log and len(step.log) <= 20_000


def test_an_abort_note_of_many_nodes_is_bounded(make_approved, fleet, operator, django_capture_on_commit_callbacks):
    plan = make_approved()
    rollout = start(plan, operator, django_capture_on_commit_callbacks)
    RolloutStep.objects.filter(rollout=rollout).update(phase="drain")  # as if every node were cordoned
    with django_capture_on_commit_callbacks(execute=False):
        aborted = services.rollout_abort(rollout=rollout, by=operator)
    assert aborted.state == "aborted" and f"uncordoning {rollout.steps.count()} node(s)" in aborted.reason
    assert len(Event.objects.get(kind="rollout.aborted").message) <= 500


def test_removing_a_cluster_with_rollout_history_archives_it(make_approved, fleet, operator, op_client, sandbox,
                                                              django_capture_on_commit_callbacks):
    clusters, sims = fleet
    rollout = start(make_approved(), operator, django_capture_on_commit_callbacks)
    with django_capture_on_commit_callbacks(execute=False):
        services.rollout_abort(rollout=rollout, by=operator)
    response = op_client.post(reverse("clusters:delete", args=[clusters[0].pk]))
    assert response.status_code == 302  # a ProtectedError (500) before
    archived = Cluster.all_objects.get(pk=clusters[0].pk)
    assert archived.archived_at is not None and not Cluster.objects.filter(pk=archived.pk).exists()
    assert "archive" in Event.objects.get(kind="cluster.archived").message
    assert f'id="cluster-{archived.pk}"' not in op_client.get(reverse("clusters:fleet")).content.decode()
    page = op_client.get(reverse("upgrades:rollout", args=[rollout.pk]))
    assert page.status_code == 200 and clusters[0].name in page.content.decode()  # the history still names it
    with django_capture_on_commit_callbacks(execute=False):  # the same cluster may be registered again
        again = cluster_register(name=clusters[0].name, created_by=operator,
                                 credential=Credential(server=sandbox.server_url(sims[0].name), token=sims[0].token,
                                                       ca_data=sandbox.ca_pem))
    assert again.pk != archived.pk and again.uid == archived.uid


def test_an_uncordon_left_on_an_archived_cluster_is_recorded_once(make_approved, fleet, operator, django_capture_on_commit_callbacks):
    clusters, _ = fleet
    rollout = start(make_approved(), operator, django_capture_on_commit_callbacks)
    step = RolloutStep.objects.filter(rollout=rollout).first()
    RolloutStep.objects.filter(pk=step.pk).update(phase="drain")  # pksweb cordoned this node
    with django_capture_on_commit_callbacks(execute=False):
        services.rollout_abort(rollout=rollout, by=operator)
        cluster_delete(cluster=clusters[0], deleted_by=operator)  # archived: its credential is gone
    engine.step_advance(step_id=step.pk)  # the queued uncordon: a reason, not a crash retried forever
    step.refresh_from_db()
    assert step.phase == "failed" and "STILL CORDONED" in step.log and "removed from pksweb" in step.log


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(phases=st.lists(st.sampled_from(["pending", "cordon", "drain", "upgrade", "wait_ready", "uncordon", "gate", "done",
                                        "failed"]), min_size=3, max_size=3),
       halted=st.booleans())
def test_after_an_abort_no_step_stays_in_a_working_phase(make_approved, fleet, operator, phases, halted,
                                                         django_capture_on_commit_callbacks):
    """Whatever phase each node was in (halted in its cordon, mid-drain, in its health gate), once the abort's
    uncordons ran every step is pending (never started), done or failed, with an end time, and the nodes are
    schedulable again."""
    clusters, sims = fleet
    rollout = start(make_approved(waves=[[clusters[0].pk]]), operator, django_capture_on_commit_callbacks)
    try:
        steps = list(RolloutStep.objects.filter(rollout=rollout).order_by("order"))
        for step, phase in zip(steps, phases, strict=True):
            RolloutStep.objects.filter(pk=step.pk).update(phase=phase)
            if phase in ("cordon", "drain", "upgrade", "wait_ready", "uncordon"):
                sims[0].patch("nodes", "", step.node, lambda node: {**node, "spec": {**node.get("spec", {}), "unschedulable": True}})
        if halted:
            Rollout.objects.filter(pk=rollout.pk).update(state="halted", reason="the cluster did not answer")
        with django_capture_on_commit_callbacks(execute=False):
            services.rollout_abort(rollout=rollout, by=operator)
        for step in steps:
            engine.step_advance(step_id=step.pk)  # the uncordons the abort queued
        for step in RolloutStep.objects.filter(rollout=rollout):
            assert step.phase in ("pending", "done", "failed"), (step.node, step.phase)
            assert step.phase == "pending" or step.finished_at is not None or phases[step.order] in ("done", "failed"), step.phase
            assert not sims[0].get("nodes", "", step.node)["spec"].get("unschedulable"), step.node
    finally:
        Rollout.objects.filter(pk=rollout.pk).update(state="aborted")
        for step in RolloutStep.objects.filter(rollout=rollout):
            sims[0].patch("nodes", "", step.node, lambda n: {**n, "spec": {**n.get("spec", {}), "unschedulable": False}})


def test_an_archived_cluster_is_gone_from_the_api(make_approved, fleet, operator, operator_api, django_capture_on_commit_callbacks):
    clusters, _ = fleet
    rollout = start(make_approved(), operator, django_capture_on_commit_callbacks)
    with django_capture_on_commit_callbacks(execute=False):
        services.rollout_abort(rollout=rollout, by=operator)
    assert operator_api.delete(f"/api/clusters/{clusters[0].pk}/").status_code == 204
    assert operator_api.get(f"/api/clusters/{clusters[0].pk}/").status_code == 404
    assert operator_api.get(f"/api/rollouts/{rollout.pk}/").json()["steps"][0]["cluster_name"] == clusters[0].name
    cluster_delete(cluster=Cluster.all_objects.get(pk=clusters[0].pk), deleted_by=operator)  # twice: nothing to do


def test_while_a_rollout_runs_its_nodes_and_cluster_are_left_alone(make_approved, fleet, operator, operator_api, op_client,
                                                                   django_capture_on_commit_callbacks):
    from clusters.operations import node_operation_start

    clusters, _ = fleet
    rollout = start(make_approved(), operator, django_capture_on_commit_callbacks)
    node = worker_nodes(clusters[0])[0]
    with pytest.raises(ValidationError, match=f"rollout #{rollout.pk} .* owns its nodes while it runs"):
        node_operation_start(cluster=clusters[0], node=node, kind="uncordon", requested_by=operator)
    refused = operator_api.delete(f"/api/clusters/{clusters[0].pk}/")
    assert refused.status_code == 400 and "abort it" in str(refused.json())
    page = op_client.post(reverse("clusters:delete", args=[clusters[0].pk]), follow=True)
    assert page.status_code == 200 and "cannot be removed now" in page.content.decode()
    assert Cluster.objects.filter(pk=clusters[0].pk).exists()
    with django_capture_on_commit_callbacks(execute=False):
        services.rollout_pause(rollout=rollout, by=operator)
    Rollout.objects.filter(pk=rollout.pk).update(state="paused")
    with django_capture_on_commit_callbacks(execute=False):  # a paused rollout leaves the nodes to the operator
        node_operation_start(cluster=clusters[0], node=node, kind="cordon", requested_by=operator)


def test_while_a_rollout_runs_its_nodes_are_given_to_no_tenant(make_approved, fleet, operator, django_capture_on_commit_callbacks):
    """Labels and taints are the rollout's to leave alone as much as cordons: assigning or releasing a node of a
    cluster a rollout upgrades is refused with the same words as a node operation."""
    from tenants.models import NodeAssignment, Tenant
    from tenants.services import node_assign, node_release

    clusters, _ = fleet
    node = worker_nodes(clusters[0])[0]
    dedicated = Tenant.objects.create(name="globex-insurance", isolation="dedicated-nodes")
    dedicated.clusters.add(clusters[0])
    NodeAssignment.objects.create(tenant=dedicated, cluster=clusters[0], node=node)  # given before the rollout
    other = worker_nodes(clusters[0])[1]
    rollout = start(make_approved(), operator, django_capture_on_commit_callbacks)
    with pytest.raises(ValidationError, match=f"rollout #{rollout.pk} .* owns its nodes while it runs"):
        node_assign(cluster=clusters[0], node=other, tenant=dedicated, assigned_by=operator)
    with pytest.raises(ValidationError, match=f"rollout #{rollout.pk} .* owns its nodes while it runs"):
        node_release(cluster=clusters[0], node=node, released_by=operator)
    assert list(NodeAssignment.objects.values_list("node", flat=True)) == [node]


@pytest.mark.django_db(transaction=True)  # the abort comes from another thread's connection, as from a request
def test_an_abort_stops_a_drain_in_flight(make_approved, fleet, operator, django_capture_on_commit_callbacks):
    """A drain waiting on a budget (a 300 s timeout) stops within a couple of seconds of the abort, and the
    uncordon follows at the step's next tick."""
    clusters, sims = fleet
    sims[0].faults.update({"frozen_pdbs": ["*"]})
    sims[0].refresh_budgets()
    rollout = start(make_approved(drain_timeout_seconds=300), operator, django_capture_on_commit_callbacks)
    while not RolloutStep.objects.filter(rollout=rollout, phase="drain", control_plane=False).exists():
        rollout_advance(rollout_id=rollout.pk)
    step = RolloutStep.objects.get(rollout=rollout, phase="drain", control_plane=False)
    def abort():
        try:
            Rollout.objects.filter(pk=rollout.pk).update(state="aborted")
        finally:
            connection.close()

    aborter = threading.Timer(1.0, abort)
    aborter.start()
    began = time.monotonic()
    engine.step_advance(step_id=step.pk)  # the drain; the abort lands a second in
    aborter.join()
    assert time.monotonic() - began < 10
    engine.step_advance(step_id=step.pk)  # the abort's uncordon
    step.refresh_from_db()
    assert step.phase == "failed" and "uncordoned" in step.log
    assert not sims[0].get("nodes", "", step.node)["spec"].get("unschedulable")


def test_a_node_that_joins_during_a_rollout_is_named_when_it_finishes(make_approved, fleet, operator,
                                                                      django_capture_on_commit_callbacks):
    clusters, sims = fleet
    rollout = start(make_approved(waves=[[clusters[0].pk]], health_gate=False), operator, django_capture_on_commit_callbacks)
    node = sims[0].get("nodes", "", f"{sims[0].name}-w-2")
    sims[0].create("nodes", {**node, "metadata": {"name": f"{sims[0].name}-w-98", "labels": node["metadata"].get("labels", {})},
                             "spec": {}})
    cluster_probe(cluster=Cluster.objects.get(pk=clusters[0].pk))
    rollout = drive(rollout)
    assert rollout.state == "succeeded"
    said = Event.objects.get(kind="rollout.succeeded").message
    assert "every node runs" not in said and f"{clusters[0].name}/{sims[0].name}-w-98 (v1.30.4)" in said, said
    assert f"{sims[0].name}-w-98" in rollout.reason


def test_an_abort_does_not_call_a_deleted_node_cordoned(make_approved, fleet, operator, django_capture_on_commit_callbacks):
    clusters, sims = fleet
    rollout = start(make_approved(waves=[[clusters[0].pk]]), operator, django_capture_on_commit_callbacks)
    step = RolloutStep.objects.filter(rollout=rollout).order_by("order").first()
    RolloutStep.objects.filter(pk=step.pk).update(phase="cordon")
    sims[0].delete("nodes", "", step.node)
    with django_capture_on_commit_callbacks(execute=False):
        services.rollout_abort(rollout=rollout, by=operator)
    engine.step_advance(step_id=step.pk)
    step.refresh_from_db()
    assert step.phase == "failed" and "no longer on" in step.log and "CORDONED" not in step.log, step.log


def test_a_node_cordoned_before_the_rollout_is_upgraded_and_left_cordoned(make_approved, fleet, operator,
                                                                           django_capture_on_commit_callbacks):
    """Someone took the node out of service (a bad disk): the rollout upgrades it and leaves it so, says so in
    its preflight and its log; the other nodes come back into service as always."""
    clusters, sims = fleet
    sims[0].add_node(f"{sims[0].name}-w-3")  # room for the pods of the node drained beside the one kept cordoned
    sims[0].make_ready_now()  # its kube-proxy runs before the probe, however late the kubelet's timer fires under load
    cluster_probe(cluster=Cluster.objects.get(pk=clusters[0].pk))
    kept = worker_nodes(clusters[0])[0]
    sims[0].patch("nodes", "", kept, lambda n: {**n, "spec": {**n.get("spec", {}), "unschedulable": True}})
    cluster_probe(cluster=Cluster.objects.get(pk=clusters[0].pk))
    plan = make_approved(waves=[[clusters[0].pk]], health_gate=False)
    assert any(w["check"] == "cordoned" and kept in w["message"] for w in plan.preflight["warnings"]), plan.preflight
    rollout = drive(start(plan, operator, django_capture_on_commit_callbacks))
    assert rollout.state == "succeeded", rollout.reason
    assert sims[0].get("nodes", "", kept)["spec"].get("unschedulable") is True
    step = RolloutStep.objects.get(rollout=rollout, node=kept)
    assert step.was_cordoned is True and "left cordoned, as it was before the rollout" in step.log
    others = RolloutStep.objects.filter(rollout=rollout).exclude(node=kept)
    assert others and all(not sims[0].get("nodes", "", s.node)["spec"].get("unschedulable") for s in others)
