"""Celery tasks of the pksweb core: thin, they load ids and call a service."""

from __future__ import annotations

from celery import shared_task

from pksweb import audit, services
from pksweb.models import User
from pksweb.tenancy import tenant_model


@shared_task(name="pksweb.tasks.worker_heartbeat", ignore_result=True, time_limit=30, soft_time_limit=25)
def worker_heartbeat() -> None:
    """Record that a worker ran a beat-scheduled task (shown on the activity page)."""
    hostname = getattr(worker_heartbeat.request, "hostname", None) or "worker"
    services.worker_heartbeat_record(worker=hostname)


@shared_task(name="pksweb.tasks.announce", ignore_result=True, time_limit=30, soft_time_limit=25)
def announce(*, author_id: int, message: str, tenant_id: int | None = None) -> int:
    """Post an announcement on behalf of a user, from a worker (scripts, integration tests)."""
    author = User.objects.get(pk=author_id)
    tenant = tenant_model()._default_manager.get(pk=tenant_id) if tenant_id is not None else None
    return services.announcement_post(author=author, message=message, tenant=tenant).pk


@shared_task(name="pksweb.tasks.audit_seal", ignore_result=True, time_limit=120, soft_time_limit=110)
def audit_seal() -> int:
    """Beat: seal settled events onto the audit hash chain."""
    return audit.audit_seal()
