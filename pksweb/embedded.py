"""The embedded mode's Celery: a worker and beat in threads of the server process.

With the in-memory broker (``memory://``) a separate worker process could not
see the queue, so the server runs one itself: a worker with a small thread pool (a drain
waiting minutes on a PodDisruptionBudget must not hold up the health sweep or other
operations) and beat in another thread. Tasks
queued by views, and events those tasks publish, stay inside this process, where
``EmbeddedChannelLayer`` delivers them to open pages.
"""

from __future__ import annotations

import logging
import threading
from typing import Any, cast

from celery.beat import EmbeddedService
from django.conf import settings

from pksweb.celery import app

log = logging.getLogger(__name__)


def worker_pool() -> dict[str, Any]:
    """How the embedded worker runs tasks: side by side in a few threads, so one long task (a drain waiting on a
    budget, a driver command) never holds up the health sweep or the other operations."""
    return {"pool": "threads", "concurrency": settings.PKSWEB_EMBEDDED_WORKER_THREADS}


def start_embedded_celery() -> None:
    """Start the worker and beat threads (daemon threads: they end with the server)."""
    worker = app.WorkController(
        app=app,
        hostname="embedded@pksweb",
        **worker_pool(),
        loglevel="INFO",
        without_heartbeat=True,
        without_mingle=True,
        without_gossip=True,
        queues=[settings.CELERY_TASK_DEFAULT_QUEUE],
    )
    threading.Thread(target=worker.start, name="celery-worker", daemon=True).start()
    # thread=True makes it a thread (the stubs answer "a thread or a process").
    beat = cast(threading.Thread, EmbeddedService(app, thread=True, schedule_filename=str(settings.DATA_DIR / "celerybeat-schedule"),
                                                  scheduler_cls=settings.CELERY_BEAT_SCHEDULER))
    beat.start()
    log.info("embedded Celery worker and beat started (in-memory broker)")
