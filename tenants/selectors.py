"""Reads of tenancy for a person, scoped by the policy."""

from __future__ import annotations

from typing import Any

from django.db.models import Count, QuerySet

from pksweb import policy
from tenants.models import NodeAssignment, Tenant, TenantMembership, TenantNamespace


def tenant_list(*, user: Any) -> QuerySet[Tenant]:
    """Tenants ``user`` may see, with member and namespace counts."""
    return policy.restrict(user, Tenant.objects.annotate(member_count=Count("memberships", distinct=True),
                                                         namespace_count=Count("namespaces", distinct=True)))


def tenant_get(*, user: Any, pk: int) -> Tenant | None:
    return tenant_list(user=user).filter(pk=pk).prefetch_related("clusters").first()


def tenant_get_by_name(*, name: str) -> Tenant | None:
    """A tenant by its exact name (for commands that take names), unscoped."""
    return Tenant.objects.filter(name=name).first()


def tenant_members(*, tenant: Tenant) -> QuerySet[TenantMembership]:
    return tenant.memberships.select_related("user").order_by("user__username")


def namespace_list(*, user: Any, tenant: Tenant | None = None) -> QuerySet[TenantNamespace]:
    namespaces = policy.restrict(user, TenantNamespace.objects.select_related("tenant", "cluster"))
    return namespaces.filter(tenant=tenant) if tenant is not None else namespaces


def namespace_get(*, user: Any, pk: int) -> TenantNamespace | None:
    return namespace_list(user=user).filter(pk=pk).first()


def node_assignments(*, user: Any, tenant: Tenant | None = None, cluster: Any = None) -> QuerySet[NodeAssignment]:
    assignments = policy.restrict(user, NodeAssignment.objects.select_related("tenant", "cluster"))
    if tenant is not None:
        assignments = assignments.filter(tenant=tenant)
    if cluster is not None:
        assignments = assignments.filter(cluster=cluster)
    return assignments


def landing_tenant(*, user: Any) -> Tenant | None:
    """The tenant a tenant user lands on when they belong to exactly one."""
    if policy.is_platform(user):
        return None
    tenants = list(tenant_list(user=user)[:2])
    return tenants[0] if len(tenants) == 1 else None


def node_tenants(*, cluster: Any) -> dict[str, str]:
    """Node name → the dedicated-nodes tenant it is assigned to, for one cluster (platform pages)."""
    return dict(NodeAssignment.objects.filter(cluster=cluster).values_list("node", "tenant__name"))


def assignable_tenants(*, cluster: Any) -> QuerySet[Tenant]:
    """Dedicated-nodes tenants allowed on ``cluster``."""
    return Tenant.objects.filter(isolation="dedicated-nodes", clusters=cluster).order_by("name")


def member_tenant_ids(user: Any, admin_only: bool) -> frozenset[int]:
    """Ids of the tenants ``user`` is a member of, or administers when ``admin_only`` (the policy asks)."""
    memberships = TenantMembership.objects.filter(user=user)
    if admin_only:
        memberships = memberships.filter(role="admin")
    return frozenset(memberships.values_list("tenant_id", flat=True))
