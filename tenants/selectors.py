"""Reads of tenants for a person, scoped by the policy."""

from __future__ import annotations

from typing import Any

from django.db.models import Count, QuerySet

from pksweb import policy
from tenants.models import Tenant


def tenant_list(*, user: Any) -> QuerySet[Tenant]:
    """Tenants ``user`` may see, with their member counts."""
    return policy.restrict(user, Tenant.objects.annotate(member_count=Count("memberships")), "view")


def tenant_get_by_name(*, name: str) -> Tenant | None:
    """A tenant by its exact name (for commands that take names), unscoped."""
    return Tenant.objects.filter(name=name).first()
