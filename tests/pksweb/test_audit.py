"""The audit trail: sealed into a hash chain that shows any edit, removal or insertion; never editable through the API."""

from __future__ import annotations

import pytest
from django.core.management import CommandError, call_command
from rest_framework.test import APIClient

from pksweb.audit import SEAL_DELAY, audit_seal, audit_verify
from pksweb.events import publish
from pksweb.models import Event

pytestmark = pytest.mark.django_db


def three() -> list[Event]:
    return [publish(kind="system.notice", message=f"note {i}", payload={"i": i}) for i in range(3)]


def test_settled_events_are_sealed_in_order_and_verify(operator):
    events = three()
    assert audit_seal() == 0  # younger than the seal delay: a transaction could still commit an earlier id
    assert audit_seal(delay=SEAL_DELAY * 0) == 3
    digests = list(Event.objects.order_by("id").values_list("digest", flat=True))
    assert all(len(d) == 64 for d in digests) and len(set(digests)) == 3
    result = audit_verify()
    assert result.ok and result.sealed == 3 and result.unsealed == 0
    later = publish(kind="system.notice", message="later")
    assert audit_seal(delay=SEAL_DELAY * 0) == 1 and audit_verify().ok
    assert Event.objects.get(pk=later.pk).digest != Event.objects.get(pk=events[-1].pk).digest


@pytest.mark.parametrize("tamper", ["edit", "delete", "insert"])
def test_any_change_to_the_sealed_past_is_found(tamper):
    events = three()
    audit_seal(delay=SEAL_DELAY * 0)
    if tamper == "edit":
        Event.objects.filter(pk=events[1].pk).update(message="nothing happened here")
    elif tamper == "delete":
        Event.objects.filter(pk=events[0].pk).delete()
    else:
        forged = Event.objects.create(kind="system.notice", message="forged")
        Event.objects.filter(pk=forged.pk).update(digest=Event.objects.get(pk=events[2].pk).digest)
    result = audit_verify()
    assert not result.ok
    assert any(f"event {events[1].pk}" in p or f"event {events[2].pk}" in p or "forged" in p or "does not match" in p
               for p in result.problems)
    with pytest.raises(CommandError, match="The audit chain is broken"):
        call_command("auditverify", "--no-seal")


def test_events_cannot_be_edited_or_removed_through_the_api(operator):
    event = publish(kind="system.notice", message="keep me")
    client = APIClient()
    client.force_authenticate(operator)
    for method in ("put", "patch", "delete"):
        response = getattr(client, method)(f"/api/events/{event.pk}/", {"message": "changed"}, format="json")
        assert response.status_code == 405, (method, response.status_code)
    assert Event.objects.get(pk=event.pk).message == "keep me"
