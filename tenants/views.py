from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_GET

from pksweb import selectors as event_selectors
from tenants.selectors import tenant_list

EVENTS_SHOWN = 50


@require_GET
@login_required
def tenant_index(request: HttpRequest) -> HttpResponse:
    """Tenants the user may see (all of them for the platform team)."""
    return render(request, "tenants/list.html", {"tenants": tenant_list(user=request.user)})


@require_GET
@login_required
def tenant_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """One tenant and its live activity; 404 for a tenant the user may not see."""
    tenant = get_object_or_404(tenant_list(user=request.user), pk=pk)
    events = list(event_selectors.event_list(user=request.user, tenant_id=tenant.pk)[:EVENTS_SHOWN])
    members = tenant.memberships.select_related("user").order_by("user__username")
    return render(
        request,
        "tenants/detail.html",
        {
            "tenant": tenant,
            "members": members,
            "events": events,
            "cursor": events[0].pk if events else 0,
            "ws_path": f"/ws/tenants/{tenant.pk}/",
        },
    )
