"""Reads of the fleet for a person, scoped by the policy, with constant query counts."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from django.db.models import Count, Prefetch, Q, QuerySet
from django.utils import timezone

from clusters import health, hooks
from clusters.choices import ClusterStatus
from clusters.hooks import NodeOwner
from clusters.models import Cluster, ClusterNode, HealthSpan, NodeOperation
from pksweb import policy
from pksweb.models import Event
from pksweb.types import AnyUser

DAY = timedelta(days=1)
WEEK = timedelta(days=7)


def cluster_scope(*, user: AnyUser) -> QuerySet[Cluster]:
    """Clusters ``user`` may see, nothing prefetched (for counts and lean rows)."""
    return policy.restrict(user, Cluster.objects.all())


def cluster_list(*, user: AnyUser, window: timedelta = DAY) -> QuerySet[Cluster]:
    """Clusters ``user`` may see, with the health spans of the last ``window`` prefetched."""
    since = timezone.now() - window
    spans = HealthSpan.objects.filter(Q(ended_at__isnull=True) | Q(ended_at__gte=since)).only(
        "cluster_id", "status", "started_at", "ended_at").order_by("started_at")
    fields = ("name", "status", "reasons", "version", "nodes_ready", "nodes_total", "last_probe_at", "server", "context",
              "warnings", "last_probe_ms", "status_since", "created_at")
    return policy.restrict(user, Cluster.objects.only(*fields).prefetch_related(Prefetch("spans", queryset=spans)))


def fleet_counts(queryset: QuerySet[Cluster]) -> dict[str, int]:
    """How many clusters are in each status (one query)."""
    rows = queryset.order_by().values("status").annotate(n=Count("id"))
    counts = {s.value: 0 for s in ClusterStatus}
    for row in rows:
        counts[row["status"]] = row["n"]
    counts["total"] = sum(counts[s.value] for s in ClusterStatus)
    return counts


@dataclass
class ClusterHealthView:
    availability_day: float | None
    availability_week: float | None
    timeline_day: str
    timeline_week: str


def cluster_health_view(cluster: Cluster, spans: list[HealthSpan] | None = None, *, week: bool = True) -> ClusterHealthView:
    """Availability and timelines over 24 h (and 7 d unless ``week`` is off, as on the fleet page)."""
    now = timezone.now()
    spans = spans if spans is not None else list(cluster.spans.all())
    return ClusterHealthView(
        availability_day=health.availability(spans, now=now, window=DAY),
        availability_week=health.availability(spans, now=now, window=WEEK) if week else None,
        timeline_day=health.timeline_svg(spans, now=now, window=DAY),
        timeline_week=health.timeline_svg(spans, now=now, window=WEEK) if week else "",
    )


def cluster_get(*, user: AnyUser, pk: int) -> Cluster | None:
    """One cluster with a week of spans, if ``user`` may see it."""
    return cluster_list(user=user, window=WEEK).filter(pk=pk).first()


def cluster_nodes(*, cluster: Cluster) -> list[ClusterNode]:
    """Nodes as of the last probe."""
    return list(ClusterNode.objects.filter(cluster=cluster).order_by("name"))


@dataclass(frozen=True)
class NodeRow:
    """A node as the cluster page shows it: what the last probe saw, and the tenant it is dedicated to, if any."""

    node: ClusterNode
    owner: NodeOwner | None = None


def cluster_node_rows(*, cluster: Cluster) -> list[NodeRow]:
    """The cluster page's nodes as of the last probe, each with its owner (see ``clusters.hooks.on_node_owners``)."""
    nodes = cluster_nodes(cluster=cluster)
    owners = hooks.node_owners(cluster, nodes)
    return [NodeRow(node, owners.get(node.name)) for node in nodes]


def cluster_operations(*, user: AnyUser, cluster: Cluster, limit: int = 20) -> list[NodeOperation]:
    return list(policy.restrict(user, NodeOperation.objects.filter(cluster=cluster))[:limit])


def operation_get(*, user: AnyUser, pk: int) -> NodeOperation | None:
    return policy.restrict(user, NodeOperation.objects.select_related("cluster")).filter(pk=pk).first()


def cluster_events(*, user: AnyUser, cluster: Cluster, limit: int = 30) -> list[Event]:
    events = policy.restrict(user, Event.objects.select_related("tenant"))
    return list(events.filter(subject_type="cluster", subject_id=str(cluster.pk))[:limit])


def cluster_spans(*, cluster: Cluster, window: timedelta = WEEK) -> list[HealthSpan]:
    since = timezone.now() - window
    return list(cluster.spans.filter(Q(ended_at__isnull=True) | Q(ended_at__gte=since)).order_by("started_at"))
