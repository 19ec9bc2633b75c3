"""Celery tasks of the fleet's health: thin, they take ids and call services.

The node operations' tasks sit beside the services that queue them, in ``clusters.operations``.
"""

from __future__ import annotations

from celery import shared_task

from clusters import sweep
from clusters.models import Cluster


@shared_task(name="clusters.tasks.health_sweep", ignore_result=True, time_limit=600, soft_time_limit=590)
def health_sweep() -> dict[str, object]:
    """Probe every cluster (beat, every PKSWEB_HEALTH_INTERVAL seconds); one sweep at a time."""
    report = sweep.fleet_sweep()
    return {"probed": report.probed, "seconds": round(report.seconds, 2), "skipped": report.skipped}


@shared_task(name="clusters.tasks.probe_cluster", ignore_result=True, time_limit=120, soft_time_limit=110)
def probe_cluster(cluster_id: int) -> None:
    """Probe one cluster now (after registration, or when asked)."""
    cluster = Cluster.objects.filter(pk=cluster_id).first()
    if cluster is not None:
        sweep.cluster_probe(cluster=cluster)
