"""The fleet's events: every change a page shows of a cluster is published from here, through ``pksweb.events``."""

from __future__ import annotations

from typing import Any

from clusters.models import Cluster
from pksweb.choices import SubjectType
from pksweb.events import publish
from pksweb.models import User
from pksweb.types import Actor, AnyUser


def recorded(user: AnyUser | None) -> Actor:
    """Who a row or an event records for ``user``: the person, or None for pksweb itself (anyone not signed in
    was refused by the policy before anything is recorded)."""
    return user if isinstance(user, User) else None


def cluster_publish(cluster: Cluster, kind: str, message: str, actor: AnyUser | None = None, **payload: Any) -> None:
    """Store and push (after commit) an event about ``cluster`` to the fleet and cluster pages."""
    publish(kind=kind, message=message, actor=actor, subject_type=SubjectType.CLUSTER, subject_id=cluster.pk,
            subject_label=cluster.name, payload=payload)
