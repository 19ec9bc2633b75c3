"""Node operations (cordon, uncordon, drain): the row is the truth, a task claims and runs it, a reaper takes
over the ones whose worker stopped.

The tasks that run them are defined here, beside the services that queue them: a task and the code that
queues it cannot sit in two modules that import each other.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from celery import shared_task
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from clusters import hooks
from clusters.access import OPERATORS_ONLY
from clusters.choices import ACTIVE_STATES, OperationKind, OperationState
from clusters.connect import gateway_verified
from clusters.events import cluster_publish, recorded
from clusters.kube import Gateway, KubeError
from clusters.kube.drain import node_drain
from clusters.models import Cluster, ClusterNode, NodeOperation
from clusters.sweep import nodes_refresh
from pksweb.leases import LeaseLost, Renewal, WorkerStopping
from pksweb.policy import require
from pksweb.shutdown import handed_back
from pksweb.text import REPORT_LIMIT, bound, bound_payload
from pksweb.types import AnyUser

log = logging.getLogger(__name__)
MAX_ATTEMPTS = 3


def node_operation_start(*, cluster: Cluster, node: str, kind: str, requested_by: AnyUser | None,
                         timeout_seconds: int | None = None) -> NodeOperation:
    """Queue a cordon, uncordon or drain of ``node``; refused while another operation on it is active."""
    require(requested_by, "operate", cluster, OPERATORS_ONLY)
    if kind not in OperationKind.values:
        raise ValidationError({"kind": f"{bound(kind, 40)!r} is not an operation: use cordon, uncordon or drain."})
    if not ClusterNode.objects.filter(cluster=cluster, name=node).exists():
        raise ValidationError({"node": f"{cluster.name} has no node {bound(node, 80)!r} (as of its last probe)."})
    timeout = timeout_seconds or settings.PKSWEB_DRAIN_TIMEOUT
    if not 10 <= timeout <= 86400:
        raise ValidationError({"timeout_seconds": "Give the drain between 10 seconds and a day."})
    hooks.node_left_alone(cluster, node)
    with transaction.atomic():
        running = NodeOperation.objects.select_for_update().filter(cluster=cluster, node=node, state__in=ACTIVE_STATES).first()
        if running is not None:
            raise ValidationError({"node": f"A {running.kind} of {node} is already {running.state} (operation #{running.pk}, "
                                           f"started by {running.requested_by_name or 'someone'}); wait for it to finish."})
        operation = NodeOperation(cluster=cluster, node=node, kind=kind, requested_by=recorded(requested_by),
                                  requested_by_name=requested_by.get_username() if requested_by else "pksweb",
                                  timeout_seconds=timeout, lease_expires_at=_lease_until())
        operation.full_clean()
        try:
            with transaction.atomic():
                operation.save()
        except IntegrityError:
            raise ValidationError({"node": f"Another operation on {node} started a moment ago; wait for it to finish."}) from None
        cluster_publish(cluster, "cluster.operation_queued", f"{kind.capitalize()} of node {node} on {cluster.name} queued",
                        requested_by, operation=operation.pk, node=node, state=operation.state)
        transaction.on_commit(lambda: node_operation_run.delay(operation.pk))
    return operation


def _lease_until() -> datetime:
    return timezone.now() + timedelta(seconds=settings.PKSWEB_OPERATION_LEASE_SECONDS)


def _claim(operation_id: int) -> NodeOperation | None:
    with transaction.atomic():
        operation = NodeOperation.objects.select_for_update().select_related("cluster").filter(pk=operation_id).first()
        if operation is None or operation.state != OperationState.QUEUED:
            return None
        operation.state = OperationState.RUNNING
        operation.started_at = operation.started_at or timezone.now()
        operation.attempts += 1
        operation.lease_expires_at = _lease_until()
        operation.save(update_fields=["state", "started_at", "attempts", "lease_expires_at"])
        again = f" (attempt {operation.attempts} of {MAX_ATTEMPTS})" if operation.attempts > 1 else ""
        cluster_publish(operation.cluster, "cluster.operation_started", f"{operation.kind.capitalize()} of node {operation.node} started{again}",
                        operation=operation.pk, node=operation.node, state=operation.state)
        return operation


def _unclaim(operation: NodeOperation) -> None:
    """Give a running operation back (its worker is shutting down): queued again, as if this attempt never began
    (its lease, renewed, keeps the reaper from queuing a second task while the handed-back one travels)."""
    NodeOperation.objects.filter(pk=operation.pk, state=OperationState.RUNNING, attempts=operation.attempts).update(
        state=OperationState.QUEUED, attempts=operation.attempts - 1, lease_expires_at=_lease_until())


def _renewal(operation: NodeOperation) -> Renewal:
    """Keeps this worker's claim on ``operation`` alive; lost once the reaper gave it to another."""
    attempt = operation.attempts

    def renew() -> bool:
        return bool(NodeOperation.objects.filter(pk=operation.pk, state=OperationState.RUNNING, attempts=attempt)
                    .update(lease_expires_at=_lease_until()))

    return Renewal(renew, settings.PKSWEB_OPERATION_LEASE_SECONDS, f"The {operation.kind} of {operation.node}")


def _progress(operation: NodeOperation, message: str, **progress: Any) -> None:
    operation.progress = bound_payload({**operation.progress, **progress, "message": message})
    NodeOperation.objects.filter(pk=operation.pk).update(progress=operation.progress)
    cluster_publish(operation.cluster, "cluster.operation_progress", f"{operation.kind.capitalize()} of {operation.node}: {message}",
                    operation=operation.pk, node=operation.node, state=operation.state)


def _finish(operation: NodeOperation, state: str, report: str) -> NodeOperation | None:
    """Record the outcome, unless the claim was lost (the reaper gave the work to another worker)."""
    with transaction.atomic():
        current = NodeOperation.objects.select_for_update().filter(pk=operation.pk).values_list("state", "attempts").first()
        if current != (OperationState.RUNNING, operation.attempts):
            return None
        operation.state = state
        operation.report = bound(report, REPORT_LIMIT)
        operation.finished_at = timezone.now()
        operation.lease_expires_at = None
        operation.progress = bound_payload(operation.progress)
        operation.save(update_fields=["state", "report", "finished_at", "progress", "lease_expires_at"])
        verb = "finished" if state == OperationState.SUCCEEDED else "failed"
        cluster_publish(operation.cluster, "cluster.operation_finished", f"{operation.kind.capitalize()} of node {operation.node} {verb}: "
                        f"{report.splitlines()[0] if report else ''}", operation=operation.pk, node=operation.node, state=state)
    return operation


def node_operation_execute(*, operation_id: int, sleep: Callable[[float], None] = time.sleep) -> NodeOperation | None:
    """Run a queued operation; returns None when it was not queued (a second delivery) or was taken over."""
    operation = _claim(operation_id)
    if operation is None:
        return None
    renewal = _renewal(operation)
    state: str
    try:
        gateway = gateway_verified(operation.cluster)
        if operation.kind == OperationKind.CORDON:
            gateway.set_unschedulable(operation.node, True)
            state, report = OperationState.SUCCEEDED, f"Node {operation.node} cordoned: no new pods will be scheduled there."
        elif operation.kind == OperationKind.UNCORDON:
            gateway.set_unschedulable(operation.node, False)
            state, report = OperationState.SUCCEEDED, f"Node {operation.node} uncordoned: it takes new pods again."
        else:
            state, report = _drain(operation, gateway, sleep, renewal.keep)
    except KubeError as exc:
        state, report = OperationState.FAILED, exc.message
    except WorkerStopping:
        _unclaim(operation)  # this worker is ending: queued again, the task hands it back (not an attempt that failed)
        raise
    except LeaseLost as exc:
        log.warning("%s; this worker stops", exc)
        return None
    # Re-read the nodes first, so the pages the finish event updates show the cordon.
    nodes_refresh(cluster=operation.cluster)
    return _finish(operation, state, report)


def node_operations_reap() -> dict[str, int]:
    """Take over or fail the operations whose worker stopped, and queue again the ones whose task was lost.

    A running operation whose claim expired (its worker died: nothing renewed it for a lease period)
    is queued again, up to MAX_ATTEMPTS, or failed saying why (a drain may leave the node cordoned).
    A queued one nobody claimed within a lease period (its task was lost, e.g. Redis restarted empty)
    is queued again; claiming is idempotent, so a second task for it does nothing.
    """
    now = timezone.now()
    counts = {"taken_over": 0, "failed": 0, "requeued": 0}
    lease = settings.PKSWEB_OPERATION_LEASE_SECONDS
    for operation_id in NodeOperation.objects.filter(state=OperationState.RUNNING, lease_expires_at__lt=now).values_list("pk", flat=True):
        with transaction.atomic():
            operation = (NodeOperation.objects.select_for_update().select_related("cluster")
                         .filter(pk=operation_id, state=OperationState.RUNNING, lease_expires_at__lt=now).first())
            if operation is None:
                continue
            what = f"{operation.kind.capitalize()} of node {operation.node}"
            quiet = f"the worker running it stopped (no sign of life for {int(lease)} s)"
            if operation.attempts < MAX_ATTEMPTS:
                operation.state = OperationState.QUEUED
                operation.lease_expires_at = now + timedelta(seconds=lease)
                operation.save(update_fields=["state", "lease_expires_at"])
                cluster_publish(operation.cluster, "cluster.operation_taken_over", f"{what}: {quiet}; pksweb starts it again "
                                f"(attempt {operation.attempts + 1} of {MAX_ATTEMPTS})", operation=operation.pk, node=operation.node,
                                state=operation.state)
                transaction.on_commit(partial(node_operation_run.delay, operation.pk))
                counts["taken_over"] += 1
                continue
            operation.state = OperationState.FAILED
            operation.finished_at = now
            operation.lease_expires_at = None
            leftover = " The node may be left cordoned: check it, then uncordon or drain it again." \
                if operation.kind != OperationKind.UNCORDON else ""
            operation.report = bound(f"{what} failed: {quiet}, {operation.attempts} times; pksweb gave up.{leftover}\n\n"
                                     f"{operation.report}".rstrip(), REPORT_LIMIT)
            operation.save(update_fields=["state", "finished_at", "lease_expires_at", "report"])
            cluster_publish(operation.cluster, "cluster.operation_finished", f"{what} failed: {quiet}, {operation.attempts} times",
                            operation=operation.pk, node=operation.node, state=operation.state)
            counts["failed"] += 1
    lost = NodeOperation.objects.filter(state=OperationState.QUEUED).exclude(lease_expires_at__gte=now)
    for operation_id in lost.values_list("pk", flat=True):
        # Back off: a long queue behind a busy worker is not a lost task every few seconds.
        if NodeOperation.objects.filter(pk=operation_id, state=OperationState.QUEUED).exclude(lease_expires_at__gte=now) \
                .update(lease_expires_at=now + timedelta(seconds=lease * 4)):
            node_operation_run.delay(operation_id)
            counts["requeued"] += 1
    return counts


def _drain(operation: NodeOperation, gateway: Gateway, sleep: Callable[[float], None],
           keep: Callable[[], None]) -> tuple[str, str]:
    result = node_drain(gateway=gateway, node=operation.node, timeout=operation.timeout_seconds, sleep=sleep, keep=keep,
                        on_progress=lambda message, **state: _progress(operation, message, **state))
    operation.progress = {**operation.progress, "evicted": result.evicted, "skipped": result.skipped,
                          "blocked": result.blocked, "pending": result.pending}
    return (OperationState.SUCCEEDED if result.ok else OperationState.FAILED), result.report


# The tasks keep their names (clusters.tasks.*): the beat schedule and messages already queued name them so.
@shared_task(name="clusters.tasks.node_operation_run", ignore_result=True, acks_late=True, time_limit=90000,
             soft_time_limit=89900)
def node_operation_run(operation_id: int) -> None:
    """Run a queued cordon/uncordon/drain. Safe twice: the service claims the row or returns. A worker that is
    shutting down hands it back to the queue."""
    with handed_back():
        node_operation_execute(operation_id=operation_id)


@shared_task(name="clusters.tasks.operations_reap", ignore_result=True, time_limit=60, soft_time_limit=55)
def operations_reap() -> dict[str, int]:
    """Beat: take over node operations whose worker died, queue again those whose task was lost."""
    return node_operations_reap()
