"""Writes of tenants."""

from __future__ import annotations

from typing import Any

from django.db import transaction

from pksweb.choices import SubjectType
from pksweb.events import publish
from tenants.choices import MemberRole
from tenants.models import Tenant, TenantMembership


@transaction.atomic
def tenant_create(*, name: str, display_name: str = "", created_by: Any = None) -> Tenant:
    """Create a tenant (name: a DNS-1123 label, unique)."""
    tenant = Tenant(name=name, display_name=display_name)
    tenant.full_clean()
    tenant.save()
    publish(
        kind="tenant.created",
        message=f"Tenant {tenant.name} created",
        actor=created_by,
        subject_type=SubjectType.TENANT,
        subject_id=tenant.pk,
        subject_label=tenant.name,
        tenant=tenant,
    )
    return tenant


@transaction.atomic
def membership_add(*, tenant: Tenant, user: Any, role: str = MemberRole.ADMIN) -> TenantMembership:
    """Make ``user`` an admin (or viewer) of ``tenant``; idempotent."""
    existing = TenantMembership.objects.filter(tenant=tenant, user=user).first()
    if existing is not None:
        return existing
    membership = TenantMembership(tenant=tenant, user=user, role=role)
    membership.full_clean()
    membership.save()
    user.__dict__.pop("_pksweb_tenant_ids", None)
    publish(
        kind="tenant.member_added",
        message=f"{user.get_username()} is now {role} of tenant {tenant.name}",
        subject_type=SubjectType.TENANT,
        subject_id=tenant.pk,
        subject_label=tenant.name,
        tenant=tenant,
    )
    return membership
