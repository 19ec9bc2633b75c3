"""The fleet's health: probing clusters, recording what they showed, and the live snapshot of one cluster.

One sweep at a time probes every cluster concurrently (``fleet_sweep``, beat); ``cluster_probe`` probes one
now. Whatever a cluster says is bounded before it is stored.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.utils import timezone

from clusters import health
from clusters.choices import ClusterStatus
from clusters.connect import gateway_for, other_cluster
from clusters.events import cluster_publish
from clusters.kube import Expectation, KubeError, ProbeResult
from clusters.models import VERSION_LIMIT, Cluster, ClusterNode, HealthSpan
from pksweb import metrics
from pksweb.leases import LeaseLost, Renewal, lease_acquire, lease_release, lease_renew
from pksweb.text import bound, bound_list

log = logging.getLogger(__name__)
SWEEP_LEASE = "clusters.health_sweep"
REASONS_LIMIT = 20
REASON_LIMIT = 500
NODE_NAME_LIMIT = 253


def _expectations(cluster_ids: list[int]) -> dict[int, Expectation]:
    """What each cluster looked like at its last probe (two queries for any number of clusters)."""
    nodes: dict[int, set[str]] = {}
    for cluster_id, name in ClusterNode.objects.filter(cluster_id__in=cluster_ids).values_list("cluster_id", "name"):
        nodes.setdefault(cluster_id, set()).add(name)
    versions = dict(Cluster.objects.filter(pk__in=cluster_ids).values_list("pk", "version"))
    return {pk: Expectation(versions.get(pk, ""), frozenset(nodes.get(pk, ()))) for pk in cluster_ids}


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
    node_changes, other_changes = nodes_record(cluster, result) if result.error is None else ([], [])
    if changed_status or node_changes or other_changes:
        _live_snapshot_drop(cluster.pk)  # what the page showed of the cluster no longer holds
    if changed_status:
        detail = f": {reasons[0]}" if reasons else ""
        cluster_publish(cluster, "cluster.status_changed", f"Cluster {cluster.name} is {status}{detail}",
                        old=old_status, new=status, reasons=reasons)
    if result.error is None and old_version and cluster.version != old_version:
        cluster_publish(cluster, "cluster.version_changed", f"Cluster {cluster.name} now runs Kubernetes {cluster.version} (was {old_version})",
                        old=old_version, new=cluster.version)
    for node, ready in node_changes:
        cluster_publish(cluster, "cluster.node_ready_changed",
                        f"Node {node} of {cluster.name} is {'Ready' if ready else 'NotReady' if ready is False else 'unknown'}",
                        node=node, ready=ready)
    if other_changes:  # one event a probe: the cluster page's node table follows it live
        cluster_publish(cluster, "cluster.nodes_changed", f"Nodes of {cluster.name}: {'; '.join(bound_list(other_changes, 8, each=120))}",
                        changes=bound_list(other_changes, 50, each=300))
    return cluster


def nodes_record(cluster: Cluster, result: ProbeResult) -> tuple[list[tuple[str, bool | None]], list[str]]:
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


def nodes_refresh(*, cluster: Cluster) -> None:
    """Re-read the nodes after pksweb changed one (an operation, a node given to a tenant or taken back), so
    pages show its cordon, labels and taints at once instead of after the next sweep."""
    try:
        nodes = gateway_for(cluster).nodes()
    except KubeError:
        return  # the next sweep will catch up; the operation's own report says what happened
    with transaction.atomic():
        locked = Cluster.objects.select_for_update().get(pk=cluster.pk)
        for node, ready in nodes_record(locked, ProbeResult(nodes=nodes))[0]:  # the rest: operation_finished
            cluster_publish(locked, "cluster.node_ready_changed", f"Node {node} of {locked.name} is {'Ready' if ready else 'NotReady'}",
                            node=node, ready=ready)


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
    metrics.SWEEP_SECONDS.observe(report.seconds)
    return report


def _live_snapshot_key(cluster_id: int) -> str:
    return f"pksweb:cluster-live:{cluster_id}"


def _live_snapshot_drop(cluster_id: int) -> None:
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
    key = _live_snapshot_key(cluster.pk)
    snapshot: dict[str, Any] | None = cache.get(key)
    if snapshot is None:
        gateway = gateway_for(cluster)
        snapshot = {"pod_counts": gateway.pod_counts(), "namespaces": gateway.namespaces(),
                    "kube_events": gateway.recent_events(limit=20), "taken_at": timezone.now()}
        cache.set(key, snapshot, settings.PKSWEB_LIVE_SNAPSHOT_SECONDS)
    return snapshot
