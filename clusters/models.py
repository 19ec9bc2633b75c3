from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from clusters.choices import ACTIVE_STATES, ClusterStatus, OperationKind, OperationState, UpgradeDriver
from clusters.health import stale
from clusters.kube.types import is_control_plane, pressures
from pksweb.validators import dns_label

VERSION_LIMIT = 100  # Cluster.version, ClusterNode.kubelet_version: what a probe's version is cut to


class ClusterManager(models.Manager["Cluster"]):
    """Registered clusters: archived ones (kept for the rollouts they took part in) are not the fleet."""

    def get_queryset(self) -> models.QuerySet[Cluster]:
        return super().get_queryset().filter(archived_at__isnull=True)


class Cluster(models.Model):
    """A registered Kubernetes cluster and its latest health.

    The credential is stored only sealed (``clusters.crypto``); read it through
    ``clusters.connect.cluster_credential``. It is never rendered or serialized.
    A cluster's identity is ``uid``, the UID of its ``kube-system`` namespace: one cluster
    is registered once. A removed cluster that took part in rollouts is archived instead
    (``archived_at``; credential, nodes and namespaces gone), so the audit trail still names it;
    ``Cluster.objects`` never shows it, ``Cluster.all_objects`` does.
    """

    name = models.CharField(max_length=63, validators=[dns_label])
    server = models.CharField(max_length=500)
    context = models.CharField(max_length=253, blank=True)
    credential_sealed = models.TextField(editable=False)
    status = models.CharField(max_length=12, choices=ClusterStatus.choices, default=ClusterStatus.UNKNOWN, db_index=True)
    reasons = models.JSONField(default=list, blank=True)
    version = models.CharField(max_length=VERSION_LIMIT, blank=True, db_index=True)
    nodes_ready = models.PositiveIntegerField(default=0)
    nodes_total = models.PositiveIntegerField(default=0)
    warnings = models.PositiveIntegerField(default=0)
    last_probe_at = models.DateTimeField(null=True, blank=True)
    last_probe_ms = models.PositiveIntegerField(null=True, blank=True)
    status_since = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)
    # How a drained node is turned into the new version (see upgrades.drivers).
    upgrade_driver = models.CharField(max_length=30, blank=True, default="", choices=UpgradeDriver.choices)
    upgrade_command = models.JSONField(default=list, blank=True)
    uid = models.CharField(max_length=64, blank=True, default="", help_text="UID of the kube-system namespace")
    archived_at = models.DateTimeField(null=True, blank=True)
    # Credential.trust() of the sealed credential ("" for clusters registered before it was kept).
    trust = models.CharField(max_length=64, blank=True, default="", editable=False)

    all_objects = models.Manager()
    objects = ClusterManager()

    class Meta:
        ordering = ["name"]
        default_manager_name = "objects"
        base_manager_name = "all_objects"
        constraints = [
            models.UniqueConstraint(fields=["name"], condition=Q(archived_at__isnull=True), name="cluster_name_once"),
            models.UniqueConstraint(fields=["uid"], condition=Q(archived_at__isnull=True) & ~Q(uid=""), name="cluster_registered_once"),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def probe_stale(self) -> bool:
        """No probe for a while: the status shown may no longer hold (see clusters.health.stale)."""
        return stale(self.last_probe_at, now=timezone.now(), interval=settings.PKSWEB_HEALTH_INTERVAL)

    @property
    def execution_inputs(self) -> dict[str, Any]:
        """What decides how this cluster's nodes are upgraded; an upgrade plan's approval binds all of it."""
        return {"driver": self.upgrade_driver, "command": list(self.upgrade_command or []), "server": self.server,
                "trust": self.trust}


# What execution listeners hear when a cluster leaves pksweb (see clusters.services.cluster_delete).
REMOVED = "removal"
EXECUTION_LABELS = {"driver": "upgrade driver", "command": "upgrade command", "server": "API server",
                    "trust": "TLS trust (CA, server name or verification)"}


class ClusterNode(models.Model):
    """A node as the last probe saw it (pages read this; they never wait on the cluster)."""

    cluster = models.ForeignKey(Cluster, on_delete=models.CASCADE, related_name="nodes")
    name = models.CharField(max_length=253)
    roles = models.JSONField(default=list, blank=True)
    kubelet_version = models.CharField(max_length=VERSION_LIMIT, blank=True)
    ready = models.BooleanField(null=True)
    ready_message = models.CharField(max_length=500, blank=True)
    conditions = models.JSONField(default=dict, blank=True)
    unschedulable = models.BooleanField(default=False)
    taints = models.JSONField(default=list, blank=True)
    labels = models.JSONField(default=dict, blank=True)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["cluster", "name"], name="cluster_node_once")]

    def __str__(self) -> str:
        return f"{self.cluster_id}/{self.name}"

    @property
    def is_control_plane(self) -> bool:
        return is_control_plane(self.roles)

    @property
    def pressures(self) -> list[str]:
        return pressures(self.conditions)


class HealthSpan(models.Model):
    """A stretch of time a cluster spent in one status: the health history."""

    cluster = models.ForeignKey(Cluster, on_delete=models.CASCADE, related_name="spans")
    status = models.CharField(max_length=12, choices=ClusterStatus.choices)
    reasons = models.JSONField(default=list, blank=True)
    started_at = models.DateTimeField()
    ended_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["started_at"]
        indexes = [models.Index(fields=["cluster", "started_at"], name="span_cluster_start")]
        constraints = [models.UniqueConstraint(fields=["cluster"], condition=Q(ended_at__isnull=True), name="one_open_span_per_cluster")]

    def __str__(self) -> str:
        return f"{self.cluster_id} {self.status} from {self.started_at:%Y-%m-%d %H:%M:%S}"


class NodeOperation(models.Model):
    """A cordon, uncordon or drain: the row is the truth; the task claims and runs it."""

    cluster = models.ForeignKey(Cluster, on_delete=models.CASCADE, related_name="operations")
    node = models.CharField(max_length=253)
    kind = models.CharField(max_length=10, choices=OperationKind.choices)
    state = models.CharField(max_length=10, choices=OperationState.choices, default=OperationState.QUEUED, db_index=True)
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    requested_by_name = models.CharField(max_length=150, blank=True)
    timeout_seconds = models.PositiveIntegerField(default=300)
    progress = models.JSONField(default=dict, blank=True)
    report = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # The claim of the worker running it, renewed while it runs; the reaper takes over an expired one.
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(fields=["cluster", "node"], condition=Q(state__in=ACTIVE_STATES), name="one_active_operation_per_node"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.node} ({self.state})"

    @property
    def active(self) -> bool:
        return self.state in ACTIVE_STATES
