"""The one publish path: stored first, pushed only after commit, to the right groups."""

from __future__ import annotations

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.core.exceptions import ValidationError
from django.db import transaction

from pksweb.choices import SubjectType
from pksweb.events import FLEET_GROUP, event_groups, publish, tenant_group
from pksweb.models import Event

pytestmark = pytest.mark.django_db


def _listen(group: str) -> str:
    layer = get_channel_layer()
    channel = async_to_sync(layer.new_channel)()
    async_to_sync(layer.group_add)(group, channel)
    return channel


def _pending(channel: str) -> list[dict]:
    layer = get_channel_layer()
    queue = layer.channels.get(channel)
    return [item[1] for item in list(queue._queue)] if queue else []


def test_publish_stores_the_event_and_pushes_after_commit(operator, django_capture_on_commit_callbacks):
    fleet = _listen(FLEET_GROUP)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        event = publish(kind="system.announcement", message="hello", actor=operator)
    assert Event.objects.get(pk=event.pk).actor_name == "op"
    assert _pending(fleet) == []  # nothing sent before the commit
    for callback in callbacks:
        callback()
    assert _pending(fleet) == [{"type": "event.message", "id": event.pk, "group": "fleet"}]


def test_rolled_back_change_sends_nothing_and_stores_nothing(django_capture_on_commit_callbacks):
    fleet = _listen(FLEET_GROUP)
    with django_capture_on_commit_callbacks(execute=True) as callbacks, pytest.raises(RuntimeError):
        with transaction.atomic():
            publish(kind="system.notice", message="never happened")
            raise RuntimeError("the change failed")
    assert callbacks == []
    assert not Event.objects.filter(message="never happened").exists()
    assert _pending(fleet) == []


def test_tenant_event_goes_to_fleet_and_tenant_groups_only(tenant, other_tenant, django_capture_on_commit_callbacks):
    own, other = _listen(tenant_group(tenant.pk)), _listen(tenant_group(other_tenant.pk))
    with django_capture_on_commit_callbacks(execute=True):
        event = publish(kind="tenant.notice", message="for acme", tenant=tenant)
    assert event_groups(event) == [FLEET_GROUP, tenant_group(tenant.pk)]
    assert [m["id"] for m in _pending(own)] == [event.pk]
    assert _pending(other) == []


def test_subject_group_for_clusters_and_rollouts(db):
    event = publish(kind="cluster.status_changed", message="degraded", subject_type=SubjectType.CLUSTER, subject_id=42)
    assert event_groups(event) == [FLEET_GROUP, "cluster.42"]


def test_invalid_event_is_refused_before_anything_is_stored(db):
    with pytest.raises(ValidationError) as exc:
        publish(kind="", message="x" * 501)
    assert set(exc.value.message_dict) == {"kind"}  # a kind is the code's own word: a bug, refused
    assert Event.objects.count() == 0


def test_text_from_outside_is_bounded_never_refused(db):
    """The words that explain a change come from clusters, commands and people: cut to fit, with a marker."""
    event = publish(kind="system.test", message="é" * 5000, subject_label="n" * 300, payload={"detail": "x" * 10_000})
    stored = Event.objects.get(pk=event.pk)
    assert len(stored.message) == 500 and stored.message.endswith("more characters cut]")
    assert len(stored.subject_label) == 200 and len(stored.payload["detail"]) <= 4000


def test_listeners_hear_committed_events_only_and_a_failing_one_stops_nothing(django_capture_on_commit_callbacks, monkeypatch):
    from pksweb import events

    heard: list[str] = []

    def broken(event):
        raise RuntimeError("a listener's bug")

    monkeypatch.setattr(events, "_listeners", [broken, lambda event: heard.append(event.kind)])
    fleet = _listen(FLEET_GROUP)
    with django_capture_on_commit_callbacks(execute=True), pytest.raises(RuntimeError):
        with transaction.atomic():
            publish(kind="system.rolled_back", message="never")
            raise RuntimeError("roll back")
    with django_capture_on_commit_callbacks(execute=True):
        event = publish(kind="system.kept", message="kept")
    assert heard == ["system.kept"]
    assert _pending(fleet) == [{"type": "event.message", "id": event.pk, "group": "fleet"}]
