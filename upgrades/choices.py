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


# A node's step is in one of these phases while nobody works on it (not started, or ended).
IDLE = (StepPhase.PENDING, StepPhase.DONE, StepPhase.FAILED)
# Phases in which pksweb has cordoned the node.
CORDONED = (StepPhase.DRAIN, StepPhase.UPGRADE, StepPhase.WAIT_READY, StepPhase.UNCORDON)
# After an abort these are uncordoned: a step in CORDON may have cordoned its node (the call reached
# the cluster though its answer did not reach pksweb); uncordoning one it did not is harmless.
MAY_BE_CORDONED = (StepPhase.CORDON, *CORDONED)
