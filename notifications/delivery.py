"""Sending: apprise to one channel, one message at a time in order, with a short timeout and backoff.

A channel's queued deliveries go out in the order they were decided, by whoever holds the channel's lease (one
sender per channel at a time: a slow or hung receiver holds up only its own channel, never the others, and never
the event path). A failed send is tried again after ``PKSWEB_NOTIFY_BACKOFF`` × 2ⁿ seconds, up to
``PKSWEB_NOTIFY_ATTEMPTS`` times, then recorded as failed with the reason (bounded); later messages wait behind it
meanwhile, so a receiver sees them in order.
"""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta

import apprise
from django.conf import settings
from django.utils import timezone

from notifications.choices import WAITING_STATES, DeliveryState
from notifications.crypto import channel_url
from notifications.models import Channel, Delivery
from pksweb.leases import lease_acquire, lease_release, lease_renew
from pksweb.text import bound

log = logging.getLogger(__name__)
BUSY_RETRY = 0.5  # seconds: another sender holds the channel; it will see new rows, this is only a safety net


def send(url: str, title: str, body: str) -> str:
    """Send one message through apprise; '' when it went, else why not (bounded, without the URL's secrets)."""
    plugin = apprise.Apprise.instantiate(url)
    if not plugin:
        return "apprise does not understand this channel's URL"
    timeout = float(settings.PKSWEB_NOTIFY_TIMEOUT)
    plugin.socket_connect_timeout = timeout
    plugin.socket_read_timeout = timeout
    with apprise.LogCapture(level=logging.WARNING) as output:  # type: ignore[no-untyped-call]
        try:
            ok = plugin.notify(body=body, title=title)
        except Exception as exc:  # a plugin's own bug must not stop the other messages
            ok, extra = False, f"{exc.__class__.__name__}: {exc}"
        else:
            extra = ""
    if ok:
        return ""
    text = " ".join((output.getvalue() + " " + extra).split()).replace(url, "<channel URL>")
    return bound(text or "the channel did not take the message", 300)


def lease_name(channel_id: int) -> str:
    return f"notify.channel.{channel_id}"


def channel_drain(*, channel_id: int) -> float | None:
    """Send what waits on one channel, in order. Returns seconds until this should run again (a retry's backoff,
    or the channel busy with another sender), or None when nothing waits."""
    channel = Channel.objects.filter(pk=channel_id).first()
    if channel is None:
        return None
    holder, name = uuid.uuid4().hex, lease_name(channel_id)
    hold = 2 * float(settings.PKSWEB_NOTIFY_TIMEOUT) + 30
    if not lease_acquire(name=name, holder=holder, seconds=hold):
        return BUSY_RETRY
    try:
        while True:
            delivery = Delivery.objects.filter(channel_id=channel_id, state__in=WAITING_STATES).order_by("id").first()
            if delivery is None:
                return None
            now = timezone.now()
            if delivery.next_at > now:
                return (delivery.next_at - now).total_seconds()
            delivery_send(delivery=delivery, url=channel_url(channel))
            lease_renew(name=name, holder=holder, seconds=hold)
    finally:
        lease_release(name=name, holder=holder)


def delivery_send(*, delivery: Delivery, url: str) -> None:
    """One attempt: sent, or tried again later, or (attempts spent) failed with the reason."""
    why = send(url, delivery.title, delivery.body)
    delivery.attempts += 1
    now = timezone.now()
    if not why:
        delivery.state, delivery.sent_at, delivery.reason = DeliveryState.SENT, now, ""
    elif delivery.attempts < settings.PKSWEB_NOTIFY_ATTEMPTS:
        delivery.state, delivery.reason = DeliveryState.RETRYING, why
        delivery.next_at = now + timedelta(seconds=float(settings.PKSWEB_NOTIFY_BACKOFF) * 2 ** (delivery.attempts - 1))
    else:
        delivery.state, delivery.reason = DeliveryState.FAILED, bound(f"{why} ({delivery.attempts} attempts)", 500)
        log.warning("notification %s to %s failed: %s", delivery.pk, delivery.channel_name, why)
    delivery.save(update_fields=["state", "sent_at", "reason", "attempts", "next_at"])
