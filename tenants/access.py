"""Access rules for tenants (see pksweb.policy)."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet

from pksweb.policy import Access, is_operator, is_platform, register, tenant_ids
from tenants.models import Tenant


@register(Tenant)
class TenantAccess(Access):
    """Who may see and change tenants.

    - Operators, approvers and viewers can see every tenant.
    - A tenant admin can see only the tenants they are a member of, and can
      manage (namespaces, later) only those.
    - Only an operator can create or change a tenant (``operate``) and manage any tenant.
    """

    def can_view(self, user: Any, tenant: Tenant) -> bool:
        return is_platform(user) or tenant.pk in tenant_ids(user)

    def can_manage(self, user: Any, tenant: Tenant) -> bool:
        return is_operator(user) or tenant.pk in tenant_ids(user)

    def can_operate(self, user: Any, _tenant: Any) -> bool:
        return is_operator(user)

    def can_create(self, user: Any, _model: Any) -> bool:
        return is_operator(user)

    def restrict_view(self, user: Any, queryset: QuerySet[Tenant]) -> QuerySet[Tenant]:
        if is_platform(user):
            return queryset
        return queryset.filter(pk__in=tenant_ids(user))
