from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.templatetags.static import static
from django.views import defaults
from django.views.decorators.http import require_GET, require_POST
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4

from pksweb import health, metrics, policy, selectors, services, tenancy
from pksweb.fields import an_id
from pksweb.forms import AnnouncementForm, errors_into
from pksweb.models import Event
from pksweb.text import bound
from pksweb.types import SignedInRequest

PAGE_SIZE = 50


def is_api_request(request: HttpRequest) -> bool:
    """Answered in JSON (the API) rather than with a page."""
    return request.path.startswith("/api/")


@require_GET
def favicon(request: HttpRequest) -> HttpResponse:
    """For browsers and tools that ask for /favicon.ico without reading the page's ``<link rel="icon">``
    (the file's URL is looked up per request: production's manifest names it by its hash)."""
    return redirect(static("pksweb/favicon.svg"), permanent=True)


def not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    """API clients get JSON saying where the endpoints are; people get the page."""
    if is_api_request(request):
        return JsonResponse({"detail": f"No API endpoint or object at {bound(request.path, 120)}: the endpoints are listed at /api/docs/."},
                            status=404)
    return defaults.page_not_found(request, exception)


def server_error(request: HttpRequest) -> HttpResponse:
    if is_api_request(request):
        return JsonResponse({"detail": "pksweb failed while answering; the error is in the server log."}, status=500)
    return defaults.server_error(request)


@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """The process is alive and serving requests."""
    return JsonResponse({"status": "alive"})


@require_GET
def readyz(request: HttpRequest) -> JsonResponse:
    """Database, channel layer and broker reachable; 503 naming what is not."""
    checks = health.readiness()
    failing = [name for name, state in checks.items() if state != "ok"]
    body = {"status": "not ready" if failing else "ready", "failing": failing, "checks": checks}
    return JsonResponse(body, status=503 if failing else 200)


@require_GET
def metrics_scrape(request: HttpRequest) -> HttpResponse:
    """Prometheus' scrape: pksweb's own figures and the fleet's, in the text format (``pksweb.metrics``)."""
    if not policy.may_scrape_metrics(request.user, request.headers.get("Authorization")):
        if request.user.is_authenticated:  # a tenant admin: signed in, but the figures name every tenant
            return HttpResponse("/metrics shows the whole fleet: it is for the platform team and for Prometheus with "
                                "the bearer token PKSWEB_METRICS_TOKEN names.\n", status=403,
                                content_type="text/plain; charset=utf-8")
        refused = HttpResponse("/metrics needs Authorization: Bearer with the token PKSWEB_METRICS_TOKEN names (set it "
                               "and give it to Prometheus), or a signed-in operator, approver or viewer.\n", status=401,
                               content_type="text/plain; charset=utf-8")
        refused["WWW-Authenticate"] = 'Bearer realm="pksweb metrics"'
        return refused
    return HttpResponse(metrics.exposition(), content_type=CONTENT_TYPE_PLAIN_0_0_4)


@require_GET
@login_required
def home(request: SignedInRequest) -> HttpResponse:
    """The platform team lands on the fleet; a tenant's people on their tenant."""
    if policy.is_platform(request.user):
        return redirect("clusters:fleet")
    tenant = tenancy.landing_tenant(request.user)
    return redirect("tenants:detail", pk=tenant.pk) if tenant else redirect("tenants:list")


def _announcement_form(request: SignedInRequest, data: object = None) -> AnnouncementForm | None:
    if not policy.can(request.user, "create", Event):
        return None
    return AnnouncementForm(data, user=request.user)


@require_GET
@login_required
def activity(request: SignedInRequest) -> HttpResponse:
    """The latest events the user may see; new ones arrive over the websocket."""
    events = selectors.event_list(user=request.user)
    before = request.GET.get("before", "")
    if an_id(before):
        events = events.filter(id__lt=int(before))
    page = list(events[: PAGE_SIZE + 1])
    context = {
        "events": page[:PAGE_SIZE],
        "more": len(page) > PAGE_SIZE,
        "cursor": page[0].pk if page and not before else 0,
        "ws_path": "/ws/activity/",
    }
    if request.htmx and before:
        return render(request, "pksweb/activity.html#older-events", context)
    context["form"] = _announcement_form(request)
    context["worker"] = selectors.worker_last_seen()
    return render(request, "pksweb/activity.html", context)


@require_POST
@login_required
def announcement_create(request: SignedInRequest) -> HttpResponse:
    """Post an announcement; it reaches every open page through the event path."""
    form = _announcement_form(request, request.POST)
    if form is None:
        raise PermissionDenied("Only operators can post announcements.")
    posted = False
    if form.is_valid():
        try:
            services.announcement_post(
                author=request.user, message=form.cleaned_data["message"], tenant=form.cleaned_data["tenant"]
            )
            posted = True
        except ValidationError as exc:
            errors_into(form, exc)
    if request.htmx:
        if posted:
            form = _announcement_form(request)
        return render(request, "pksweb/activity.html#announce-form", {"form": form, "posted": posted})
    if posted:
        messages.success(request, "Announcement posted.")
        return redirect("activity")
    return render(
        request,
        "pksweb/activity.html",
        {"form": form, "events": selectors.event_list(user=request.user)[:PAGE_SIZE], "cursor": 0, "ws_path": "/ws/activity/"},
        status=400,
    )
