"""beat, safe to run twice: only the beat holding the ``pksweb.beat`` lease sends periodic tasks.

Two beats (a rolling update, a second replica, a beat left running beside a new one) would each send
every periodic task, doubling the health sweeps, pokes, reaps and seals. ``SingletonScheduler``
(``CELERY_BEAT_SCHEDULER``) is Celery's ``PersistentScheduler`` that sends due entries only while it holds a
lease (``pksweb/leases.py``, in the database every beat already reaches, in embedded mode too). The leader renews
it at every tick, ticking at least every quarter of ``PKSWEB_BEAT_LEASE_SECONDS``; a standby asks as often, so
when the leader dies (it stops renewing) a standby takes over within one lease period, and when it stops
cleanly it gives the lease up and a standby takes over at its next look.

A beat is known by its host name and an id kept beside its schedule file (``<schedule>.id``, made once): a beat
restarted in the same pod (or container) with the same data volume goes on leading at once, while a beat elsewhere
waits for the lease to lapse. Host name and path alone were not enough: containers on the host's network share the
host name, and every image's schedule is /data/celerybeat-schedule, so two such beats both led. A second beat
started on the same schedule file (one machine, one data folder) finds it locked and takes an id of its own.
"""

from __future__ import annotations

import fcntl
import logging
import secrets
import socket
from pathlib import Path
from typing import Any

from celery.beat import PersistentScheduler
from django.conf import settings
from django.db import DatabaseError, close_old_connections

from pksweb.leases import lease_acquire, lease_release

log = logging.getLogger(__name__)
LEASE = "pksweb.beat"


class SingletonScheduler(PersistentScheduler):
    """A ``PersistentScheduler`` that sends due entries only while it leads (holds the ``pksweb.beat`` lease)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.leading: bool | None = None  # None until the first look: the first answer is always logged
        # The schedule file is opened here, before beat_init fires: its folder (PKSWEB_DATA_DIR) must exist now.
        if kwargs.get("schedule_filename"):
            Path(kwargs["schedule_filename"]).parent.mkdir(parents=True, exist_ok=True)
        super().__init__(*args, **kwargs)
        # PersistentScheduler keeps its file's name (the stubs do not say so)
        self.holder = f"{socket.gethostname()}:{self._identity(str(getattr(self, 'schedule_filename', '') or ''))}"

    def _identity(self, schedule: str) -> str:
        """This beat's id: the one kept beside its schedule file, unless another live beat holds that file's lock
        (then a new one, for this process only)."""
        if not schedule:
            return secrets.token_hex(8)
        self._lock = open(f"{schedule}.lock", "a")  # held while this process lives; the kernel drops it at exit
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return secrets.token_hex(8)
        kept = Path(f"{schedule}.id")
        if not kept.is_file() or not kept.read_text().strip():
            kept.write_text(secrets.token_hex(8))
        return kept.read_text().strip()

    @property
    def lease_seconds(self) -> float:
        return float(settings.PKSWEB_BEAT_LEASE_SECONDS)

    def tick(self, *args: Any, **kwargs: Any) -> float:
        """Send what is due if this beat leads; either way, look again within a quarter of the lease."""
        every = self.lease_seconds / 4
        if not self._lead():
            return every
        return min(super().tick(*args, **kwargs), every)

    def _lead(self) -> bool:
        """Take or renew the lease; whether this beat leads now. A database it cannot reach: it does not lead."""
        try:
            close_old_connections()
            leading = lease_acquire(name=LEASE, holder=self.holder, seconds=self.lease_seconds)
        except DatabaseError as exc:
            log.warning("beat %s cannot reach the database to hold its lease, so it sends nothing: %s", self.holder, exc)
            leading = False
        if leading != self.leading:
            if leading:
                log.info("beat %s leads: it sends the periodic tasks", self.holder)
            else:
                log.info("beat %s stands by: another beat leads; it takes over within %.0f s of that one stopping",
                         self.holder, self.lease_seconds)
            self.leading = leading
        return leading

    def close(self) -> None:
        """Stopping: give the lease up, so a standby takes over at its next look instead of a lease period later."""
        if self.leading:
            try:
                close_old_connections()
                lease_release(name=LEASE, holder=self.holder)
            except DatabaseError as exc:
                log.warning("beat %s could not give its lease up (a standby takes over when it lapses): %s", self.holder, exc)
            self.leading = False
        super().close()
