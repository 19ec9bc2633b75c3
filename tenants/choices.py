from django.db import models


class MemberRole(models.TextChoices):
    ADMIN = "admin", "Admin"
    VIEWER = "viewer", "Viewer"


class Isolation(models.TextChoices):
    SHARED = "shared", "Shared nodes"
    DEDICATED_NODES = "dedicated-nodes", "Dedicated nodes"
    DEDICATED_CLUSTER = "dedicated-cluster", "Dedicated cluster"


class PodSecurity(models.TextChoices):
    PRIVILEGED = "privileged", "privileged"
    BASELINE = "baseline", "baseline"
    RESTRICTED = "restricted", "restricted"


class SyncState(models.TextChoices):
    PENDING = "pending", "Pending"
    IN_SYNC = "in_sync", "In sync"
    DRIFTED = "drifted", "Drifted"
    FAILED = "failed", "Failed"


class Reach(models.TextChoices):
    """How much of a namespace's pods another namespace's pods may reach (tenants.netpol)."""

    ALL = "all", "all"
    SOME = "some", "some"
    NONE = "none", "none"
