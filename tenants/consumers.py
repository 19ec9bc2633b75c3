"""The live tenant page (see pksweb.consumers for the stream mechanics)."""

from __future__ import annotations

from pksweb import policy
from pksweb.consumers import EventStreamConsumer
from pksweb.events import tenant_group
from pksweb.models import Event
from pksweb.types import AnyUser
from tenants.live import tenant_fragments
from tenants.models import Tenant


class TenantConsumer(EventStreamConsumer):
    """One tenant's page: its events, and its namespaces' states as they change.

    Refused unless the policy lets the user see that tenant; an unknown tenant is
    refused the same way (no probing for other tenants' ids).
    """

    def watch_groups(self, user: AnyUser) -> list[str] | None:
        tenant = Tenant.objects.filter(pk=self.scope["url_route"]["kwargs"]["tenant_id"]).first()
        if tenant is None or not policy.can(user, "view", tenant):
            return None
        self.tenant_id = tenant.pk
        return [tenant_group(tenant.pk)]

    def page_key(self) -> str:
        return str(self.tenant_id)

    def render(self, event: Event) -> str | list[str]:
        return tenant_fragments(event, self.tenant_id or 0, self.scope["user"])
