from django.db import models


class Role(models.TextChoices):
    """What a person does in pksweb. Platform roles see the whole fleet."""

    OPERATOR = "operator", "Operator"
    APPROVER = "approver", "Approver"
    TENANT_ADMIN = "tenant-admin", "Tenant admin"
    VIEWER = "viewer", "Viewer"


PLATFORM_ROLES = frozenset({Role.OPERATOR, Role.APPROVER, Role.VIEWER})


class SubjectType(models.TextChoices):
    """What an event is about; also names the channel group that watches it."""

    SYSTEM = "system", "System"
    TENANT = "tenant", "Tenant"
    CLUSTER = "cluster", "Cluster"
    ROLLOUT = "rollout", "Rollout"
    PLAN = "plan", "Upgrade plan"
    USER = "user", "User"
