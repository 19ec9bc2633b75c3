"""What a person can be told, and what became of each message."""

from django.db import models


class NotifyKind(models.TextChoices):
    """The kinds a person subscribes to (notifications/fanout.py says who receives each)."""

    PLAN_AWAITING = "plan_awaiting", "A plan waits for approval (approvers)"
    PLAN_APPROVED = "plan_approved", "My plan was approved (its author)"
    PLAN_REJECTED = "plan_rejected", "My plan was rejected (its author)"
    ROLLOUT_STARTED = "rollout_started", "A rollout started (operators)"
    ROLLOUT_HALTED = "rollout_halted", "A rollout halted (operators)"
    ROLLOUT_FINISHED = "rollout_finished", "A rollout finished (operators)"
    CLUSTER_UNREACHABLE = "cluster_unreachable", "A cluster became unreachable (operators, admins of tenants on it)"
    CLUSTER_RECOVERED = "cluster_recovered", "A cluster recovered (operators, admins of tenants on it)"
    NAMESPACE_DRIFTED = "namespace_drifted", "A namespace of my tenant drifted (its admins)"


class DeliveryState(models.TextChoices):
    QUEUED = "queued", "Queued"
    RETRYING = "retrying", "Retrying"
    SENT = "sent", "Sent"
    FAILED = "failed", "Failed"
    SUPPRESSED = "suppressed", "Suppressed (debounced)"


WAITING_STATES = (DeliveryState.QUEUED, DeliveryState.RETRYING)
