"""Cordon, uncordon and drain against a sandbox cluster over HTTP."""

from __future__ import annotations

from urllib.parse import quote

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clusters.choices import OperationState
from clusters.models import ClusterNode, NodeOperation
from clusters.operations import node_operation_execute, node_operation_start
from pksweb.models import Event
from tests.support.waits import wait_for

pytestmark = pytest.mark.django_db


def start(cluster, node, kind, user, **kwargs):
    return node_operation_start(cluster=cluster, node=node, kind=kind, requested_by=user, **kwargs)


def test_drain_with_room(registered, sandbox_cluster, operator, django_capture_on_commit_callbacks):
    node = f"{sandbox_cluster.name}-w-1"
    with django_capture_on_commit_callbacks(execute=False) as queued:
        operation = start(registered, node, "drain", operator)
    assert operation.state == "queued" and len(queued) == 2  # the event push and the task, after commit
    done = node_operation_execute(operation_id=operation.pk)
    assert done.state == OperationState.SUCCEEDED, done.report
    assert done.report.startswith(f"Node {node} drained")
    assert done.progress["pending"] == [] and done.progress["evicted"]
    assert any("(DaemonSet)" in s for s in done.progress["skipped"])
    remaining = [p for p in sandbox_cluster.items("pods") if p["spec"].get("nodeName") == node]
    assert all(p["metadata"]["ownerReferences"][0]["kind"] == "DaemonSet" for p in remaining)
    assert ClusterNode.objects.get(cluster=registered, name=node).unschedulable
    kinds = list(Event.objects.filter(kind__startswith="cluster.operation").order_by("id").values_list("kind", flat=True))
    assert kinds[-1] == "cluster.operation_finished" and "cluster.operation_progress" in kinds
    assert Event.objects.get(kind="cluster.operation_queued").actor == operator


def test_drain_skips_mirror_pods_of_control_plane(registered, sandbox_cluster, operator):
    node = f"{sandbox_cluster.name}-cp-1"
    done = node_operation_execute(operation_id=start(registered, node, "drain", operator).pk)
    assert done.state == "succeeded"
    assert sum("(mirror pod)" in s for s in done.progress["skipped"]) == 4


def test_drain_blocked_by_pdb_reports_the_budget(registered, sandbox_cluster, operator):
    sandbox_cluster.faults.update({"frozen_pdbs": ["demo/web"]})
    sandbox_cluster.refresh_budgets()
    web_node = next(p["spec"]["nodeName"] for p in sandbox_cluster.items("pods", "demo") if p["metadata"]["labels"].get("app") == "web")
    operation = start(registered, web_node, "drain", operator, timeout_seconds=10)
    NodeOperation.objects.filter(pk=operation.pk).update(timeout_seconds=1)
    done = node_operation_execute(operation_id=operation.pk, sleep=lambda s: None)
    assert done.state == OperationState.FAILED
    assert f"Drain of {web_node} stopped after 1 s" in done.report
    assert "Blocked by PodDisruptionBudget demo/web: demo/web-" in done.report
    assert all(reason == "PodDisruptionBudget demo/web" for reason in done.progress["blocked"].values())


def test_second_drain_is_refused_while_one_is_active(registered, sandbox_cluster, operator):
    node = f"{sandbox_cluster.name}-w-2"
    first = start(registered, node, "drain", operator)
    with pytest.raises(ValidationError) as exc:
        start(registered, node, "drain", operator)
    assert exc.value.message_dict["node"] == [
        f"A drain of {node} is already queued (operation #{first.pk}, started by op); wait for it to finish."]
    assert NodeOperation.objects.count() == 1
    node_operation_execute(operation_id=first.pk)
    assert start(registered, node, "cordon", operator).state == "queued"


def test_running_twice_is_harmless(registered, sandbox_cluster, operator):
    operation = start(registered, f"{sandbox_cluster.name}-w-3", "cordon", operator)
    assert node_operation_execute(operation_id=operation.pk).state == "succeeded"
    assert node_operation_execute(operation_id=operation.pk) is None  # a redelivered task finds nothing to do


def test_cordon_then_uncordon(registered, sandbox_cluster, operator):
    node = f"{sandbox_cluster.name}-w-3"
    node_operation_execute(operation_id=start(registered, node, "cordon", operator).pk)
    assert sandbox_cluster.get("nodes", "", node)["spec"].get("unschedulable") is True
    node_operation_execute(operation_id=start(registered, node, "uncordon", operator).pk)
    assert not sandbox_cluster.get("nodes", "", node)["spec"].get("unschedulable")
    assert not ClusterNode.objects.get(cluster=registered, name=node).unschedulable


def test_unknown_node_and_kind(registered, operator):
    with pytest.raises(ValidationError, match="has no node 'ghost'"):
        start(registered, "ghost", "drain", operator)
    with pytest.raises(ValidationError, match="is not an operation"):
        start(registered, "ghost", "reboot", operator)


def test_unreachable_cluster_fails_the_operation_in_words(registered, sandbox_cluster, operator):
    operation = start(registered, f"{sandbox_cluster.name}-w-1", "cordon", operator)
    sandbox_cluster.faults.update({"unreachable": True})
    done = node_operation_execute(operation_id=operation.pk)
    assert done.state == "failed" and "dropped the connection without answering while trying to check which cluster it is" in done.report


def test_a_drain_waits_out_throttling(registered, sandbox_cluster, operator):
    """The cluster answers its next two requests 429 (Retry-After: 1): the drain waits as told and finishes."""
    node = f"{sandbox_cluster.name}-w-2"
    operation = start(registered, node, "drain", operator)
    sandbox_cluster.faults.update({"fail_next": 2, "fail_status": 429, "retry_after": 1})
    done = node_operation_execute(operation_id=operation.pk)
    assert done.state == OperationState.SUCCEEDED, done.report
    assert sandbox_cluster.faults.fail_next == 0 and sandbox_cluster.get("nodes", "", node)["spec"]["unschedulable"]


def test_a_cluster_failing_every_write_fails_the_operation_saying_so(registered, sandbox_cluster, operator, client):
    """A cordon is an idempotent write: retried on 500s, then reported with how often pksweb tried; the page shows it."""
    node = f"{sandbox_cluster.name}-w-1"
    operation = start(registered, node, "cordon", operator)
    sandbox_cluster.faults.update({"error_rate": 1.0})
    done = node_operation_execute(operation_id=operation.pk)
    assert done.state == "failed"
    assert "The API server failed (50" in done.report and "pksweb tried 3 times" in done.report
    client.force_login(operator)
    page = client.get(f"/clusters/{registered.pk}/").content.decode()
    assert "pksweb tried 3 times" in page


@pytest.mark.parametrize("role", ["viewer", "approver", "tenant-admin"])
def test_only_operators_operate(users, registered, sandbox_cluster, role):
    with pytest.raises(PermissionDenied):
        start(registered, f"{sandbox_cluster.name}-w-1", "drain", users[role])


def test_operation_api(operator_api, viewer_api, registered, sandbox_cluster, django_capture_on_commit_callbacks):
    node = f"{sandbox_cluster.name}-w-1"
    assert viewer_api.post(f"/api/clusters/{registered.pk}/nodes/{node}/drain/").status_code == 403
    with django_capture_on_commit_callbacks(execute=False):
        response = operator_api.post(f"/api/clusters/{registered.pk}/nodes/{node}/drain/", {"timeout_seconds": 60}, format="json")
    assert response.status_code == 202, response.content
    operation = response.json()
    assert operation["state"] == "queued" and operation["kind"] == "drain" and operation["timeout_seconds"] == 60
    again = operator_api.post(f"/api/clusters/{registered.pk}/nodes/{node}/drain/")
    assert again.status_code == 400 and "already queued" in again.json()["node"][0]
    node_operation_execute(operation_id=operation["id"])
    done = viewer_api.get(f"/api/operations/{operation['id']}/").json()
    assert done["state"] == "succeeded" and done["report"].startswith(f"Node {node} drained")
    bad = operator_api.post(f"/api/clusters/{registered.pk}/nodes/{node}/drain/", {"timeout_seconds": 1}, format="json")
    assert bad.status_code == 400 and "timeout_seconds" in bad.json()


@pytest.mark.django_db(transaction=True)
def test_operation_waits_for_worker_in_embedded_mode(registered, sandbox_cluster, operator, celery_worker_thread):
    """The task queued by the service runs in a real Celery worker thread and finishes the drain."""
    operation = start(registered, f"{sandbox_cluster.name}-w-2", "drain", operator)
    wait_for(lambda: NodeOperation.objects.get(pk=operation.pk).state == "succeeded", timeout=20, what="drain by the worker")


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(node=st.text(min_size=200, max_size=8000))
def test_a_node_name_of_any_length_is_refused_in_bounded_words(registered, operator_api, node):
    """Whatever a URL names, the refusal quotes at most a bounded piece of it."""
    answer = operator_api.post(f"/api/clusters/{registered.pk}/nodes/{quote(node, safe='')}/cordon/", {}, format="json")
    assert answer.status_code in (400, 404) and len(answer.content) < 1000, answer.content[:300]
