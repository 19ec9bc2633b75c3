"""The embedded mode's Celery: a worker and beat in threads of the server process.

With the in-memory broker (``memory://``) a separate worker process could not
see the queue, so the server runs one itself: a solo-pool worker thread (tasks run
one at a time, like a single worker process) and beat in another thread. Tasks
queued by views, and events those tasks publish, stay inside this process, where
``EmbeddedChannelLayer`` delivers them to open pages.
"""

from __future__ import annotations

import logging
import threading

from celery.beat import EmbeddedService
from django.conf import settings

from pksweb.celery import app

log = logging.getLogger(__name__)


def start_embedded_celery() -> None:
    """Start the worker and beat threads (daemon threads: they end with the server)."""
    worker = app.WorkController(
        app=app,
        hostname="embedded@pksweb",
        pool="solo",
        concurrency=1,
        loglevel="INFO",
        without_heartbeat=True,
        without_mingle=True,
        without_gossip=True,
        queues=[settings.CELERY_TASK_DEFAULT_QUEUE],
    )
    threading.Thread(target=worker.start, name="celery-worker", daemon=True).start()
    beat = EmbeddedService(app, thread=True, schedule_filename=str(settings.DATA_DIR / "celerybeat-schedule"))
    beat.start()
    log.info("embedded Celery worker and beat started (in-memory broker)")
