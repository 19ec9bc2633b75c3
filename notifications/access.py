"""Access rules for notification channels and deliveries (see pksweb.policy)."""

from __future__ import annotations

from django.db.models import Q, QuerySet

from notifications.models import Channel, Delivery
from pksweb.policy import Access, is_operator, is_platform, register, tenant_ids
from pksweb.types import AnyUser

OPERATORS_ONLY = "Only operators define notification channels and read the deliveries."


def channel_usable(user: AnyUser, channel: Channel) -> bool:
    """Whether ``user`` may receive messages on ``channel``: the platform team's channels (no tenant) are for
    operators, approvers and viewers; a tenant's channel is for that tenant's members only, so news of the fleet
    never lands in a tenant's room and news of a tenant never in another tenant's."""
    if channel.tenant_id is None:
        return is_platform(user)
    return channel.tenant_id in tenant_ids(user)


@register(Channel)
class ChannelAccess(Access[Channel]):
    """Who may see and change channels.

    - Operators see every channel (never its URL in full: only its scheme and host) and create or remove them.
    - Anyone else sees, to subscribe on, the channels they may receive on (``channel_usable``): their names only.
    """

    def can_view(self, user: AnyUser, channel: Channel) -> bool:
        return is_operator(user) or channel_usable(user, channel)

    def can_create(self, user: AnyUser, _model: type[Channel]) -> bool:
        return is_operator(user)

    def can_delete(self, user: AnyUser, channel: Channel | type[Channel]) -> bool:
        return is_operator(user)

    def restrict_view(self, user: AnyUser, queryset: QuerySet[Channel]) -> QuerySet[Channel]:
        if is_operator(user):
            return queryset
        mine = Q(tenant__in=tenant_ids(user))
        return queryset.filter(mine | Q(tenant__isnull=True)) if is_platform(user) else queryset.filter(mine)


@register(Delivery)
class DeliveryAccess(Access[Delivery]):
    """Deliveries (what was sent where, and why not) are for operators only: they name every channel and subject."""

    def can_view(self, user: AnyUser, delivery: Delivery) -> bool:
        return is_operator(user)

    def restrict_view(self, user: AnyUser, queryset: QuerySet[Delivery]) -> QuerySet[Delivery]:
        return queryset if is_operator(user) else queryset.none()
