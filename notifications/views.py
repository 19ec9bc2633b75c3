from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from notifications import selectors, services
from notifications.access import OPERATORS_ONLY, channel_usable
from notifications.forms import ChannelForm, SubscriptionForm
from notifications.models import Channel
from pksweb import policy
from pksweb.forms import errors_into
from pksweb.types import SignedInRequest


def _operators_page(request: SignedInRequest, form: ChannelForm, status: int = 200) -> HttpResponse:
    context = {"channels": selectors.channel_list(user=request.user), "form": form,
               "deliveries": selectors.delivery_list(user=request.user)[: selectors.PAGE]}
    return render(request, "notifications/index.html", context, status=status)


@require_GET
@login_required
def index(request: SignedInRequest) -> HttpResponse:
    """Channels and every delivery (sent, failed with why, suppressed by the debounce): the operators' page."""
    if not policy.is_operator(request.user):
        raise PermissionDenied(OPERATORS_ONLY)
    return _operators_page(request, ChannelForm(user=request.user))


@require_POST
@login_required
def channel_create(request: SignedInRequest) -> HttpResponse:
    if not policy.can(request.user, "create", Channel):
        raise PermissionDenied(OPERATORS_ONLY)
    form = ChannelForm(request.POST, user=request.user)
    if form.is_valid():
        try:
            channel = services.channel_create(name=form.cleaned_data["name"], url=form.cleaned_data["url"],
                                              tenant=form.cleaned_data["tenant"], created_by=request.user)
        except ValidationError as exc:
            errors_into(form, exc)
        else:
            messages.success(request, f"Channel {channel.name} added.")
            return redirect("notifications:index")
    return _operators_page(request, form, status=400)


@require_POST
@login_required
def channel_delete(request: SignedInRequest, pk: int) -> HttpResponse:
    channel = Channel.objects.filter(pk=pk).first()
    if channel is None or not policy.can(request.user, "view", channel):
        raise Http404("No such channel.")
    services.channel_delete(channel=channel, deleted_by=request.user)
    messages.success(request, f"Channel {channel.name} removed.")
    return redirect("notifications:index")


@require_http_methods(["GET", "POST"])
@login_required
def profile(request: SignedInRequest) -> HttpResponse:
    """Each person chooses which kinds they are sent, on which of the channels they may use."""
    kinds = services.kinds_for(request.user)
    channels = [c for c in selectors.channel_list(user=request.user) if channel_usable(request.user, c)]
    current = {f"{s.kind}:{s.channel_id}": True for s in selectors.subscription_list(user=request.user)}
    form = SubscriptionForm(request.POST if request.method == "POST" else None, initial=current, kinds=kinds, channels=channels)
    if request.method == "POST" and form.is_valid():
        try:
            services.subscriptions_set(user=request.user, wanted=form.wanted())
        except ValidationError as exc:
            errors_into(form, exc)
        else:
            messages.success(request, "Your notifications are saved.")
            return redirect("notifications:profile")
    rows = [(kind, [form[f"{kind.value}:{c.pk}"] for c in channels]) for kind in kinds]
    return render(request, "notifications/profile.html", {"form": form, "rows": rows, "channels": channels,
                                                          "kinds": kinds}, status=400 if form.errors else 200)
