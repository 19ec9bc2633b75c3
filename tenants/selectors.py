"""Reads of tenancy for a person, scoped by the policy."""

from __future__ import annotations

from collections.abc import Collection

from django.db.models import Count, QuerySet

from clusters.models import Cluster
from pksweb import policy
from pksweb.models import User
from pksweb.types import AnyUser
from tenants.choices import MemberRole
from tenants.models import NodeAssignment, Tenant, TenantMembership, TenantNamespace


def tenant_list(*, user: AnyUser) -> QuerySet[Tenant]:
    """Tenants ``user`` may see, with member and namespace counts."""
    return policy.restrict(user, Tenant.objects.annotate(member_count=Count("memberships", distinct=True),
                                                         namespace_count=Count("namespaces", distinct=True)))


def tenant_get(*, user: AnyUser, pk: int) -> Tenant | None:
    return tenant_list(user=user).filter(pk=pk).prefetch_related("clusters").first()


def tenant_get_by_name(*, name: str) -> Tenant | None:
    """A tenant by its exact name (for commands that take names), unscoped."""
    return Tenant.objects.filter(name=name).first()


def tenant_members(*, tenant: Tenant) -> QuerySet[TenantMembership]:
    return tenant.memberships.select_related("user").order_by("user__username")


def namespace_list(*, user: AnyUser, tenant: Tenant | None = None) -> QuerySet[TenantNamespace]:
    namespaces = policy.restrict(user, TenantNamespace.objects.select_related("tenant", "cluster"))
    return namespaces.filter(tenant=tenant) if tenant is not None else namespaces


def namespace_get(*, user: AnyUser, pk: int) -> TenantNamespace | None:
    return namespace_list(user=user).filter(pk=pk).first()


def node_assignments(*, user: AnyUser, tenant: Tenant | None = None, cluster: Cluster | None = None) -> QuerySet[NodeAssignment]:
    assignments = policy.restrict(user, NodeAssignment.objects.select_related("tenant", "cluster"))
    if tenant is not None:
        assignments = assignments.filter(tenant=tenant)
    if cluster is not None:
        assignments = assignments.filter(cluster=cluster)
    return assignments


def landing_tenant(*, user: AnyUser) -> Tenant | None:
    """The tenant a tenant user lands on when they belong to exactly one."""
    if policy.is_platform(user):
        return None
    tenants = list(tenant_list(user=user)[:2])
    return tenants[0] if len(tenants) == 1 else None


def node_tenants(*, cluster: Cluster) -> dict[str, str]:
    """Node name → the dedicated-nodes tenant it is assigned to, for one cluster (platform pages)."""
    return dict(NodeAssignment.objects.filter(cluster=cluster).values_list("node", "tenant__name"))


def assignable_tenants(*, cluster: Cluster) -> QuerySet[Tenant]:
    """Dedicated-nodes tenants allowed on ``cluster``."""
    return Tenant.objects.filter(isolation="dedicated-nodes", clusters=cluster).order_by("name")


def member_tenant_ids(user: User, admin_only: bool) -> frozenset[int]:
    """Ids of the tenants ``user`` is a member of, or administers when ``admin_only`` (the policy asks)."""
    memberships = TenantMembership.objects.filter(user=user)
    if admin_only:
        memberships = memberships.filter(role="admin")
    return frozenset(memberships.values_list("tenant_id", flat=True))


def member_tenant_names(*, user: User) -> list[str]:
    """The sorted names of the tenants ``user`` is a member of (their own account, ``/api/me/``)."""
    return sorted(TenantMembership.objects.filter(user=user).values_list("tenant__name", flat=True))


def membership_rows(user_ids: Collection[int]) -> list[tuple[int, int, bool]]:
    """(user id, tenant id, administers) of every membership of the users with ``user_ids`` (the policy asks, for
    many users at once)."""
    rows = TenantMembership.objects.filter(user_id__in=user_ids).values_list("user_id", "tenant_id", "role")
    return [(user_id, tenant_id, role == MemberRole.ADMIN) for user_id, tenant_id, role in rows]
