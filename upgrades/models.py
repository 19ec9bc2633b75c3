from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from upgrades.choices import ACTIVE_ROLLOUT, Decision, PlanState, RolloutState, StepPhase


class UpgradePlan(models.Model):
    """What will be upgraded, how, and when: the thing approvers sign off.

    ``revision`` fingerprints everything that affects execution; approvals are bound to it.
    """

    name = models.CharField(max_length=200)
    target_version = models.CharField(max_length=20)
    waves = models.JSONField(default=list)  # [[cluster id, ...], ...] in order
    max_unavailable = models.PositiveIntegerField(default=1)
    drain_timeout_seconds = models.PositiveIntegerField(default=300)
    node_ready_timeout_seconds = models.PositiveIntegerField(default=600)
    health_gate = models.BooleanField(default=True)
    soak_seconds = models.PositiveIntegerField(default=0)
    window_start = models.DateTimeField(null=True, blank=True)
    window_end = models.DateTimeField(null=True, blank=True)
    window_weekly = models.BooleanField(default=False)
    quorum = models.PositiveIntegerField(default=1)
    state = models.CharField(max_length=10, choices=PlanState.choices, default=PlanState.DRAFT)
    revision = models.CharField(max_length=64, blank=True)
    preflight = models.JSONField(default=dict, blank=True)
    flight_plan = models.JSONField(default=list, blank=True)
    author = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return self.name


class Approval(models.Model):
    """One approver's decision on one revision of a plan. Voided when the plan changes."""

    plan = models.ForeignKey(UpgradePlan, on_delete=models.CASCADE, related_name="approvals")
    approver = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    approver_name = models.CharField(max_length=150)
    revision = models.CharField(max_length=64)
    decision = models.CharField(max_length=10, choices=Decision.choices)
    comment = models.TextField(blank=True)
    voided = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["created_at"]
        constraints = [models.UniqueConstraint(fields=["plan", "approver", "revision"], condition=Q(voided=False),
                                               name="one_decision_per_approver_per_revision")]

    def __str__(self) -> str:
        return f"{self.approver_name} {self.decision} {self.plan_id}@{self.revision[:8]}"


class Rollout(models.Model):
    """A plan being executed: a persisted state machine advanced one step at a time by Celery."""

    plan = models.ForeignKey(UpgradePlan, on_delete=models.PROTECT, related_name="rollouts")
    revision = models.CharField(max_length=64)
    state = models.CharField(max_length=10, choices=RolloutState.choices, default=RolloutState.RUNNING, db_index=True)
    reason = models.TextField(blank=True)
    waiting_for_window = models.BooleanField(default=False)
    pause_requested = models.BooleanField(default=False)
    outside_window_reason = models.TextField(blank=True)  # set when started outside the window: the window does not apply
    start_reason = models.TextField(blank=True)  # whatever reason the operator gave when starting
    started_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    started_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    soak_until = models.DateTimeField(null=True, blank=True)
    soak_wave = models.PositiveIntegerField(default=0)  # the wave whose soak has been scheduled
    last_tick_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        constraints = [models.UniqueConstraint(fields=["plan"], condition=Q(state__in=ACTIVE_ROLLOUT), name="one_active_rollout_per_plan")]

    def __str__(self) -> str:
        return f"rollout {self.pk} of {self.plan_id} ({self.state})"


class RolloutStep(models.Model):
    """One node's upgrade within a rollout. ``phase`` is recorded before acting (the intent)."""

    rollout = models.ForeignKey(Rollout, on_delete=models.CASCADE, related_name="steps")
    order = models.PositiveIntegerField()
    wave = models.PositiveIntegerField()
    cluster = models.ForeignKey("clusters.Cluster", on_delete=models.PROTECT, related_name="+")
    node = models.CharField(max_length=253)
    control_plane = models.BooleanField(default=False)
    phase = models.CharField(max_length=12, choices=StepPhase.choices, default=StepPhase.PENDING)
    phase_started_at = models.DateTimeField(null=True, blank=True)
    driver_called_at = models.DateTimeField(null=True, blank=True)
    # Whether the node was cordoned before pksweb cordoned it (seen once, before the cordon): such a node is
    # upgraded and left cordoned, as someone wanted it; None until seen.
    was_cordoned = models.BooleanField(null=True, blank=True)
    chain = models.PositiveIntegerField(default=0)  # numbers the step's live task chain; older chains stop
    last_tick_at = models.DateTimeField(null=True, blank=True)
    log = models.TextField(blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["rollout_id", "order"]
        constraints = [models.UniqueConstraint(fields=["rollout", "order"], name="step_order_once")]

    def __str__(self) -> str:
        return f"{self.node} ({self.phase})"
