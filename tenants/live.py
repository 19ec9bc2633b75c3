"""HTML fragments the tenant page swaps in when a tenant event arrives."""

from __future__ import annotations

from typing import Any

from django.template.loader import render_to_string

from pksweb.models import Event
from tenants import selectors


def tenant_fragments(event: Event, tenant_id: int, user: Any) -> str:
    """The event row, and the namespace row the event changed (inserted, replaced or removed)."""
    parts = [render_to_string("pksweb/_event_oob.html", {"event": event})]
    namespace_id = (event.payload or {}).get("namespace")
    if not event.kind.startswith("tenant.namespace_") or not isinstance(namespace_id, int):
        return "".join(parts)
    namespace = selectors.namespace_get(user=user, pk=namespace_id)
    if namespace is None or namespace.tenant_id != tenant_id:
        parts.append(f'<tr id="namespace-{namespace_id}" hx-swap-oob="delete"></tr>')
        return "".join(parts)
    row = render_to_string("tenants/_namespace_row.html", {"ns": namespace})
    if event.kind == "tenant.namespace_created":
        parts.append(f'<tr id="namespace-{namespace_id}" hx-swap-oob="delete"></tr>'
                     f'<tbody hx-swap-oob="afterbegin:#namespace-rows">{row}</tbody>'
                     '<p id="no-namespaces" hx-swap-oob="delete"></p>')
    else:
        parts.append(render_to_string("tenants/_namespace_row.html", {"ns": namespace, "oob": True}))
    return "".join(parts)
