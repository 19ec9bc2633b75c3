"""Writes of the fleet: registering clusters, recording health, node operations.

Every cluster call goes through ``clusters.kube``; every change a page shows is
published through ``pksweb.events.publish``.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.db.models import ProtectedError
from django.utils import timezone

from clusters import crypto, health
from clusters.choices import ACTIVE_STATES, ClusterStatus, OperationKind, OperationState, UpgradeDriver
from clusters.connect import cluster_credential, gateway_for, gateway_verified, other_cluster
from clusters.kube import Credential, Expectation, Gateway, KubeError, ProbeResult
from clusters.kube import client as kube_clients
from clusters.models import EXECUTION_LABELS, REMOVED, Cluster, ClusterNode, HealthSpan, NodeOperation
from pksweb import policy
from pksweb.choices import SubjectType
from pksweb.events import publish
from pksweb.leases import LeaseLost, Renewal, lease_acquire, lease_release, lease_renew
from pksweb.text import REPORT_LIMIT, bound, bound_list, bound_payload

log = logging.getLogger(__name__)
SWEEP_LEASE = "clusters.health_sweep"
VERSION_LIMIT = 100  # Cluster.version, ClusterNode.kubelet_version
REASONS_LIMIT = 20
COMMAND_ARGS = 64
COMMAND_ARG_LENGTH = 1000
REASON_LIMIT = 500


def _expectations(cluster_ids: list[int]) -> dict[int, Expectation]:
    """What each cluster looked like at its last probe (two queries for any number of clusters)."""
    nodes: dict[int, set[str]] = {}
    for cluster_id, name in ClusterNode.objects.filter(cluster_id__in=cluster_ids).values_list("cluster_id", "name"):
        nodes.setdefault(cluster_id, set()).add(name)
    versions = dict(Cluster.objects.filter(pk__in=cluster_ids).values_list("pk", "version"))
    return {pk: Expectation(versions.get(pk, ""), frozenset(nodes.get(pk, ()))) for pk in cluster_ids}


def _publish(cluster: Cluster, kind: str, message: str, actor: Any = None, **payload: Any) -> None:
    publish(kind=kind, message=message, actor=actor, subject_type=SubjectType.CLUSTER, subject_id=cluster.pk,
            subject_label=cluster.name, payload=payload)


def _connect(credential: Credential, field: str) -> tuple[str, str]:
    """Prove the credential works before anything is saved; returns the server version and the
    cluster's identity (the UID of its kube-system namespace)."""
    try:
        gateway = Gateway(credential, key=f"check-{credential.fingerprint()[:12]}", timeout=settings.PKSWEB_PROBE_TIMEOUT)
        return bound(gateway.check_access(), VERSION_LIMIT), gateway.identity()
    except KubeError as exc:
        raise ValidationError({field: exc.message}) from None


def _name_free(name: str, *, but: int | None = None) -> None:
    if Cluster.objects.filter(name=name).exclude(pk=but).exists():
        raise ValidationError({"name": f"A cluster called {name!r} is registered already."})


def _same_cluster(uid: str, field: str, *, but: int | None = None) -> None:
    """Refuse a second registration of one cluster, naming the one registered already."""
    if not uid:
        return
    twin = Cluster.objects.filter(uid=uid).exclude(pk=but).first()
    if twin is not None:
        raise ValidationError({field: f"This credential reaches cluster {twin.name}, which is registered already (kube-system "
                                      f"namespace UID {uid}): pksweb registers each cluster once."})


def _require(user: Any, action: str, obj: Any) -> None:
    """Ask the policy; ``user=None`` means pksweb itself (management commands, the embedded sandbox)."""
    if user is not None and not policy.can(user, action, obj):
        raise PermissionDenied("Only operators can change clusters.")


# ---- registry ----------------------------------------------------------------------


def cluster_register(*, name: str, credential: Credential, created_by: Any, context: str = "",
                     credential_field: str = "kubeconfig", check: bool = True) -> Cluster:
    """Register a cluster after proving pksweb can reach it with ``credential``.

    Nothing is saved when the name is invalid or taken, the cluster cannot be reached or read,
    or it is registered already under another name (same kube-system UID); the ValidationError
    says why, on ``credential_field``. ``check=False`` skips the connection (bulk imports of
    trusted fleets, benchmarks); the first probe then records the cluster's identity.
    """
    _require(created_by, "create", Cluster)
    cluster = Cluster(name=(name or "").strip(), server=credential.server, context=context, created_by=created_by,
                      credential_sealed="pending")
    cluster.full_clean(exclude=["credential_sealed"], validate_constraints=False)
    _name_free(cluster.name)
    version, uid = _connect(credential, credential_field) if check else ("", "")
    with transaction.atomic():
        _same_cluster(uid, credential_field)
        cluster.credential_sealed = crypto.seal(credential.as_dict())
        cluster.trust = credential.trust()
        cluster.version = version
        cluster.uid = uid
        cluster.status_since = timezone.now()
        try:
            with transaction.atomic():
                cluster.save()
        except IntegrityError:
            _same_cluster(uid, credential_field)  # registered a moment ago by someone else
            raise ValidationError({"name": f"A cluster called {cluster.name!r} is registered already."}) from None
        HealthSpan.objects.create(cluster=cluster, status=ClusterStatus.UNKNOWN, started_at=cluster.status_since)
        _publish(cluster, "cluster.registered", f"Cluster {cluster.name} registered ({credential.server})", created_by,
                 version=version, uid=uid)
        transaction.on_commit(lambda: _enqueue_probe(cluster.pk))
    return cluster


def _enqueue_probe(cluster_id: int) -> None:
    from clusters.tasks import probe_cluster

    probe_cluster.delay(cluster_id)


DRIVERS = tuple(UpgradeDriver.values)


ExecutionListener = Callable[[Cluster, list[str], Any], None]
_execution_listeners: list[ExecutionListener] = []


def on_execution_change(listener: ExecutionListener) -> ExecutionListener:
    """Register ``listener(cluster, changed, by)``, called inside the transaction of the change when what
    decides how the cluster is upgraded changes (``cluster_update``: the labels of the driver, command argv,
    server or TLS trust that changed) or the cluster leaves pksweb (``cluster_delete``: ``[REMOVED]``). The upgrades app registers here (its AppConfig) to void approvals bound to the old
    inputs: clusters must not import upgrades, and the voiding must commit with the change."""
    if listener not in _execution_listeners:
        _execution_listeners.append(listener)
    return listener


BusyCheck = Callable[[Cluster, "str | None"], str]
_busy_checks: list[BusyCheck] = []


def on_busy_check(check: BusyCheck) -> BusyCheck:
    """Register ``check(cluster, node)``: why the cluster (``node=None``: to be removed) or one of its nodes (for a
    manual operation) must be left alone right now, or ''. The upgrades app registers the rollouts' claim (its
    AppConfig): while a rollout runs on a cluster, it owns the cluster's nodes."""
    if check not in _busy_checks:
        _busy_checks.append(check)
    return check


def _busy(cluster: Cluster, node: str | None) -> str:
    return next((reason for check in _busy_checks if (reason := check(cluster, node))), "")


def cluster_update(*, cluster: Cluster, updated_by: Any, name: str | None = None, credential: Credential | None = None,
                   context: str | None = None, credential_field: str = "kubeconfig", upgrade_driver: str | None = None,
                   upgrade_command: list[str] | None = None) -> Cluster:
    """Rename a cluster, replace its credential (checked by connecting first), or set its upgrade driver.

    A credential must reach the same cluster (its kube-system UID); a change of driver, command,
    server or TLS trust (CA, server name, verification) voids the approvals of plans that include the
    cluster (see ``on_execution_change``).
    """
    _require(updated_by, "operate", cluster)
    changes = []
    uid = _connect(credential, credential_field)[1] if credential is not None else ""
    with transaction.atomic():
        locked = Cluster.objects.select_for_update().get(pk=cluster.pk)
        before = locked.execution_inputs
        if name is not None and name.strip() != locked.name:
            locked.name = name.strip()
            _name_free(locked.name, but=locked.pk)
            changes.append("name")
        if credential is not None:
            if locked.uid and uid != locked.uid:
                raise ValidationError({credential_field: f"This credential reaches a different cluster (kube-system namespace "
                                                         f"UID {uid}) than {locked.name} (UID {locked.uid}): register it as a "
                                                         "new cluster instead."})
            _same_cluster(uid, credential_field, but=locked.pk)
            locked.uid = uid
            locked.credential_sealed = crypto.seal(credential.as_dict())
            locked.trust = credential.trust()
            locked.server = credential.server
            changes.append("credential")
        if context is not None and context != locked.context:
            locked.context = context
        if upgrade_driver is not None and upgrade_driver != locked.upgrade_driver:
            if upgrade_driver not in DRIVERS:
                raise ValidationError({"upgrade_driver": f"{bound(upgrade_driver, 60)!r} is not a driver: use sandbox, command or "
                                                         "system-upgrade-controller (or empty for none)."})
            locked.upgrade_driver = upgrade_driver
            changes.append("upgrade driver")
        if upgrade_command is not None and upgrade_command != locked.upgrade_command:
            if not isinstance(upgrade_command, list) or not all(isinstance(p, str) and p for p in upgrade_command):
                raise ValidationError({"upgrade_command": "Give the command as a list of arguments, e.g. "
                                                          '["/opt/upgrade-node.sh", "{cluster}", "{node}", "{version}"].'})
            if len(upgrade_command) > COMMAND_ARGS or any(len(p) > COMMAND_ARG_LENGTH or "\x00" in p for p in upgrade_command):
                raise ValidationError({"upgrade_command": f"Keep the command to {COMMAND_ARGS} arguments of at most "
                                                          f"{COMMAND_ARG_LENGTH} characters each, without NUL bytes: put "
                                                          "what it needs in a script and call that."})
            locked.upgrade_command = upgrade_command
            changes.append("upgrade command")
        locked.full_clean(exclude=["credential_sealed"], validate_constraints=False)
        try:
            with transaction.atomic():
                locked.save()
        except IntegrityError:
            raise ValidationError({"name": f"A cluster called {locked.name!r} is registered already."}) from None
        if changes:
            _publish(locked, "cluster.updated", f"Cluster {locked.name}: {' and '.join(changes)} changed", updated_by,
                     changed=changes)
        execution = [EXECUTION_LABELS[what] for what, value in locked.execution_inputs.items() if before[what] != value]
        if execution:
            for listener in _execution_listeners:
                listener(locked, execution, updated_by)
    if credential is not None:
        kube_clients.forget(f"cluster-{cluster.pk}")
    return locked


def cluster_delete(*, cluster: Cluster, deleted_by: Any) -> None:
    """Forget a cluster and its credential; its events stay in the audit trail.

    A cluster that took part in rollouts is archived instead: its rollouts keep naming it, while its
    credential, nodes, operations and tenant namespaces are removed from pksweb as a delete would, and
    it leaves the fleet (its name and identity can be registered again).
    """
    _require(deleted_by, "operate", cluster)
    with transaction.atomic():
        locked = Cluster.objects.select_for_update().filter(pk=cluster.pk).first()
        if locked is None:
            return
        busy = _busy(locked, None)
        if busy:
            raise ValidationError({"non_field_errors": f"Cluster {locked.name} cannot be removed now: {busy}"})
        tracked = locked.tenant_namespaces.count()
        also = (f"; pksweb no longer tracks its {tracked} tenant namespace(s), which stay on the cluster"
                if tracked else "")
        try:
            with transaction.atomic():
                Cluster.all_objects.filter(pk=locked.pk).delete()
        except ProtectedError:
            _archive(locked)
            _publish(locked, "cluster.archived", f"Cluster {locked.name} removed from pksweb; kept in the archive because "
                     f"rollouts name it (its credential is deleted){also}", deleted_by)
        else:
            _publish(locked, "cluster.deleted", f"Cluster {locked.name} removed from pksweb{also}", deleted_by)
        for listener in _execution_listeners:  # plans that include it no longer run what was approved
            listener(locked, [REMOVED], deleted_by)
    kube_clients.forget(f"cluster-{cluster.pk}")


def _archive(cluster: Cluster) -> None:
    cluster.archived_at = timezone.now()
    cluster.credential_sealed = crypto.seal({})
    cluster.status = ClusterStatus.UNKNOWN
    cluster.reasons = ["archived: removed from pksweb"]
    cluster.save()
    # What a delete would have cascaded to, but the rollouts' history.
    for related in (cluster.nodes, cluster.operations, cluster.tenant_namespaces, cluster.node_assignments):
        related.all().delete()
    cluster.tenants.clear()


def credential_keys_rotate() -> int:
    """Re-encrypt every stored credential with the newest key; returns how many."""
    count = 0
    for cluster in Cluster.objects.only("pk", "credential_sealed").iterator():
        with transaction.atomic():
            locked = Cluster.objects.select_for_update().only("pk", "credential_sealed").get(pk=cluster.pk)
            Cluster.objects.filter(pk=locked.pk).update(credential_sealed=crypto.reseal(locked.credential_sealed))
            count += 1
    return count


# ---- health ----------------------------------------------------------------------------


def cluster_probe(*, cluster: Cluster) -> Cluster:
    """Probe one cluster now and record what it showed."""
    result = gateway_for(cluster).probe(identify=not cluster.uid, expect=_expectations([cluster.pk])[cluster.pk])
    return cluster_health_record(cluster_id=cluster.pk, result=result)


@transaction.atomic
def cluster_health_record(*, cluster_id: int, result: ProbeResult) -> Cluster:
    """Store a probe's verdict; publish status, version and node readiness changes.

    Whatever the cluster said is bounded before it is stored, so the record never fails on it.
    """
    cluster = Cluster.objects.select_for_update().get(pk=cluster_id)
    if result.identity and cluster.uid and result.identity != cluster.uid:
        # Another cluster answered: nothing it said is this cluster's.
        result = ProbeResult(error=KubeError("identity", other_cluster(cluster, result.identity)), latency_ms=result.latency_ms)
    status, reasons = health.assess(result)
    if result.identity and not cluster.uid:
        twin = Cluster.objects.filter(uid=result.identity).exclude(pk=cluster.pk).first()
        if twin is None:
            cluster.uid = bound(result.identity, 64)
        else:
            status = ClusterStatus.DEGRADED if status == ClusterStatus.HEALTHY else status
            reasons = [f"this is the same cluster as {twin.name} (kube-system namespace UID {result.identity}): "
                       "remove one of the two registrations", *reasons]
    reasons = bound_list(reasons, REASONS_LIMIT, each=REASON_LIMIT)
    now = timezone.now()
    old_status, old_version = cluster.status, cluster.version
    cluster.reasons = reasons
    cluster.last_probe_at = now
    cluster.last_probe_ms = min(int(result.latency_ms), 2**31 - 1)
    cluster.warnings = len(result.warnings)
    if result.error is None:
        cluster.version = bound(result.version, VERSION_LIMIT)
        cluster.nodes_total = len(result.nodes)
        cluster.nodes_ready = sum(1 for n in result.nodes if n.ready)
    changed_status = status != old_status
    if changed_status:
        cluster.status = status
        cluster.status_since = now
        HealthSpan.objects.filter(cluster=cluster, ended_at__isnull=True).update(ended_at=now)
        HealthSpan.objects.create(cluster=cluster, status=status, reasons=reasons, started_at=now)
    cluster.save()
    node_changes, other_changes = _nodes_record(cluster, result) if result.error is None else ([], [])
    if changed_status or node_changes or other_changes:
        _live_snapshot_drop(cluster.pk)  # what the page showed of the cluster no longer holds
    if changed_status:
        detail = f": {reasons[0]}" if reasons else ""
        _publish(cluster, "cluster.status_changed", f"Cluster {cluster.name} is {status}{detail}",
                 old=old_status, new=status, reasons=reasons)
    if result.error is None and old_version and cluster.version != old_version:
        _publish(cluster, "cluster.version_changed", f"Cluster {cluster.name} now runs Kubernetes {cluster.version} (was {old_version})",
                 old=old_version, new=cluster.version)
    for node, ready in node_changes:
        _publish(cluster, "cluster.node_ready_changed",
                 f"Node {node} of {cluster.name} is {'Ready' if ready else 'NotReady' if ready is False else 'unknown'}",
                 node=node, ready=ready)
    if other_changes:  # one event a probe: the cluster page's node table follows it live
        _publish(cluster, "cluster.nodes_changed", f"Nodes of {cluster.name}: {'; '.join(bound_list(other_changes, 8, each=120))}",
                 changes=bound_list(other_changes, 50, each=300))
    return cluster


NODE_NAME_LIMIT = 253


def _nodes_record(cluster: Cluster, result: ProbeResult) -> tuple[list[tuple[str, bool | None]], list[str]]:
    """Bring the node snapshot up to date; returns (node, ready) for readiness changes, and the other changes
    a page shows in words (joined, left, cordoned, uncordoned, a new kubelet version, new taints or labels).

    Names longer than Kubernetes allows are cut to fit; two nodes that would then share a name
    (or a list that names one node twice) are recorded once.
    """
    existing = {n.name: n for n in ClusterNode.objects.filter(cluster=cluster)}
    seen = set()
    changes: list[tuple[str, bool | None]] = []
    others: list[str] = []
    now = timezone.now()
    for info in result.nodes:
        name = bound(info.name, NODE_NAME_LIMIT)
        if not name or name in seen:
            continue
        seen.add(name)
        values = {"roles": bound_list(info.roles, 20, each=100), "kubelet_version": bound(info.kubelet_version, VERSION_LIMIT),
                  "ready": info.ready, "ready_message": bound(info.ready_message, 500), "conditions": info.conditions,
                  "unschedulable": info.unschedulable, "taints": bound_list(info.taints, 50, each=500), "labels": info.labels}
        node = existing.get(name)
        if node is None:
            ClusterNode.objects.create(cluster=cluster, name=name, updated_at=now, **values)
            if existing:  # not the first look at the cluster
                others.append(f"{name} joined")
            continue
        if node.ready != info.ready:
            changes.append((name, info.ready))
        if node.unschedulable != values["unschedulable"]:
            others.append(f"{name} {'cordoned' if values['unschedulable'] else 'uncordoned'}")
        if node.kubelet_version != values["kubelet_version"]:
            others.append(f"{name} now runs {values['kubelet_version'] or 'an unknown version'}")
        if node.taints != values["taints"] or node.labels != values["labels"]:
            others.append(f"{name}'s {'taints' if node.taints != values['taints'] else 'labels'} changed")
        if any(getattr(node, k) != v for k, v in values.items()):
            for k, v in values.items():
                setattr(node, k, v)
            node.updated_at = now
            node.save()
    gone = [name for name in existing if name not in seen]
    if gone:
        ClusterNode.objects.filter(cluster=cluster, name__in=gone).delete()
        others += [f"{name} left" for name in sorted(gone)]
    return changes, others


@dataclass
class SweepReport:
    probed: int = 0
    healthy: int = 0
    degraded: int = 0
    unreachable: int = 0
    seconds: float = 0.0
    skipped: bool = False
    failures: list[str] = field(default_factory=list)


def fleet_sweep(*, workers: int | None = None, timeout: tuple[float, float] | None = None,
                on_result: Callable[[Cluster], None] | None = None) -> SweepReport:
    """Probe every cluster concurrently (bounded) and record each result as it arrives.

    One sweep at a time across all processes (a lease, renewed while the sweep runs, so a
    sweep longer than the lease is not joined by a second one, and a dead worker's lease
    expires within one period); a slow cluster holds only its own worker thread until its
    per-call timeout; one cluster's failure never fails the sweep.
    """
    holder = f"{socket.gethostname()}:{os.getpid()}:{time.monotonic_ns()}"
    interval = settings.PKSWEB_HEALTH_INTERVAL
    lease_seconds = max(interval * 2, settings.PKSWEB_SWEEP_LEASE_SECONDS)
    if not lease_acquire(name=SWEEP_LEASE, holder=holder, seconds=lease_seconds):
        return SweepReport(skipped=True)
    renewal = Renewal.of_lease(name=SWEEP_LEASE, holder=holder, seconds=lease_seconds, what="the health sweep")
    started = time.monotonic()
    report = SweepReport()
    try:
        clusters = list(Cluster.objects.only("pk", "name", "credential_sealed", "uid"))
        timeout = timeout or settings.PKSWEB_PROBE_TIMEOUT
        gateways = {}
        unidentified = {c.pk for c in clusters if not c.uid}
        expected = _expectations([c.pk for c in clusters])
        for cluster in clusters:
            try:
                gateways[cluster.pk] = gateway_for(cluster, timeout)
            except Exception as exc:  # a broken credential must not stop the sweep; it is reported
                report.failures.append(f"{cluster.name}: {exc}")
        with ThreadPoolExecutor(max_workers=workers or settings.PKSWEB_SWEEP_WORKERS, thread_name_prefix="probe") as pool:
            futures = {pool.submit(gw.probe, identify=cluster_id in unidentified, expect=expected.get(cluster_id)): cluster_id
                       for cluster_id, gw in gateways.items()}
            for future in as_completed(futures):
                cluster_id = futures[future]
                try:
                    renewal.keep()
                except LeaseLost:
                    log.warning("the health sweep's lease was taken over; this sweep stops recording")
                    break
                try:
                    recorded = cluster_health_record(cluster_id=cluster_id, result=future.result())
                except Cluster.DoesNotExist:
                    continue  # deleted while being probed
                except Exception as exc:  # recorded per cluster, never fatal to the sweep
                    log.exception("recording the probe of cluster %s failed", cluster_id)
                    report.failures.append(f"{cluster_id}: {exc}")
                    continue
                report.probed += 1
                setattr(report, recorded.status, getattr(report, recorded.status, 0) + 1)
                if on_result is not None:
                    on_result(recorded)
    finally:
        # Keep the lease until most of the interval has passed since this sweep began: a second
        # beat (or a redelivered task) inside the same interval finds it held and skips, so each
        # cluster is probed once per interval however many schedulers run.
        remaining = interval * 0.9 - (time.monotonic() - started)
        if remaining > 1:
            lease_renew(name=SWEEP_LEASE, holder=holder, seconds=remaining)
        else:
            lease_release(name=SWEEP_LEASE, holder=holder)
    report.seconds = time.monotonic() - started
    return report


def _live_snapshot_key(cluster_id: int) -> str:
    return f"pksweb:cluster-live:{cluster_id}"


def _live_snapshot_drop(cluster_id: int) -> None:
    from django.core.cache import cache

    try:
        cache.delete(_live_snapshot_key(cluster_id))
    except Exception:  # the cache being down must not fail a probe; the snapshot expires by itself
        log.warning("could not drop the live snapshot of cluster %s", cluster_id)


def cluster_live_snapshot(*, cluster: Cluster) -> dict[str, Any]:
    """What only the cluster knows right now (pods per node, namespaces, recent events) for its page.

    Read from the cluster at most once per PKSWEB_LIVE_SNAPSHOT_SECONDS and shared by every viewer
    through the cache: listing 6,000 pods costs the cluster and us half a second, and a page that
    many people reload must not cost it each time. The page says how old the snapshot is.
    """
    from django.core.cache import cache

    key = _live_snapshot_key(cluster.pk)
    snapshot = cache.get(key)
    if snapshot is None:
        gateway = gateway_for(cluster)
        snapshot = {"pod_counts": gateway.pod_counts(), "namespaces": gateway.namespaces(),
                    "kube_events": gateway.recent_events(limit=20), "taken_at": timezone.now()}
        cache.set(key, snapshot, settings.PKSWEB_LIVE_SNAPSHOT_SECONDS)
    return snapshot


# ---- node operations -------------------------------------------------------------------------


def node_operation_start(*, cluster: Cluster, node: str, kind: str, requested_by: Any,
                         timeout_seconds: int | None = None) -> NodeOperation:
    """Queue a cordon, uncordon or drain of ``node``; refused while another operation on it is active."""
    _require(requested_by, "operate", cluster)
    if kind not in OperationKind.values:
        raise ValidationError({"kind": f"{kind!r} is not an operation: use cordon, uncordon or drain."})
    if not ClusterNode.objects.filter(cluster=cluster, name=node).exists():
        raise ValidationError({"node": f"{cluster.name} has no node {node!r} (as of its last probe)."})
    timeout = timeout_seconds or settings.PKSWEB_DRAIN_TIMEOUT
    if not 10 <= timeout <= 86400:
        raise ValidationError({"timeout_seconds": "Give the drain between 10 seconds and a day."})
    busy = _busy(cluster, node)
    if busy:
        raise ValidationError({"node": busy})
    with transaction.atomic():
        running = NodeOperation.objects.select_for_update().filter(cluster=cluster, node=node, state__in=ACTIVE_STATES).first()
        if running is not None:
            raise ValidationError({"node": f"A {running.kind} of {node} is already {running.state} (operation #{running.pk}, "
                                           f"started by {running.requested_by_name or 'someone'}); wait for it to finish."})
        operation = NodeOperation(cluster=cluster, node=node, kind=kind, requested_by=requested_by,
                                  requested_by_name=requested_by.get_username() if requested_by else "pksweb",
                                  timeout_seconds=timeout, lease_expires_at=_lease_until())
        operation.full_clean()
        try:
            with transaction.atomic():
                operation.save()
        except IntegrityError:
            raise ValidationError({"node": f"Another operation on {node} started a moment ago; wait for it to finish."}) from None
        _publish(cluster, "cluster.operation_queued", f"{kind.capitalize()} of node {node} on {cluster.name} queued",
                 requested_by, operation=operation.pk, node=node, state=operation.state)
        transaction.on_commit(lambda: _enqueue_operation(operation.pk))
    return operation


def _enqueue_operation(operation_id: int) -> None:
    from clusters.tasks import node_operation_run

    node_operation_run.delay(operation_id)


MAX_ATTEMPTS = 3


def _lease_until() -> Any:
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
        _publish(operation.cluster, "cluster.operation_started", f"{operation.kind.capitalize()} of node {operation.node} started{again}",
                 operation=operation.pk, node=operation.node, state=operation.state)
        return operation


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
    _publish(operation.cluster, "cluster.operation_progress", f"{operation.kind.capitalize()} of {operation.node}: {message}",
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
        _publish(operation.cluster, "cluster.operation_finished", f"{operation.kind.capitalize()} of node {operation.node} {verb}: "
                 f"{report.splitlines()[0] if report else ''}", operation=operation.pk, node=operation.node, state=state)
    return operation


def node_operation_execute(*, operation_id: int, sleep: Callable[[float], None] = time.sleep) -> NodeOperation | None:
    """Run a queued operation; returns None when it was not queued (a second delivery) or was taken over."""
    operation = _claim(operation_id)
    if operation is None:
        return None
    renewal = _renewal(operation)
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
    except LeaseLost as exc:
        log.warning("%s; this worker stops", exc)
        return None
    # Re-read the nodes first, so the pages the finish event updates show the cordon.
    _refresh_nodes(operation.cluster)
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
                _publish(operation.cluster, "cluster.operation_taken_over", f"{what}: {quiet}; pksweb starts it again "
                         f"(attempt {operation.attempts + 1} of {MAX_ATTEMPTS})", operation=operation.pk, node=operation.node,
                         state=operation.state)
                transaction.on_commit(lambda pk=operation.pk: _enqueue_operation(pk))
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
            _publish(operation.cluster, "cluster.operation_finished", f"{what} failed: {quiet}, {operation.attempts} times",
                     operation=operation.pk, node=operation.node, state=operation.state)
            counts["failed"] += 1
    lost = NodeOperation.objects.filter(state=OperationState.QUEUED).exclude(lease_expires_at__gte=now)
    for operation_id in lost.values_list("pk", flat=True):
        # Back off: a long queue behind a busy worker is not a lost task every few seconds.
        if NodeOperation.objects.filter(pk=operation_id, state=OperationState.QUEUED).exclude(lease_expires_at__gte=now) \
                .update(lease_expires_at=now + timedelta(seconds=lease * 4)):
            _enqueue_operation(operation_id)
            counts["requeued"] += 1
    return counts


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


def _drain(operation: NodeOperation, gateway: Gateway, sleep: Callable[[float], None],
           keep: Callable[[], None]) -> tuple[str, str]:
    result = node_drain(gateway=gateway, node=operation.node, timeout=operation.timeout_seconds, sleep=sleep, keep=keep,
                        on_progress=lambda message, **state: _progress(operation, message, **state))
    operation.progress = {**operation.progress, "evicted": result.evicted, "skipped": result.skipped,
                          "blocked": result.blocked, "pending": result.pending}
    return (OperationState.SUCCEEDED if result.ok else OperationState.FAILED), result.report


def _refresh_nodes(cluster: Cluster) -> None:
    """Re-read the nodes after an operation so pages show cordons at once."""
    try:
        nodes = gateway_for(cluster).nodes()
    except KubeError:
        return  # the next sweep will catch up; the operation's own report says what happened
    with transaction.atomic():
        locked = Cluster.objects.select_for_update().get(pk=cluster.pk)
        for node, ready in _nodes_record(locked, ProbeResult(nodes=nodes))[0]:  # the rest: operation_finished
            _publish(locked, "cluster.node_ready_changed", f"Node {node} of {locked.name} is {'Ready' if ready else 'NotReady'}",
                     node=node, ready=ready)


def sandbox_fleet_register(*, kubeconfigs: dict[str, dict[str, Any]]) -> list[Cluster]:
    """Register (or re-point) the embedded sandbox's clusters, by name; used by ``manage.py serve``."""
    import yaml

    from clusters.kube import parse_kubeconfig

    clusters = []
    for name, kubeconfig in kubeconfigs.items():
        context, credential = parse_kubeconfig(yaml.safe_dump(kubeconfig))
        existing = Cluster.objects.filter(name=name).first()
        if existing is None:
            clusters.append(cluster_register(name=name, credential=credential, context=context, created_by=None))
        elif cluster_credential(existing) != credential:
            clusters.append(cluster_update(cluster=existing, updated_by=None, credential=credential, context=context))
        else:
            clusters.append(existing)
    # Simulated clusters are upgraded by the sandbox driver unless someone chose otherwise.
    Cluster.objects.filter(pk__in=[c.pk for c in clusters], upgrade_driver=UpgradeDriver.NONE).update(upgrade_driver=UpgradeDriver.SANDBOX)
    return clusters
