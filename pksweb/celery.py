"""The Celery application. Settings come from Django's settings (CELERY_*)."""

import logging.config
import os
from pathlib import Path
from typing import Any

from celery import Celery
from celery.signals import beat_init, setup_logging, worker_ready, worker_shutting_down
from django.conf import settings

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pksweb.settings")

app = Celery("pksweb")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

import pksweb.metrics  # noqa: E402, F401  -- its Celery signals: task figures, and the worker's metrics port


@beat_init.connect
def _schedule_folder(sender: Any = None, **kwargs: Any) -> None:
    """beat's schedule file lives in the data folder (settings.CELERY_BEAT_SCHEDULE_FILENAME): make the folder."""
    Path(app.conf.beat_schedule_filename).parent.mkdir(parents=True, exist_ok=True)


@setup_logging.connect
def _logging(**kwargs: Any) -> None:
    """Workers and beat log as the web does (settings.LOGGING: JSON lines in production, with the task's name and id),
    instead of Celery's own format on a hijacked root logger. The level is PKSWEB_LOG_LEVEL's."""
    logging.config.dictConfig(settings.LOGGING)


@worker_ready.connect
def _quiet_warm_shutdown(sender: Any = None, **kwargs: Any) -> None:
    """In JSON mode, SIGTERM's "worker: Warm shutdown (MainProcess)" (which Celery writes straight to stdout's file
    descriptor, past logging and whatever ``--quiet`` says) is left out: the pod's every line stays JSON, and the
    shutdown is logged as JSON anyway (``_hand_back_later`` below). Celery's handler is installed again, as it
    installed it, without its message; Ctrl+C's and SIGQUIT's (a person at a console) keep theirs."""
    worker = getattr(sender, "controller", None)
    if settings.LOG_FORMAT == "json" and worker is not None:
        from celery.apps.worker import install_worker_term_handler  # type: ignore[attr-defined]  # not in the stubs

        install_worker_term_handler(worker, verbose=False)


@worker_shutting_down.connect
def _hand_back_later(sender: Any = None, **kwargs: Any) -> None:
    """SIGTERM (a pod ending): running tasks get ``worker_soft_shutdown_timeout`` seconds, then long work hands
    itself back to the queue (pksweb/shutdown.py says why Celery's own soft shutdown is not enough here)."""
    from pksweb.shutdown import hand_back_after

    hand_back_after(float(app.conf.worker_soft_shutdown_timeout))
