"""Channel names and URLs, subscriptions, and event sequences as people and clusters send them (generated): forms
and the API answer in words, never a 500; the debounce holds for any sequence."""

from __future__ import annotations

from datetime import timedelta
from unittest import mock

import pytest
from django.db import transaction
from django.test import Client
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from notifications.choices import DeliveryState, NotifyKind
from notifications.crypto import url_hint
from notifications.models import Channel, Delivery, Fanout, Gate
from pksweb.models import Event
from tests.support.clients import api_for

pytestmark = pytest.mark.django_db
CHECKS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
names = st.one_of(st.text(max_size=120), st.sampled_from(["", " ", "ops", "a" * 100, "a" * 101, "x\x00y", "ü" * 50]))
urls = st.one_of(st.text(max_size=300), st.sampled_from([
    "", "json://127.0.0.1:9/hook", "jsons://hooks.example/x", "slack://T1/B2/C3", "mailto://u:p@example.com",
    "msteams://a/b/c", "nonsense://x", "json://", "http://example.com", "json://[::1", "json://h/\n", "x" * 2001,
    "json://" + "h" * 3000]))


@CHECKS
@given(name=names, url=urls)
def test_the_channel_form_answers_in_words(operator, name, url):
    client = Client()
    client.force_login(operator)
    response = client.post("/notifications/channels/", {"name": name, "url": url})
    assert response.status_code in (302, 400)
    if response.status_code == 400:
        assert b'class="errorlist' in response.content
    Channel.objects.all().delete()


@CHECKS
@given(name=names, url=urls, tenant=st.one_of(st.none(), st.integers(min_value=-(2**70), max_value=2**70), st.text(max_size=5)))
def test_the_channel_api_answers_in_words_and_never_shows_the_url(operator, name, url, tenant):
    response = api_for(operator).post("/api/notification-channels/", {"name": name, "url": url, "tenant": tenant}, format="json")
    assert response.status_code in (201, 400), response.content
    body = response.json()
    if response.status_code == 201:
        assert "url" not in body and body["hint"] == url_hint(url.strip())  # scheme and host, no token, path or password
        assert url.strip() not in Channel.objects.get(pk=body["id"]).sealed_url
    else:
        assert body and all(isinstance(v, (list, str, dict)) for v in body.values())
    Channel.objects.all().delete()


@CHECKS
@given(items=st.lists(st.fixed_dictionaries({"kind": st.one_of(st.sampled_from(list(NotifyKind.values)), st.text(max_size=20)),
                                             "channel": st.one_of(st.integers(min_value=-5, max_value=2**70), st.text(max_size=5))}),
                      max_size=5))
def test_subscriptions_through_the_api_answer_in_words(tenant_admin, tenant, operator, items):
    from notifications.services import channel_create

    mine = Channel.objects.filter(name="acme").first() or channel_create(name="acme", url="json://127.0.0.1:9/a", tenant=tenant,
                                                                        created_by=operator)
    response = api_for(tenant_admin).put("/api/me/notifications/", {"subscriptions": items}, format="json")
    assert response.status_code in (200, 400), response.content
    if response.status_code == 200:
        allowed = {NotifyKind.CLUSTER_UNREACHABLE, NotifyKind.CLUSTER_RECOVERED, NotifyKind.NAMESPACE_DRIFTED}
        assert all(s["kind"] in allowed and s["channel"] == mine.pk for s in response.json()["subscriptions"])


@CHECKS
@given(flaps=st.lists(st.tuples(st.booleans(), st.floats(min_value=0, max_value=400)), min_size=1, max_size=25))
def test_at_most_one_message_per_subject_and_kind_per_debounce(flaps, cluster, operator, subscribe):
    """Any sequence of status changes, any gaps: messages of one kind are at least the debounce apart, and a kind
    that appears after a quiet debounce is always sent."""
    from notifications.fanout import event_fanout
    from notifications.services import channel_create
    from pksweb.events import publish

    Delivery.objects.all().delete(), Gate.objects.all().delete(), Fanout.objects.all().delete(), Event.objects.all().delete()
    ops = Channel.objects.filter(name="ops").first() or channel_create(name="ops", url="json://127.0.0.1:9/", created_by=operator)
    subscribe(operator, NotifyKind.CLUSTER_UNREACHABLE, ops) if not ops.subscriptions.exists() else None
    subscribe(operator, NotifyKind.CLUSTER_RECOVERED, ops) if ops.subscriptions.count() < 2 else None
    clock, last_sent, sent_at = timezone.now(), {}, []
    for down, gap in flaps:
        clock += timedelta(seconds=gap)
        old, new = ("healthy", "unreachable") if down else ("unreachable", "healthy")
        with transaction.atomic():
            event = publish(kind="cluster.status_changed", message=new, subject_type="cluster", subject_id=cluster.pk,
                            payload={"old": old, "new": new})
        with mock.patch("notifications.fanout.timezone.now", return_value=clock):
            event_fanout(event=event)
        kind = NotifyKind.CLUSTER_UNREACHABLE if down else NotifyKind.CLUSTER_RECOVERED
        expected = kind not in last_sent or (clock - last_sent[kind]).total_seconds() >= 300
        delivery = Delivery.objects.get(event_id=event.pk)
        assert (delivery.state == DeliveryState.QUEUED) == expected, (flaps, delivery.reason)
        if expected:
            last_sent[kind] = clock
            sent_at.append((kind, clock))
    for kind in (NotifyKind.CLUSTER_UNREACHABLE, NotifyKind.CLUSTER_RECOVERED):
        times = [t for k, t in sent_at if k == kind]
        assert all((b - a).total_seconds() >= 300 for a, b in zip(times, times[1:], strict=False))
