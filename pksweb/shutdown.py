"""A worker told to stop (a pod's SIGTERM) gives its running tasks a while to finish, then hands the rest back.

Celery's own soft shutdown (``worker_soft_shutdown_timeout``) runs only on a cold shutdown (SIGQUIT, or SIGTERM
with ``REMAP_SIGTERM=SIGQUIT``), and its last step, cancelling what still runs, fails on the threads pool (threads
cannot be killed: ``kill_job`` is not implemented). So pksweb keeps Celery's warm shutdown on SIGTERM (no new
task is taken; what runs may finish and is acknowledged) and adds the bound: ``worker_soft_shutdown_timeout``
seconds after the signal, every claim's next ``keep()`` raises ``WorkerStopping``; the long work stops, releases its
lease, and its task, run under ``handed_back()``, rejects its message with requeue, so Redis gives it to another
worker at once. Messages the worker had taken but not started (countdowns) go back when its connection closes
(late acknowledgement). Every task is safe twice, so a task handed back and run again repeats nothing.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from celery.exceptions import Reject

from pksweb.leases import WorkerStopping, hand_over_all

log = logging.getLogger(__name__)


def hand_back_after(seconds: float) -> threading.Timer:
    """Called when the worker starts shutting down: ``seconds`` later, long work hands itself back."""
    log.warning("worker shutting down: running tasks have %.0f s to finish, then long work is handed back to the queue",
                seconds)
    timer = threading.Timer(seconds, hand_over_all)
    timer.daemon = True
    timer.start()
    return timer


def hand_back(exc: WorkerStopping) -> Reject:
    """What a task whose work stopped with ``WorkerStopping`` raises (the task must acknowledge late): its message
    is rejected with requeue, which puts it back at the head of the queue for another worker."""
    log.warning("%s", exc)
    return Reject(str(exc), requeue=True)


@contextmanager
def handed_back() -> Iterator[None]:
    """Around a task's body: work stopped by ``WorkerStopping`` hands the task's message back (``hand_back``)."""
    try:
        yield
    except WorkerStopping as exc:
        raise hand_back(exc) from None
