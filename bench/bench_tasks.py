"""A task the live benchmark has a real Celery worker run: events through pksweb's one publish path."""

from __future__ import annotations

import time

from celery import shared_task


@shared_task(name="bench.publish_paced", ignore_result=True, time_limit=600)
def publish_paced(*, count: int, rate: float, subjects: list[int], tag: str) -> None:
    """Publish ``count`` events at ``rate`` per second, cycling over cluster-subject ids, each in its own transaction."""
    from django.db import transaction

    from pksweb.events import publish

    began = time.monotonic()
    for i in range(count):
        wait = began + i / rate - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        with transaction.atomic():
            publish(kind="cluster.status_changed", message=f"{tag} {i}", subject_type="cluster",
                    subject_id=subjects[i % len(subjects)], payload={"bench": tag, "i": i})
