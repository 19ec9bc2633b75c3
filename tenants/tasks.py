"""Celery tasks of tenancy: thin, they take ids and call services."""

from __future__ import annotations

from celery import shared_task

from tenants import reconciler


@shared_task(name="tenants.tasks.namespace_reconcile", ignore_result=True, acks_late=True, time_limit=300, soft_time_limit=290,
             autoretry_for=(), max_retries=0)
def namespace_reconcile_task(namespace_id: int) -> None:
    """Apply a namespace's desired bundle (idempotent: safe to run twice)."""
    reconciler.namespace_reconcile(namespace_id=namespace_id)


@shared_task(name="tenants.tasks.drift_scan", ignore_result=True, time_limit=1800, soft_time_limit=1790)
def drift_scan() -> dict[str, int]:
    """Compare every namespace with its bundle (beat-scheduled)."""
    return reconciler.drift_scan()
