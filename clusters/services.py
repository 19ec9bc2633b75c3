"""Writes of the fleet's registry: registering, changing and removing clusters, and their keys.

Every cluster call goes through ``clusters.kube`` (via ``clusters.connect``); every change a page
shows is published through ``clusters.events``. Health is recorded in ``clusters.sweep``, node
operations run in ``clusters.operations``.
"""

from __future__ import annotations

from typing import Any

import yaml
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import ProtectedError, QuerySet
from django.utils import timezone

from clusters import crypto, hooks
from clusters.access import OPERATORS_ONLY
from clusters.choices import ClusterStatus, UpgradeDriver
from clusters.connect import cluster_credential
from clusters.events import cluster_publish, recorded
from clusters.kube import Credential, Gateway, KubeError, parse_kubeconfig
from clusters.kube import client as kube_clients
from clusters.models import EXECUTION_LABELS, REMOVED, VERSION_LIMIT, Cluster, HealthSpan
from clusters.tasks import probe_cluster
from pksweb.policy import require
from pksweb.text import bound
from pksweb.types import AnyUser

COMMAND_ARGS = 64
COMMAND_ARG_LENGTH = 1000
DRIVERS = tuple(UpgradeDriver.values)


def _connect(credential: Credential, field: str) -> tuple[str, str]:
    """Prove the credential works before anything is saved; returns the server version and the
    cluster's identity (the UID of its kube-system namespace)."""
    try:
        gateway = Gateway(credential, key=f"check-{credential.fingerprint()[:12]}", timeout=settings.PKSWEB_PROBE_TIMEOUT)
        return bound(gateway.check_access(), VERSION_LIMIT), gateway.identity()
    except KubeError as exc:
        raise ValidationError({field: exc.message}) from None


def _others(but: int | None) -> QuerySet[Cluster]:
    """The fleet but the cluster ``but`` (the one being changed), if any."""
    return Cluster.objects.exclude(pk=but) if but is not None else Cluster.objects.all()


def _name_free(name: str, *, but: int | None = None) -> None:
    if _others(but).filter(name=name).exists():
        raise ValidationError({"name": f"A cluster called {name!r} is registered already."})


def _same_cluster(uid: str, field: str, *, but: int | None = None) -> None:
    """Refuse a second registration of one cluster, naming the one registered already."""
    if not uid:
        return
    twin = _others(but).filter(uid=uid).first()
    if twin is not None:
        raise ValidationError({field: f"This credential reaches cluster {twin.name}, which is registered already (kube-system "
                                      f"namespace UID {uid}): pksweb registers each cluster once."})


def cluster_register(*, name: str, credential: Credential, created_by: AnyUser | None, context: str = "",
                     credential_field: str = "kubeconfig", check: bool = True) -> Cluster:
    """Register a cluster after proving pksweb can reach it with ``credential``.

    Nothing is saved when the name is invalid or taken, the cluster cannot be reached or read,
    or it is registered already under another name (same kube-system UID); the ValidationError
    says why, on ``credential_field``. ``check=False`` skips the connection (bulk imports of
    trusted fleets, benchmarks); the first probe then records the cluster's identity.
    """
    require(created_by, "create", Cluster, OPERATORS_ONLY)
    cluster = Cluster(name=(name or "").strip(), server=credential.server, context=context, created_by=recorded(created_by),
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
        cluster_publish(cluster, "cluster.registered", f"Cluster {cluster.name} registered ({credential.server})", created_by,
                        version=version, uid=uid)
        transaction.on_commit(lambda: probe_cluster.delay(cluster.pk))
    return cluster


def cluster_update(*, cluster: Cluster, updated_by: AnyUser | None, name: str | None = None, credential: Credential | None = None,
                   context: str | None = None, credential_field: str = "kubeconfig", upgrade_driver: str | None = None,
                   upgrade_command: list[str] | None = None) -> Cluster:
    """Rename a cluster, replace its credential (checked by connecting first), or set its upgrade driver.

    A credential must reach the same cluster (its kube-system UID); a change of driver, command,
    server or TLS trust (CA, server name, verification) voids the approvals of plans that include the
    cluster (see ``clusters.hooks.on_execution_change``).
    """
    require(updated_by, "update", cluster, OPERATORS_ONLY)
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
            if upgrade_driver == UpgradeDriver.COMMAND and not settings.PKSWEB_ALLOW_COMMAND_DRIVER:
                raise ValidationError({"upgrade_driver": "The command driver is off in this deployment "
                                                         "(PKSWEB_ALLOW_COMMAND_DRIVER=1 turns it on); choose another driver."})
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
            cluster_publish(locked, "cluster.updated", f"Cluster {locked.name}: {' and '.join(changes)} changed", updated_by,
                            changed=changes)
        execution = [EXECUTION_LABELS[what] for what, value in locked.execution_inputs.items() if before[what] != value]
        if execution:
            hooks.execution_changed(locked, execution, updated_by)
    if credential is not None:
        kube_clients.forget(f"cluster-{cluster.pk}")
    return locked


def cluster_delete(*, cluster: Cluster, deleted_by: AnyUser | None) -> None:
    """Forget a cluster and its credential; its events stay in the audit trail.

    A cluster that took part in rollouts is archived instead: its rollouts keep naming it, while its
    credential, nodes, operations and tenant namespaces are removed from pksweb as a delete would, and
    it leaves the fleet (its name and identity can be registered again).
    """
    require(deleted_by, "delete", cluster, OPERATORS_ONLY)
    with transaction.atomic():
        locked = Cluster.objects.select_for_update().filter(pk=cluster.pk).first()
        if locked is None:
            return
        busy = hooks.busy(locked, None)
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
            cluster_publish(locked, "cluster.archived", f"Cluster {locked.name} removed from pksweb; kept in the archive because "
                            f"rollouts name it (its credential is deleted){also}", deleted_by)
        else:
            cluster_publish(locked, "cluster.deleted", f"Cluster {locked.name} removed from pksweb{also}", deleted_by)
        hooks.execution_changed(locked, [REMOVED], deleted_by)  # plans that include it no longer run what was approved
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


def sandbox_fleet_register(*, kubeconfigs: dict[str, dict[str, Any]]) -> list[Cluster]:
    """Register (or re-point) the embedded sandbox's clusters, by name; used by ``manage.py serve``."""
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
