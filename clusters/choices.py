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


class UpgradeDriver(models.TextChoices):
    """How a drained node is turned into the new version (the rollout engine's drivers, upgrades/drivers.py)."""

    NONE = "", "not configured"
    SANDBOX = "sandbox", "sandbox (simulated node replacement)"
    COMMAND = "command", "command (operator-configured)"
    SYSTEM_UPGRADE_CONTROLLER = "system-upgrade-controller", "system-upgrade-controller (k3s/RKE2)"
