"""Celery tasks of the fleet: thin, they take ids and call services."""

from __future__ import annotations

from celery import shared_task

from clusters import services
from clusters.models import Cluster


@shared_task(name="clusters.tasks.health_sweep", ignore_result=True, time_limit=600, soft_time_limit=590)
def health_sweep() -> dict:
    """Probe every cluster (beat, every PKSWEB_HEALTH_INTERVAL seconds); one sweep at a time."""
    report = services.fleet_sweep()
    return {"probed": report.probed, "seconds": round(report.seconds, 2), "skipped": report.skipped}


@shared_task(name="clusters.tasks.probe_cluster", ignore_result=True, time_limit=120, soft_time_limit=110)
def probe_cluster(cluster_id: int) -> None:
    """Probe one cluster now (after registration, or when asked)."""
    cluster = Cluster.objects.filter(pk=cluster_id).first()
    if cluster is not None:
        services.cluster_probe(cluster=cluster)


@shared_task(name="clusters.tasks.node_operation_run", ignore_result=True, acks_late=True, time_limit=90000,
             soft_time_limit=89900)
def node_operation_run(operation_id: int) -> None:
    """Run a queued cordon/uncordon/drain. Safe twice: the service claims the row or returns."""
    services.node_operation_execute(operation_id=operation_id)


@shared_task(name="clusters.tasks.operations_reap", ignore_result=True, time_limit=60, soft_time_limit=55)
def operations_reap() -> dict:
    """Beat: take over node operations whose worker died, queue again those whose task was lost."""
    return services.node_operations_reap()
