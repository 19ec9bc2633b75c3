"""Writes: channels (operators) and subscriptions (each person their own)."""

from __future__ import annotations

from collections.abc import Iterable

import apprise
from django.core.exceptions import ValidationError
from django.db import transaction

from notifications.access import OPERATORS_ONLY, channel_usable
from notifications.choices import NotifyKind
from notifications.crypto import channel_reseal, channel_seal, url_hint
from notifications.models import Channel, Subscription
from pksweb import policy
from pksweb.choices import Role
from pksweb.models import User
from pksweb.types import AnyUser
from tenants.models import Tenant

URL_LIMIT = 2000
PLATFORM_KINDS: dict[str, list[NotifyKind]] = {
    Role.OPERATOR: [NotifyKind.PLAN_APPROVED, NotifyKind.PLAN_REJECTED, NotifyKind.ROLLOUT_STARTED, NotifyKind.ROLLOUT_HALTED,
                    NotifyKind.ROLLOUT_FINISHED, NotifyKind.CLUSTER_UNREACHABLE, NotifyKind.CLUSTER_RECOVERED],
    Role.APPROVER: [NotifyKind.PLAN_AWAITING],
}
TENANT_ADMIN_KINDS = [NotifyKind.CLUSTER_UNREACHABLE, NotifyKind.CLUSTER_RECOVERED, NotifyKind.NAMESPACE_DRIFTED]


def kinds_for(user: AnyUser) -> list[NotifyKind]:
    """The kinds ``user`` can be sent at all (the profile page offers only these)."""
    kinds = list(PLATFORM_KINDS.get(user.role, [])) if isinstance(user, User) else []
    if policy.admin_tenant_ids(user):
        kinds += [k for k in TENANT_ADMIN_KINDS if k not in kinds]
    return kinds


def _check_url(url: str) -> str:
    url = url.strip()
    if not url:
        raise ValidationError({"url": "Give the channel's apprise URL, e.g. json://hooks.example.com/pksweb or slack://T/B/C."})
    if len(url) > URL_LIMIT:
        raise ValidationError({"url": f"That URL has {len(url):,} characters; a channel's URL has at most {URL_LIMIT:,}."})
    if any(ord(c) < 32 or ord(c) == 127 for c in url):
        raise ValidationError({"url": "The URL contains control characters (a line break?): give it on one line."})
    try:
        plugin = apprise.Apprise.instantiate(url, suppress_exceptions=True)
    except Exception:
        plugin = None
    if not plugin:
        raise ValidationError({"url": "apprise does not understand this URL: start it with a service's scheme, e.g. "
                                      "json://, jsons://, slack://, msteams://, mailto:// (see apprise's list of services)."})
    return url


def _check_name(name: str) -> str:
    name = " ".join(name.split())
    if not name:
        raise ValidationError({"name": "Name the channel, e.g. platform-slack."})
    if len(name) > 100:
        raise ValidationError({"name": f"A channel's name has at most 100 characters (this one has {len(name):,})."})
    if Channel.objects.filter(name=name).exists():
        raise ValidationError({"name": f"There is a channel named {name} already: choose another name."})
    return name


@transaction.atomic
def channel_create(*, name: str, url: str, tenant: Tenant | None = None, created_by: AnyUser | None) -> Channel:
    """A channel for the platform team (no ``tenant``) or for one tenant's members; its URL sealed at rest."""
    policy.require(created_by, "create", Channel, OPERATORS_ONLY)
    errors: dict[str, list[str]] = {}
    try:
        name = _check_name(name)
    except ValidationError as exc:
        errors.update(exc.message_dict)
    try:
        url = _check_url(url)
    except ValidationError as exc:
        errors.update(exc.message_dict)
    if errors:
        raise ValidationError(errors)
    channel = Channel(name=name, sealed_url=channel_seal(url), hint=url_hint(url)[:200], tenant=tenant,
                      created_by=created_by if isinstance(created_by, User) else None)
    channel.full_clean()
    channel.save()
    return channel


@transaction.atomic
def channel_delete(*, channel: Channel, deleted_by: AnyUser | None) -> None:
    """Remove a channel and its subscriptions; its deliveries stay on the record, naming it."""
    policy.require(deleted_by, "delete", channel, OPERATORS_ONLY)
    channel.delete()


@transaction.atomic
def channel_keys_rotate() -> int:
    """Re-seal every channel URL with the newest PKSWEB_CREDENTIAL_KEYS key (``manage.py rotatekeys`` calls it)."""
    count = 0
    for channel in Channel.objects.select_for_update().iterator():
        channel_reseal(channel)
        channel.save(update_fields=["sealed_url"])
        count += 1
    return count


@transaction.atomic
def subscriptions_set(*, user: AnyUser, wanted: Iterable[tuple[str, int]]) -> list[Subscription]:
    """``user``'s subscriptions become exactly ``wanted`` — (kind, channel id) pairs — each a kind they can be sent
    on a channel they may use; anything else is refused in words, nothing changed."""
    if not isinstance(user, User):
        raise ValidationError("Sign in to choose your notifications.")
    allowed = {str(k) for k in kinds_for(user)}
    channels = {c.pk: c for c in Channel.objects.all()}
    pairs: set[tuple[str, int]] = set()
    for kind, channel_id in wanted:
        channel = channels.get(channel_id)
        if channel is None or not channel_usable(user, channel):
            raise ValidationError({"channel": f"There is no channel {channel_id} you can receive on."})
        if kind not in allowed:
            offered = ", ".join(allowed) or "none (your role is sent no notifications)"
            raise ValidationError({"kind": f"{str(kind)[:60]!r} is not a kind you can be sent; yours: {offered}."})
        pairs.add((kind, channel_id))
    Subscription.objects.filter(user_id=user.pk).delete()
    return Subscription.objects.bulk_create([Subscription(user_id=user.pk, kind=k, channel_id=c) for k, c in sorted(pairs)])
