from __future__ import annotations

from django.conf import settings
from django.contrib.auth.models import AbstractUser
from django.db import models
from django.utils import timezone

from pksweb.choices import PLATFORM_ROLES, Role, SubjectType


class User(AbstractUser):
    """A person or script signed in to pksweb, with exactly one role.

    Tenant admins are scoped to the tenants they are members of
    (``tenants.TenantMembership``); the other roles see the whole fleet.
    """

    role = models.CharField(max_length=20, choices=Role.choices, default=Role.VIEWER)

    @property
    def is_platform(self) -> bool:
        return self.role in PLATFORM_ROLES


class Event(models.Model):
    """Something that happened, stored before anyone is told about it.

    Events are the audit trail and the replay log of live pages: a page that
    reconnects asks for the events after the last id it saw. Written only by
    ``pksweb.events.publish``. Never carries credentials.
    """

    kind = models.CharField(max_length=100, db_index=True)
    message = models.CharField(max_length=500)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Kept so the audit trail still names who acted after the user is deleted.
    actor_name = models.CharField(max_length=150, blank=True)
    subject_type = models.CharField(max_length=20, choices=SubjectType.choices, default=SubjectType.SYSTEM)
    subject_id = models.CharField(max_length=64, blank=True)
    subject_label = models.CharField(max_length=200, blank=True)
    # The tenant whose admins may see this event; blank for fleet-level events.
    tenant = models.ForeignKey(
        "tenants.Tenant", null=True, blank=True, on_delete=models.SET_NULL, related_name="events"
    )
    payload = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    # The audit chain (pksweb.audit): sha256 of the previous digest and this event; blank until sealed.
    digest = models.CharField(max_length=64, blank=True, default="", editable=False)

    class Meta:
        ordering = ["-id"]
        indexes = [
            models.Index(fields=["tenant", "id"], name="event_tenant_id"),
            models.Index(fields=["subject_type", "subject_id", "id"], name="event_subject_id"),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.kind}: {self.message}"


class WorkerHeartbeat(models.Model):
    """When a Celery worker last ran the beat-scheduled heartbeat task."""

    worker = models.CharField(max_length=200, primary_key=True)
    seen_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.worker} @ {self.seen_at:%Y-%m-%d %H:%M:%S}"


class Lease(models.Model):
    """A named lease: whoever holds it until ``expires_at`` runs the guarded work alone
    (one health sweep at a time, whatever the number of beats or redeliveries)."""

    name = models.CharField(max_length=100, primary_key=True)
    holder = models.CharField(max_length=200)
    expires_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.name} held by {self.holder} until {self.expires_at:%H:%M:%S}"


class SignInIdentity(models.Model):
    """Who a person is at an identity provider (its issuer and their ``sub``), tied to their pksweb user.

    A person signed in through single sign-on is found by this pair, never by a user name: a provider
    account called like a local one (the break-glass account) does not become it.
    """

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="sign_in_identities")
    issuer = models.CharField(max_length=300)
    subject = models.CharField(max_length=255)
    groups = models.JSONField(default=list, blank=True)  # as the last sign-in gave them, shown to operators
    last_sign_in_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["issuer", "subject"], name="sign_in_identity_once")]

    def __str__(self) -> str:
        return f"{self.subject} at {self.issuer}"
