"""HTML fragments the tenant page swaps in when a tenant event arrives."""

from __future__ import annotations

from django.template.loader import render_to_string

from pksweb.models import Event
from pksweb.types import AnyUser
from tenants import selectors


def tenant_fragments(event: Event, tenant_id: int, user: AnyUser) -> list[str]:
    """Messages for one event: the namespace row it changed (inserted, replaced or removed), then the event row.

    Table rows go in messages of their own, each starting with its table part, so the
    browser parses them as rows.
    """
    event_row = render_to_string("pksweb/_event_oob.html", {"event": event})
    namespace_id = (event.payload or {}).get("namespace")
    if not event.kind.startswith("tenant.namespace_") or not isinstance(namespace_id, int):
        return [event_row]
    namespace = selectors.namespace_get(user=user, pk=namespace_id)
    if namespace is None or namespace.tenant_id != tenant_id:
        return [f'<tr id="namespace-{namespace_id}" hx-swap-oob="delete"></tr>', event_row]
    if event.kind == "tenant.namespace_created":
        row = render_to_string("tenants/_namespace_row.html", {"ns": namespace})
        return [f'<tr id="namespace-{namespace_id}" hx-swap-oob="delete"></tr>',
                f'<tbody hx-swap-oob="afterbegin:#namespace-rows">{row}</tbody>',
                '<p id="no-namespaces" hx-swap-oob="delete"></p>' + event_row]
    return [render_to_string("tenants/_namespace_row.html", {"ns": namespace, "oob": True}), event_row]
