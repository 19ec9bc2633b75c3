"""The Celery application. Settings come from Django's settings (CELERY_*)."""

import os
from pathlib import Path
from typing import Any

from celery import Celery
from celery.signals import beat_init, worker_shutting_down

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pksweb.settings")

app = Celery("pksweb")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@beat_init.connect
def _schedule_folder(sender: Any = None, **kwargs: Any) -> None:
    """beat's schedule file lives in the data folder (settings.CELERY_BEAT_SCHEDULE_FILENAME): make the folder."""
    Path(app.conf.beat_schedule_filename).parent.mkdir(parents=True, exist_ok=True)


@worker_shutting_down.connect
def _hand_back_later(sender: Any = None, **kwargs: Any) -> None:
    """SIGTERM (a pod ending): running tasks get ``worker_soft_shutdown_timeout`` seconds, then long work hands
    itself back to the queue (pksweb/shutdown.py says why Celery's own soft shutdown is not enough here)."""
    from pksweb.shutdown import hand_back_after

    hand_back_after(float(app.conf.worker_soft_shutdown_timeout))
