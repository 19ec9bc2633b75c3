from django.db import models


class PlanState(models.TextChoices):
    DRAFT = "draft", "Draft"
    SUBMITTED = "submitted", "Submitted for approval"
    APPROVED = "approved", "Approved"
    STARTED = "started", "Started"


class Decision(models.TextChoices):
    APPROVE = "approve", "Approved"
    REJECT = "reject", "Rejected"


class RolloutState(models.TextChoices):
    RUNNING = "running", "Running"
    PAUSED = "paused", "Paused"
    HALTED = "halted", "Halted"
    SUCCEEDED = "succeeded", "Succeeded"
    ABORTED = "aborted", "Aborted"


ACTIVE_ROLLOUT = (RolloutState.RUNNING, RolloutState.PAUSED)


class StepPhase(models.TextChoices):
    PENDING = "pending", "Pending"
    CORDON = "cordon", "Cordoning"
    DRAIN = "drain", "Draining"
    UPGRADE = "upgrade", "Upgrading"
    WAIT_READY = "wait_ready", "Waiting for Ready"
    UNCORDON = "uncordon", "Uncordoning"
    GATE = "gate", "Health gate"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"
