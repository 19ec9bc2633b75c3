"""The reconciler: it makes each tenant namespace on its cluster match the namespace's desired bundle
(``tenants.bundle``), and the drift scan says where a cluster no longer does.

Idempotent: a second reconcile changes nothing. Cluster I/O goes through ``clusters.connect.gateway_for``;
every change of a namespace's state is published through ``pksweb.events.publish``.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from clusters.connect import gateway_for
from clusters.kube import KubeError
from clusters.kube.objects import ObjectOps
from pksweb.choices import SubjectType
from pksweb.events import publish
from pksweb.text import REPORT_LIMIT, bound, bound_list
from tenants import bundle
from tenants.choices import SyncState
from tenants.models import Tenant, TenantNamespace


class BundleConflict(Exception):
    """An object in the bundle exists on the cluster but pksweb did not create it."""


def _apply(ops: ObjectOps, desired: dict[str, Any]) -> str | None:
    kind, name = desired["kind"], desired["metadata"]["name"]
    namespace = desired["metadata"].get("namespace", "")
    actual = ops.get(kind, name, namespace)
    if actual is None:
        try:
            ops.create(desired)
            return f"created {kind} {name}"
        except KubeError as exc:
            # Created meanwhile (two namespaces of a new cluster reconciled at once both create the shared
            # ClusterRole): what is there now is compared like any object that was there.
            actual = ops.get(kind, name, namespace) if exc.status == 409 else None
            if actual is None:
                raise
    if not bundle.is_managed(actual):
        raise BundleConflict(f"{kind} {name} exists on the cluster and was not created by pksweb; pksweb does not modify it. "
                             "Remove or rename it, then re-apply.")
    if not bundle.differences(desired, actual):
        return None
    if kind == "RoleBinding" and actual.get("roleRef") != desired["roleRef"]:
        ops.delete(kind, name, namespace)  # roleRef is immutable: replace the binding
        ops.create(desired)
        return f"re-created {kind} {name}"
    merged = dict(actual)
    meta = dict(actual["metadata"])
    meta["labels"] = {**(meta.get("labels") or {}), **desired["metadata"].get("labels", {})}
    if desired["metadata"].get("annotations"):
        meta["annotations"] = {**(meta.get("annotations") or {}), **desired["metadata"]["annotations"]}
    merged["metadata"] = meta
    for key in bundle.MANAGED_KEYS:
        if key in desired and kind != "Namespace":
            merged[key] = desired[key]
    ops.replace(merged)
    return f"updated {kind} {name}"


def _managed_extras(ops: ObjectOps, tenant: Tenant, namespace: str, desired: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """pksweb-managed NetworkPolicies in the namespace that the profile no longer asks for."""
    wanted = {d["metadata"]["name"] for d in desired if d["kind"] == "NetworkPolicy"}
    present = ops.list("NetworkPolicy", namespace, f"{bundle.MANAGED_BY}=pksweb")
    return [p for p in present if p["metadata"]["name"] not in wanted]


def namespace_reconcile(*, namespace_id: int) -> TenantNamespace | None:
    """Make the cluster match the namespace's desired bundle; idempotent (a second run changes nothing)."""
    namespace = TenantNamespace.objects.select_related("tenant", "cluster").filter(pk=namespace_id).first()
    if namespace is None:
        return None
    tenant = namespace.tenant
    desired = bundle.desired_bundle(tenant, namespace.name)
    changes: list[str] = []
    error = ""
    try:
        ops = gateway_for(namespace.cluster).objects
        for obj in desired:
            change = _apply(ops, obj)
            if change:
                changes.append(change)
        for extra in _managed_extras(ops, tenant, namespace.name, desired):
            ops.delete("NetworkPolicy", extra["metadata"]["name"], namespace.name)
            changes.append(f"deleted NetworkPolicy {extra['metadata']['name']}")
    except (KubeError, BundleConflict) as exc:
        error = getattr(exc, "message", None) or str(exc)
    return _record_sync(namespace, SyncState.FAILED if error else SyncState.IN_SYNC, [], error, changes, reconciled=not error)


def namespace_check(*, namespace_id: int) -> TenantNamespace | None:
    """The drift scan for one namespace: compare the cluster with the desired bundle, change nothing."""
    namespace = TenantNamespace.objects.select_related("tenant", "cluster").filter(pk=namespace_id).first()
    if namespace is None:
        return None
    desired = bundle.desired_bundle(namespace.tenant, namespace.name)
    drift: list[str] = []
    try:
        ops = gateway_for(namespace.cluster).objects
        for obj in desired:
            actual = ops.get(obj["kind"], obj["metadata"]["name"], obj["metadata"].get("namespace", ""))
            if actual is not None and not bundle.is_managed(actual):
                drift.append(f"{obj['kind']} {obj['metadata']['name']} exists but was not created by pksweb")
            else:
                drift += bundle.differences(obj, actual)
        drift += [f"NetworkPolicy {p['metadata']['name']} is not in the profile any more"
                  for p in _managed_extras(ops, namespace.tenant, namespace.name, desired)]
    except KubeError as exc:
        return _record_sync(namespace, SyncState.FAILED, [], exc.message, [], reconciled=False)
    return _record_sync(namespace, SyncState.DRIFTED if drift else SyncState.IN_SYNC, drift, "", [], reconciled=False)


def _record_sync(namespace: TenantNamespace, state: SyncState, drift: list[str], error: str, changes: list[str],
                 *, reconciled: bool) -> TenantNamespace:
    with transaction.atomic():
        locked = TenantNamespace.objects.select_for_update().select_related("tenant", "cluster").filter(pk=namespace.pk).first()
        if locked is None:
            return namespace
        before = (locked.sync_state, locked.drift, locked.error)
        # What the cluster said may be of any length: bounded here, so recording the state never fails on it.
        drift, error = bound_list(drift, DRIFT_LIMIT, each=1000), bound(error, REPORT_LIMIT)
        now = timezone.now()
        locked.sync_state, locked.drift, locked.error = state, drift, error
        locked.last_checked_at = now
        if reconciled:
            locked.last_reconciled_at = now
        locked.save()
        if changes or before != (state, drift, error):
            words = {SyncState.IN_SYNC: "in sync", SyncState.DRIFTED: "drifted", SyncState.FAILED: "failed"}[state]
            detail = f": {error}" if error else f": {drift[0]}" + (f" (+{len(drift) - 1} more)" if len(drift) > 1 else "") if drift else ""
            applied = f" ({len(changes)} change{'s' if len(changes) != 1 else ''} applied)" if changes else ""
            tenant = locked.tenant
            publish(kind=f"tenant.namespace_{state}", message=f"Namespace {locked.name} on {locked.cluster.name} is "
                    f"{words}{applied}{detail}", subject_type=SubjectType.TENANT, subject_id=tenant.pk, subject_label=tenant.name,
                    tenant=tenant, payload={"namespace": locked.pk, "cluster": locked.cluster.name, "state": state,
                                            "changes": changes, "drift": drift})
    return locked


PENDING_GRACE = timedelta(minutes=1)
DRIFT_LIMIT = 200


def drift_scan() -> dict[str, int]:
    """Check every namespace against its bundle (beat-scheduled).

    A namespace still pending a minute after it was asked for (its reconcile task was lost, or its
    worker died), or whose reconcile failed, is reconciled here: nothing stays pending or failed for good."""
    counts: dict[str, int] = {}
    stuck_before = timezone.now() - PENDING_GRACE
    stuck = Q(sync_state=SyncState.PENDING) & (Q(last_checked_at__lt=stuck_before) |
                                               Q(last_checked_at__isnull=True, created_at__lt=stuck_before))
    # A failed reconcile (its cluster was down, say) is reconciled again too, not only looked at.
    for namespace_id in TenantNamespace.objects.filter(stuck | Q(sync_state=SyncState.FAILED)).values_list("pk", flat=True):
        again = namespace_reconcile(namespace_id=namespace_id)
        if again is not None:
            counts["retried"] = counts.get("retried", 0) + 1
            counts[again.sync_state] = counts.get(again.sync_state, 0) + 1
    for namespace_id in TenantNamespace.objects.exclude(sync_state__in=(SyncState.PENDING, SyncState.FAILED)).values_list("pk", flat=True):
        checked = namespace_check(namespace_id=namespace_id)
        if checked is not None:
            counts[checked.sync_state] = counts.get(checked.sync_state, 0) + 1
    return counts
