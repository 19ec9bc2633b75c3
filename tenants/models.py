from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator
from django.db import models
from django.utils import timezone

from pksweb.validators import dns_label
from tenants.choices import Isolation, MemberRole, PodSecurity, SyncState
from tenants.validators import cidr_list, namespace_list, quantity, quantity_value


class Tenant(models.Model):
    """A customer or line of business that gets room on the fleet, and its profiles.

    Quota, LimitRange defaults and the segmentation profile apply to every namespace
    the tenant has; editing them re-reconciles those namespaces.
    """

    name = models.CharField(max_length=63, unique=True, validators=[dns_label])
    display_name = models.CharField(max_length=200, blank=True)
    isolation = models.CharField(max_length=20, choices=Isolation.choices, default=Isolation.SHARED)
    clusters = models.ManyToManyField("clusters.Cluster", blank=True, related_name="tenants")
    max_namespaces = models.PositiveIntegerField(default=10, validators=[MinValueValidator(1)])
    pod_security = models.CharField(max_length=12, choices=PodSecurity.choices, default=PodSecurity.BASELINE)
    # Quota profile (Kubernetes quantities).
    quota_cpu = models.CharField(max_length=20, default="8", validators=[quantity])
    quota_memory = models.CharField(max_length=20, default="16Gi", validators=[quantity])
    quota_pods = models.CharField(max_length=20, default="100", validators=[quantity])
    quota_storage = models.CharField(max_length=20, default="100Gi", validators=[quantity])
    quota_load_balancers = models.PositiveIntegerField(default=0)
    # LimitRange defaults for containers.
    limit_cpu = models.CharField(max_length=20, default="500m", validators=[quantity])
    limit_memory = models.CharField(max_length=20, default="512Mi", validators=[quantity])
    request_cpu = models.CharField(max_length=20, default="100m", validators=[quantity])
    request_memory = models.CharField(max_length=20, default="128Mi", validators=[quantity])
    # Segmentation profile.
    allow_same_namespace = models.BooleanField(default=True)
    allow_same_tenant = models.BooleanField(default=True)
    allow_dns = models.BooleanField(default=True)
    ingress_from_namespaces = models.JSONField(default=list, blank=True, validators=[namespace_list])
    egress_cidrs = models.JSONField(default=list, blank=True, validators=[cidr_list])
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.display_name or self.name

    def clean(self) -> None:
        """A LimitRange whose default request exceeds its default limit is refused by a real API server (422):
        say so here, next to the field, before any namespace is reconciled with it."""
        errors = {}
        for request, limit, what in (("request_cpu", "limit_cpu", "CPU"), ("request_memory", "limit_memory", "memory")):
            wanted, most = quantity_value(getattr(self, request)), quantity_value(getattr(self, limit))
            if wanted is not None and most is not None and wanted > most:
                errors[request] = (f"The default {what} request ({getattr(self, request)}) is more than the default {what} limit "
                                   f"({getattr(self, limit)}); Kubernetes refuses such a LimitRange. Lower the request or raise the limit.")
        if errors:
            raise ValidationError(errors)

    @property
    def group(self) -> str:
        """The RBAC group that gets the ``admin`` ClusterRole in the tenant's namespaces."""
        return f"pksweb:tenant:{self.name}"


class TenantMembership(models.Model):
    """A user who administers (or only views) one tenant."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="tenant_memberships")
    role = models.CharField(max_length=10, choices=MemberRole.choices, default=MemberRole.ADMIN)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant", "user"], name="tenant_member_once")]

    def __str__(self) -> str:
        return f"{self.user} → {self.tenant} ({self.role})"


class TenantNamespace(models.Model):
    """A namespace pksweb keeps on a cluster for a tenant, and whether the cluster matches."""

    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="namespaces")
    cluster = models.ForeignKey("clusters.Cluster", on_delete=models.CASCADE, related_name="tenant_namespaces")
    name = models.CharField(max_length=63, validators=[dns_label])
    sync_state = models.CharField(max_length=10, choices=SyncState.choices, default=SyncState.PENDING, db_index=True)
    drift = models.JSONField(default=list, blank=True)
    error = models.TextField(blank=True)
    last_reconciled_at = models.DateTimeField(null=True, blank=True)
    last_checked_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["cluster__name", "name"]
        constraints = [models.UniqueConstraint(fields=["cluster", "name"], name="namespace_once_per_cluster")]

    def __str__(self) -> str:
        return f"{self.name} on {self.cluster_id}"


class NodeAssignment(models.Model):
    """A node given to one dedicated-nodes tenant (labelled and tainted for it)."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="node_assignments")
    cluster = models.ForeignKey("clusters.Cluster", on_delete=models.CASCADE, related_name="node_assignments")
    node = models.CharField(max_length=253)
    assigned_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["cluster_id", "node"]
        constraints = [models.UniqueConstraint(fields=["cluster", "node"], name="node_assigned_once")]

    def __str__(self) -> str:
        return f"{self.node} → {self.tenant_id}"
