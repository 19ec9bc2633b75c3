"""Reads for a person, scoped by the policy."""

from __future__ import annotations

from django.db.models import QuerySet

from notifications.models import Channel, Delivery, Subscription
from pksweb import policy
from pksweb.models import User
from pksweb.types import AnyUser

PAGE = 200


def channel_list(*, user: AnyUser) -> QuerySet[Channel]:
    return policy.restrict(user, Channel.objects.select_related("tenant").order_by("name"))


def delivery_list(*, user: AnyUser) -> QuerySet[Delivery]:
    return policy.restrict(user, Delivery.objects.order_by("-id"))


def subscription_list(*, user: AnyUser) -> QuerySet[Subscription]:
    if not isinstance(user, User):
        return Subscription.objects.none()
    return Subscription.objects.filter(user_id=user.pk).select_related("channel").order_by("kind", "channel__name")
