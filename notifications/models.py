"""Channels (where messages go), subscriptions (who wants which kind where) and deliveries (what was sent)."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone

from notifications.choices import DeliveryState, NotifyKind


class Channel(models.Model):
    """Somewhere messages go, by an apprise URL (``json://``, ``slack://``, ``msteams://``, ``mailto://``, …).

    The URL holds secrets (webhook tokens, SMTP passwords): it is stored sealed with the cluster credentials'
    keys and never shown back; ``hint`` is what pages show (scheme and host). A channel with a ``tenant`` is that
    tenant's room: only its members subscribe on it and only news of that tenant reaches it. Without one it is
    the platform team's room.
    """

    name = models.CharField(max_length=100, unique=True)
    sealed_url = models.TextField(editable=False)
    hint = models.CharField(max_length=200, blank=True)
    tenant = models.ForeignKey("tenants.Tenant", null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Subscription(models.Model):
    """A person wants messages of ``kind`` on ``channel``."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notify_subscriptions")
    kind = models.CharField(max_length=40, choices=NotifyKind.choices)
    channel = models.ForeignKey(Channel, on_delete=models.CASCADE, related_name="subscriptions")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "kind", "channel"], name="subscription_once")]

    def __str__(self) -> str:
        return f"{self.user} wants {self.kind} on {self.channel}"


class Delivery(models.Model):
    """One message to one channel about one event: queued, sent, failed (with why) or suppressed (debounced)."""

    channel = models.ForeignKey(Channel, null=True, on_delete=models.SET_NULL, related_name="deliveries")
    channel_name = models.CharField(max_length=100)
    kind = models.CharField(max_length=40, choices=NotifyKind.choices)
    subject = models.CharField(max_length=100)
    event_id = models.BigIntegerField(db_index=True)
    recipients = models.CharField(max_length=500, blank=True)
    title = models.CharField(max_length=250)
    body = models.TextField()
    state = models.CharField(max_length=20, choices=DeliveryState.choices, default=DeliveryState.QUEUED)
    attempts = models.PositiveIntegerField(default=0)
    reason = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    next_at = models.DateTimeField(default=timezone.now)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["channel", "state", "id"], name="delivery_channel_state")]

    def __str__(self) -> str:
        return f"#{self.pk} {self.kind} → {self.channel_name}: {self.state}"


class Gate(models.Model):
    """The debounce of one subject on one channel: which event was decided last and when each kind was last sent.

    A row per (channel, subject), locked while an event about the subject is decided, so two workers never both
    send, and an older event that arrives after a newer one is dropped as stale instead of sent out of order.
    """

    key = models.CharField(max_length=150, primary_key=True)
    last_event_id = models.BigIntegerField(default=0)
    sent = models.JSONField(default=dict)
    last_sent_kind = models.CharField(max_length=40, blank=True)
    # News held back by the debounce: at the window's end the latest is sent if it differs from what was sent last.
    held = models.BooleanField(default=False)

    def __str__(self) -> str:
        return self.key


class Fanout(models.Model):
    """An event already turned into deliveries (so each is decided once, in the order of event ids)."""

    event_id = models.BigIntegerField(primary_key=True)
    done_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"event {self.event_id}"
