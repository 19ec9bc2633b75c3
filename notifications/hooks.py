"""The one thing the core hears from notifications: after an event commits, a fan-out is queued.

The queueing itself happens on a thread of its own (``_Sender``): the hook only puts the subject on an in-process
queue and returns, so publishing an event never waits on the broker, even when Redis is slow or down. A subject
whose task was lost that way (a process killed in between) is picked up by the sweep beat runs every minute
(``notifications.tasks.notify_sweep``).
"""

from __future__ import annotations

import atexit
import logging
import queue
import threading

from notifications.fanout import EVENT_KINDS
from notifications.tasks import notify_subject
from pksweb.models import Event

log = logging.getLogger(__name__)


class _Sender:
    def __init__(self) -> None:
        self.queue: queue.SimpleQueue[tuple[str, str]] = queue.SimpleQueue()
        self.lock = threading.Lock()
        self.thread: threading.Thread | None = None

    def put(self, subject: tuple[str, str]) -> None:
        self.queue.put(subject)
        with self.lock:
            if self.thread is None or not self.thread.is_alive():
                self.thread = threading.Thread(target=self.run, name="notify-queue", daemon=True)
                self.thread.start()

    def run(self) -> None:
        while True:
            self.send(self.queue.get())

    def send(self, subject: tuple[str, str]) -> None:
        try:
            notify_subject.delay(*subject)
        except Exception:
            log.exception("could not queue notifications for %s %s; the minute's sweep will", *subject)

    def flush(self) -> None:
        """At exit (a management command that published), queue what is left instead of losing it with the thread."""
        while True:
            try:
                self.send(self.queue.get_nowait())
            except queue.Empty:
                return


_sender = _Sender()
atexit.register(_sender.flush)


def event_committed(event: Event) -> None:
    """Queue the fan-out of a committed event that may notify someone; return at once."""
    if event.kind in EVENT_KINDS:
        _sender.put((event.subject_type, event.subject_id))
