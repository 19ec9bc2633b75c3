"""Access rules for pksweb's own models (see pksweb.policy)."""

from __future__ import annotations

from django.db.models import Q, QuerySet

from pksweb.events import FOR_EVERYONE, for_everyone
from pksweb.models import Event, User
from pksweb.policy import Access, is_operator, is_platform, register, tenant_ids


@register(Event)
class EventAccess(Access[Event]):
    """Who may see events and post announcements.

    - Operators, approvers and viewers can see every event.
    - A tenant admin can see an event when it belongs to one of their tenants;
      fleet-level events (no tenant) are not theirs to see, but for announcements an
      operator posted for everyone.
    - Only an operator can create an event directly (an announcement); every
      other event is published by the service that made the change.
    """

    def can_view(self, user: User, event: Event) -> bool:
        if is_platform(user):
            return True
        return (event.tenant_id is not None and event.tenant_id in tenant_ids(user)) or for_everyone(event)

    def can_create(self, user: User, _model: type[Event]) -> bool:
        return is_operator(user)

    def restrict_view(self, user: User, queryset: QuerySet[Event]) -> QuerySet[Event]:
        if is_platform(user):
            return queryset
        return queryset.filter(Q(tenant_id__in=tenant_ids(user)) | FOR_EVERYONE)
