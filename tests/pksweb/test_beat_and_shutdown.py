"""beat safe to run twice, and a stopping worker handing its work back, in process (the scale-out integration test
shows both with real processes: tests/integration/test_scale_out.py)."""

from __future__ import annotations

from datetime import timedelta
from types import SimpleNamespace

import pytest
from celery.exceptions import Reject
from django.utils import timezone

from pksweb.beat import LEASE, SingletonScheduler
from pksweb.celery import app
from pksweb.leases import Renewal, WorkerStopping, hand_over_all, hand_over_reset
from pksweb.models import Lease
from pksweb.shutdown import handed_back

pytestmark = pytest.mark.django_db


class Counting(SingletonScheduler):
    """The real scheduler; what it would send to the broker is counted instead."""

    def __init__(self, *args, **kwargs) -> None:
        self.sent: list[str] = []
        super().__init__(*args, **kwargs)

    def apply_entry(self, entry, producer=None) -> None:
        self.sent.append(entry.name)


def scheduler(path) -> Counting:
    return Counting(app=app, schedule_filename=str(path), lazy=False)


def test_only_the_beat_holding_the_lease_sends_and_the_standby_takes_over(tmp_path, settings):
    settings.PKSWEB_BEAT_LEASE_SECONDS = 30
    first, second = scheduler(tmp_path / "one"), scheduler(tmp_path / "two")
    try:
        for beat in (first, second):  # every entry is due: they last ran long ago
            for entry in beat.schedule.values():
                entry.last_run_at = timezone.now() - timedelta(days=1)
        for _ in range(20):
            assert first.tick() <= 30 / 4 and second.tick() <= 30 / 4  # both look again within a quarter lease
        assert first.leading and not second.leading
        assert set(app.conf.beat_schedule) <= set(first.sent) and second.sent == []
        assert Lease.objects.get(name=LEASE).holder == first.holder

        first.close()  # stopping cleanly gives the lease up: the standby leads at its next look
        second.tick()
        assert second.leading and second.sent
    finally:
        second.close()
    assert not Lease.objects.filter(name=LEASE).exists()


def test_a_dead_leaders_lease_lapses_and_the_standby_takes_over(tmp_path, settings):
    settings.PKSWEB_BEAT_LEASE_SECONDS = 30
    first, second = scheduler(tmp_path / "one"), scheduler(tmp_path / "two")
    try:
        first.tick()
        second.tick()
        assert not second.leading
        Lease.objects.filter(name=LEASE).update(expires_at=timezone.now() - timedelta(seconds=1))  # first died
        second.tick()
        assert second.leading
        first.tick()
        assert not first.leading, "a beat that comes back after its lease lapsed stands by"
    finally:
        first.close()
        second.close()


def test_a_stopping_worker_makes_every_claim_raise_at_once_and_the_task_hands_its_message_back():
    renewal = Renewal(lambda: True, seconds=60, what="Node n1's step")
    renewal.keep()
    hand_over_all()
    try:
        with pytest.raises(WorkerStopping, match="handed back"):
            renewal.keep()  # at once, not a quarter lease later
        with pytest.raises(Reject) as rejected, handed_back():
            renewal.keep()
        assert rejected.value.requeue is True
    finally:
        hand_over_reset()
    renewal.keep()


def test_twin_beats_on_one_host_and_one_schedule_path_are_two_beats(tmp_path):
    """Containers on the host's network share the host name and every image's schedule path: both used to lead.
    A beat keeps its id beside its schedule (a restart in the same pod is the same beat); a second live beat on
    the same schedule file is another beat."""
    first = scheduler(tmp_path / "celerybeat-schedule")
    try:
        other = SimpleNamespace()  # a second beat's identity, taken while the first holds the file
        twin = SingletonScheduler._identity(other, str(tmp_path / "celerybeat-schedule"))  # type: ignore[arg-type]
        assert f"{first.holder.split(':')[0]}:{twin}" != first.holder
    finally:
        first.close()
        first._lock.close()  # the first beat's process ends
    again = scheduler(tmp_path / "celerybeat-schedule")  # the same beat started again (its lock died with it)
    try:
        assert again.holder == first.holder
    finally:
        again.close()
    elsewhere = scheduler(tmp_path / "volume-2" / "celerybeat-schedule")  # another container's /data
    try:
        assert elsewhere.holder != first.holder
    finally:
        elsewhere.close()
