"""The fleet's figures for ``/metrics``, read from the database at each scrape (``pksweb.metrics.collect_from``).

Per cluster (labelled by its name): its status (one series per status, 1 for the current one), its availability
over the last 24 hours (the share of known time its API answered, as the fleet page shows it), and its nodes
Ready and in all, as the last probe saw them. Of the health sweep: whether someone holds its lease, which host,
and how long until the lease expires. Three queries, whatever the number of clusters.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

from django.db.models import Q
from django.utils import timezone
from prometheus_client.core import GaugeMetricFamily, Metric

from clusters import health
from clusters.choices import ClusterStatus
from clusters.models import Cluster, HealthSpan
from clusters.sweep import SWEEP_LEASE
from pksweb.leases import lease_state

WINDOW = timedelta(days=1)


def fleet_figures() -> Iterator[Metric]:
    """Status, availability and nodes per cluster (archived clusters are not the fleet)."""
    now = timezone.now()
    status = GaugeMetricFamily("pksweb_cluster_status", "A cluster's status as the last probe saw it: 1 for the "
                               "current one of healthy, degraded, unreachable, unknown.", labels=["cluster", "status"])
    availability = GaugeMetricFamily("pksweb_cluster_availability_ratio", "Share of the last 24 h (known time only) "
                                     "in which the cluster's API answered (healthy or degraded).", labels=["cluster"])
    ready = GaugeMetricFamily("pksweb_cluster_nodes_ready", "Nodes Ready at the last probe.", labels=["cluster"])
    nodes = GaugeMetricFamily("pksweb_cluster_nodes", "Nodes at the last probe.", labels=["cluster"])
    clusters = list(Cluster.objects.order_by("name").values_list("pk", "name", "status", "nodes_ready", "nodes_total"))
    spans: dict[int, list[health.SpanLike]] = {}
    rows = (HealthSpan.objects.filter(cluster__archived_at__isnull=True)
            .filter(Q(ended_at__isnull=True) | Q(ended_at__gte=now - WINDOW))
            .order_by("started_at").values_list("cluster_id", "status", "started_at", "ended_at"))
    for cluster_id, span_status, started_at, ended_at in rows:
        spans.setdefault(cluster_id, []).append(health.SpanLike(span_status, started_at, ended_at))
    for pk, name, current, nodes_ready, nodes_total in clusters:
        for choice in ClusterStatus:
            status.add_metric([name, choice.value], 1.0 if current == choice.value else 0.0)
        percent = health.availability(spans.get(pk, []), now=now, window=WINDOW)
        if percent is not None:
            availability.add_metric([name], percent / 100)
        ready.add_metric([name], nodes_ready)
        nodes.add_metric([name], nodes_total)
    yield from (status, availability, ready, nodes)


def sweep_figures() -> Iterator[Metric]:
    """The health sweep's lease: held now or not, by which host, and seconds until it expires (negative: expired
    that long ago). The holder's host, not the whole holder: that names one sweep, and would be a new series each time."""
    held = GaugeMetricFamily("pksweb_sweep_lease_held", "1 while a process holds the health sweep's lease (the host "
                             "that took it last is named either way).", labels=["holder"])
    expires = GaugeMetricFamily("pksweb_sweep_lease_expires_in_seconds", "Seconds until the health sweep's lease "
                                "expires; negative once it has (a sweep that stopped renewing).")
    state = lease_state(name=SWEEP_LEASE)
    if state is not None:
        holder, expires_at = state
        left = (expires_at - timezone.now()).total_seconds()
        held.add_metric([holder.split(":", 1)[0]], 1.0 if left > 0 else 0.0)
        expires.add_metric([], left)
    yield from (held, expires)
