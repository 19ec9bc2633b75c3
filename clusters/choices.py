from django.db import models


class ClusterStatus(models.TextChoices):
    HEALTHY = "healthy", "Healthy"
    DEGRADED = "degraded", "Degraded"
    UNREACHABLE = "unreachable", "Unreachable"
    UNKNOWN = "unknown", "Unknown"


AVAILABLE_STATUSES = (ClusterStatus.HEALTHY, ClusterStatus.DEGRADED)


class OperationKind(models.TextChoices):
    CORDON = "cordon", "Cordon"
    UNCORDON = "uncordon", "Uncordon"
    DRAIN = "drain", "Drain"


class OperationState(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"


ACTIVE_STATES = (OperationState.QUEUED, OperationState.RUNNING)
