from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone

from pksweb.validators import dns_label
from tenants.choices import MemberRole


class Tenant(models.Model):
    """A customer or line of business that gets room on the fleet."""

    name = models.CharField(max_length=63, unique=True, validators=[dns_label])
    display_name = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.display_name or self.name


class TenantMembership(models.Model):
    """A user who administers (or views) one tenant."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="tenant_memberships")
    role = models.CharField(max_length=10, choices=MemberRole.choices, default=MemberRole.ADMIN)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant", "user"], name="tenant_member_once")]

    def __str__(self) -> str:
        return f"{self.user} → {self.tenant} ({self.role})"
