"""Leases: every claim on work (the sweep, a rollout step, a node operation) is a row with an expiry.

A holder renews its lease while the work runs; a worker that dies stops renewing, so its claim
expires within one lease period and whoever looks next (a reaper, a dispatcher) may take the work
over. Every app claims work through this module, never through the ``Lease`` model.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db import IntegrityError, transaction
from django.utils import timezone

from pksweb.models import Lease


def lease_acquire(*, name: str, holder: str, seconds: float) -> bool:
    """Take the lease ``name`` for ``seconds`` unless someone else holds an unexpired one."""
    now = timezone.now()
    expires = now + timedelta(seconds=seconds)
    try:
        with transaction.atomic():
            lease = Lease.objects.select_for_update().filter(name=name).first()
            if lease is None:
                Lease.objects.create(name=name, holder=holder, expires_at=expires)
                return True
            if lease.holder != holder and lease.expires_at > now:
                return False
            lease.holder, lease.expires_at = holder, expires
            lease.save(update_fields=["holder", "expires_at"])
            return True
    except IntegrityError:
        return False  # someone created it between our read and our insert


def lease_renew(*, name: str, holder: str, seconds: float) -> bool:
    """Extend a lease ``holder`` still holds; False when it expired and someone else took it (stop the work)."""
    return bool(Lease.objects.filter(name=name, holder=holder).update(expires_at=timezone.now() + timedelta(seconds=seconds)))


def lease_release(*, name: str, holder: str) -> None:
    Lease.objects.filter(name=name, holder=holder).delete()


def lease_held(*, name: str) -> bool:
    """Whether someone holds an unexpired lease ``name``."""
    return Lease.objects.filter(name=name, expires_at__gt=timezone.now()).exists()


def lease_state(*, name: str) -> tuple[str, datetime] | None:
    """(holder, expiry) of the lease ``name`` as stored, expired or not; None when nobody took it (for figures)."""
    row = Lease.objects.filter(name=name).values_list("holder", "expires_at").first()
    return (row[0], row[1]) if row is not None else None


class LeaseLost(Exception):
    """The work's claim expired and someone else took it over: this worker must stop acting."""


class WorkerStopping(LeaseLost):
    """This process is ending (a pod's SIGTERM, past the worker's soft-shutdown time): the work stops where it is,
    releases its claim and is handed back to the queue (``pksweb.shutdown.handed_back``), so another worker goes
    on with it at once instead of one lease period after this process is killed."""


_stopping = threading.Event()


def hand_over_all() -> None:
    """From now on every ``Renewal.keep()`` in this process raises ``WorkerStopping`` (the worker is ending)."""
    _stopping.set()


def hand_over_reset() -> None:
    """Undo ``hand_over_all()`` (tests: the process goes on)."""
    _stopping.clear()


@dataclass
class Renewal:
    """Keeps a claim alive during long work (a sweep, a drain, a driver call).

    ``renew()`` extends the claim and answers whether it was still ours. ``keep()`` calls it at
    most once a quarter of ``seconds``, so the work may call ``keep()`` in every loop (a quarter:
    one cluster call, bounded by its timeouts, may run between two calls of ``keep()``). A worker that
    dies stops renewing, and its claim expires within one period: the reaper takes the work over.
    """

    renew: Callable[[], bool]
    seconds: float
    what: str = "this work"
    last: float = field(default_factory=time.monotonic)

    def keep(self) -> None:
        """Renew when due; raise ``LeaseLost`` when someone else took the work over, ``WorkerStopping`` (at once,
        whatever the period) when this process is ending."""
        if _stopping.is_set():
            raise WorkerStopping(f"{self.what} is handed back: this worker is shutting down")
        if time.monotonic() - self.last < self.seconds / 4:
            return
        self.last = time.monotonic()
        if not self.renew():
            raise LeaseLost(f"{self.what} was taken over by another worker after this one went quiet for "
                            f"more than {int(self.seconds)} s")

    @classmethod
    def of_lease(cls, *, name: str, holder: str, seconds: float, what: str = "") -> Renewal:
        return cls(lambda: lease_renew(name=name, holder=holder, seconds=seconds), seconds, what or name)
