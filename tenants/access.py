"""Access rules for tenants, their namespaces and dedicated nodes (see pksweb.policy)."""

from __future__ import annotations

from django.db.models import QuerySet

from pksweb.models import User
from pksweb.policy import Access, admin_tenant_ids, is_operator, is_platform, register, tenant_ids
from tenants.models import NodeAssignment, Tenant, TenantNamespace


@register(Tenant)
class TenantAccess(Access[Tenant]):
    """Who may see and change tenants.

    - Operators, approvers and viewers can see every tenant.
    - A tenant member (admin or viewer) can see only the tenants they belong to.
    - A tenant admin can manage (create, re-apply, delete namespaces of) only the
      tenants they administer; operators can manage every tenant.
    - Only an operator can create a tenant, change its profile, clusters and members (``update``,
      ``operate``) or delete it.
    """

    def can_view(self, user: User, tenant: Tenant) -> bool:
        return is_platform(user) or tenant.pk in tenant_ids(user)

    def can_manage(self, user: User, tenant: Tenant) -> bool:
        return is_operator(user) or tenant.pk in admin_tenant_ids(user)

    def can_operate(self, user: User, _tenant: Tenant) -> bool:
        return is_operator(user)

    def can_create(self, user: User, _model: type[Tenant]) -> bool:
        return is_operator(user)

    def can_update(self, user: User, _tenant: Tenant | type[Tenant]) -> bool:
        return is_operator(user)

    def can_delete(self, user: User, _tenant: Tenant | type[Tenant]) -> bool:
        return is_operator(user)

    def restrict_view(self, user: User, queryset: QuerySet[Tenant]) -> QuerySet[Tenant]:
        if is_platform(user):
            return queryset
        return queryset.filter(pk__in=tenant_ids(user))


@register(TenantNamespace)
class TenantNamespaceAccess(Access[TenantNamespace]):
    """A namespace is seen by whoever may see its tenant, and managed by whoever may manage it."""

    def can_view(self, user: User, namespace: TenantNamespace) -> bool:
        return is_platform(user) or namespace.tenant_id in tenant_ids(user)

    def can_manage(self, user: User, namespace: TenantNamespace) -> bool:
        return is_operator(user) or namespace.tenant_id in admin_tenant_ids(user)

    def restrict_view(self, user: User, queryset: QuerySet[TenantNamespace]) -> QuerySet[TenantNamespace]:
        if is_platform(user):
            return queryset
        return queryset.filter(tenant_id__in=tenant_ids(user))


@register(NodeAssignment)
class NodeAssignmentAccess(Access[NodeAssignment]):
    """Node assignments are platform business: the platform team sees them, operators change them.
    A tenant's members see their own tenant's nodes."""

    def can_view(self, user: User, assignment: NodeAssignment) -> bool:
        return is_platform(user) or assignment.tenant_id in tenant_ids(user)

    def restrict_view(self, user: User, queryset: QuerySet[NodeAssignment]) -> QuerySet[NodeAssignment]:
        if is_platform(user):
            return queryset
        return queryset.filter(tenant_id__in=tenant_ids(user))
