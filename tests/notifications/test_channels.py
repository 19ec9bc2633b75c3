"""Channel URLs: sealed at rest with the credential keys, rotated by rotatekeys, never shown back."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet
from django.core.management import call_command

from notifications.crypto import channel_url
from notifications.models import Channel, Subscription
from notifications.services import channel_create

pytestmark = pytest.mark.django_db
SECRET = "slack://T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkcOXrIdevi7FQ"


def test_the_url_is_sealed_rotated_and_never_shown(operator, op_client, settings, capsys):
    channel = channel_create(name="platform-slack", url=SECRET, created_by=operator)
    assert "TIiajkdnlazkc" not in Channel.objects.get().sealed_url and channel.hint == "slack://t1jj3t3l2/…"
    page = op_client.get("/notifications/").content.decode()
    assert "platform-slack" in page and "TIiajkdnlazkc" not in page and "A1BRTD4JD" not in page
    assert "TIiajkdnlazkc" not in op_client.get("/api/notification-channels/").content.decode()
    old = settings.PKSWEB_CREDENTIAL_KEYS
    settings.PKSWEB_CREDENTIAL_KEYS = [Fernet.generate_key().decode(), *old]
    call_command("rotatekeys")
    assert "re-encrypted 1 notification channel URL(s)" in capsys.readouterr().out
    settings.PKSWEB_CREDENTIAL_KEYS = settings.PKSWEB_CREDENTIAL_KEYS[:1]  # the old key dropped: still readable
    assert channel_url(Channel.objects.get()) == SECRET


def test_people_subscribe_only_on_their_own_rooms_to_kinds_they_can_be_sent(operator, tenant, other_tenant, tenant_admin, viewer):
    from django.test import Client

    platform = channel_create(name="ops", url="json://127.0.0.1:9/ops", created_by=operator)
    acme = channel_create(name="acme", url="json://127.0.0.1:9/acme", tenant=tenant, created_by=operator)
    globex = channel_create(name="globex", url="json://127.0.0.1:9/globex", tenant=other_tenant, created_by=operator)
    client = Client()
    client.force_login(tenant_admin)
    page = client.get("/notifications/me/").content.decode()
    assert "acme" in page and "globex" not in page and ">ops<" not in page
    assert client.post("/notifications/me/", {f"namespace_drifted:{acme.pk}": "on"}).status_code == 302
    assert list(Subscription.objects.values_list("kind", "channel__name")) == [("namespace_drifted", "acme")]
    # someone else's room, or a kind not theirs, is not offered: a posted box for it subscribes to nothing
    foreign = {f"namespace_drifted:{globex.pk}": "on", f"namespace_drifted:{platform.pk}": "on", f"rollout_halted:{acme.pk}": "on"}
    assert client.post("/notifications/me/", {f"namespace_drifted:{acme.pk}": "on", **foreign}).status_code == 302
    assert list(Subscription.objects.values_list("kind", "channel__name")) == [("namespace_drifted", "acme")]
    answer = client.put("/api/me/notifications/", {"subscriptions": [{"kind": "namespace_drifted", "channel": globex.pk}]},
                        content_type="application/json")
    assert answer.status_code == 400 and "no channel" in answer.content.decode()
    assert Subscription.objects.count() == 1
    viewer_client = Client()
    viewer_client.force_login(viewer)
    assert "sent no notifications" in viewer_client.get("/notifications/me/").content.decode()
