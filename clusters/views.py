from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import HttpResponseClientRedirect

from clusters import hooks, operations, selectors, services, sweep
from clusters.access import OPERATORS_ONLY
from clusters.choices import UpgradeDriver
from clusters.filters import ClusterFilter
from clusters.forms import ClusterEditForm, ClusterRegisterForm, NodeOperationForm
from clusters.kube import KubeError
from clusters.models import Cluster
from clusters.rows import context_rows, fleet_rows
from pksweb import policy
from pksweb import selectors as event_selectors
from pksweb.forms import errors_into
from pksweb.shortcuts import or_404
from pksweb.types import SignedInRequest

NO_SUCH_CLUSTER = "No such cluster."


@require_GET
@login_required
def fleet(request: SignedInRequest) -> HttpResponse:
    """Every cluster's dial tone, live: status, reasons, version, nodes, availability."""
    if not policy.is_platform(request.user):
        raise PermissionDenied("The fleet is for the platform team; your namespaces are under My tenants.")
    clusters = selectors.cluster_scope(user=request.user)
    filtered = ClusterFilter(request.GET, queryset=clusters)
    context = {
        "filter": filtered,
        **context_rows(fleet_rows(filtered.qs)),
        "counts": selectors.fleet_counts(clusters),
        "can_register": policy.can(request.user, "create", Cluster),
        "ws_path": "/ws/fleet/",
        "cursor": event_selectors.latest_event_id(user=request.user),
    }
    if request.htmx and request.htmx.target == "fleet-table":
        return render(request, "clusters/fleet.html#fleet-table", context)
    return render(request, "clusters/fleet.html", context)


@require_http_methods(["GET", "POST"])
@login_required
def cluster_register(request: SignedInRequest) -> HttpResponse:
    """Register a cluster from a kubeconfig or server + token; nothing is saved unless it connects."""
    if not policy.can(request.user, "create", Cluster):
        raise PermissionDenied("Only operators can register clusters.")
    form = ClusterRegisterForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid() and form.credential_input is not None:
        given = form.credential_input
        try:
            cluster = services.cluster_register(name=form.cleaned_data["name"], credential=given.credential,
                                                context=given.context, created_by=request.user, credential_field=given.field)
        except ValidationError as exc:
            errors_into(form, exc)
        else:
            messages.success(request, f"Cluster {cluster.name} registered; its first probe is on the way.")
            url = reverse("clusters:detail", args=[cluster.pk])
            return HttpResponseClientRedirect(url) if request.htmx else redirect(url)
    status = 400 if request.method == "POST" else 200
    return render(request, "clusters/register.html", {"form": form}, status=status)


@require_GET
@login_required
def cluster_detail(request: SignedInRequest, pk: int) -> HttpResponse:
    """One cluster: status, availability, nodes, operations, events; live."""
    cluster = or_404(selectors.cluster_get(user=request.user, pk=pk), NO_SUCH_CLUSTER)
    return render(request, "clusters/detail.html", cluster_context(request, cluster))


def cluster_context(request: SignedInRequest, cluster: Cluster) -> dict[str, Any]:
    events = selectors.cluster_events(user=request.user, cluster=cluster)
    return {
        "cluster": cluster,
        "health": selectors.cluster_health_view(cluster, list(cluster.spans.all())),
        "nodes": selectors.cluster_node_rows(cluster=cluster),
        "operations": selectors.cluster_operations(user=request.user, cluster=cluster),
        "events": events,
        "cursor": events[0].pk if events else 0,
        "can_operate": policy.can(request.user, "operate", cluster),
        "ws_path": f"/ws/clusters/{cluster.pk}/",
        "op_form": NodeOperationForm(),
        "assignable": hooks.node_assignable(cluster),
        "drivers": UpgradeDriver.choices,
    }


@require_GET
@login_required
def cluster_live(request: SignedInRequest, pk: int) -> HttpResponse:
    """What only the cluster knows right now (pods per node, namespaces, events); loaded after the page."""
    cluster = or_404(selectors.cluster_get(user=request.user, pk=pk), NO_SUCH_CLUSTER)
    context: dict[str, Any] = {"cluster": cluster}
    try:
        context.update(sweep.cluster_live_snapshot(cluster=cluster))
    except KubeError as exc:
        context["error"] = exc.message
    return render(request, "clusters/_live.html", context)


@require_http_methods(["GET", "POST"])
@login_required
def cluster_edit(request: SignedInRequest, pk: int) -> HttpResponse:
    """Rename a cluster or replace its credential (checked before saving)."""
    cluster = or_404(selectors.cluster_get(user=request.user, pk=pk), NO_SUCH_CLUSTER)
    if not policy.can(request.user, "update", cluster):
        raise PermissionDenied(OPERATORS_ONLY)
    form = ClusterEditForm(request.POST or None, request.FILES or None, initial={"name": cluster.name})
    if request.method == "POST" and form.is_valid():
        given = form.credential_input
        try:
            services.cluster_update(cluster=cluster, updated_by=request.user, name=form.cleaned_data["name"],
                                    credential=given.credential if given else None, context=given.context if given else None,
                                    credential_field=given.field if given else "kubeconfig")
        except ValidationError as exc:
            errors_into(form, exc)
        else:
            messages.success(request, "Cluster updated.")
            return redirect("clusters:detail", pk=cluster.pk)
    status = 400 if request.method == "POST" else 200
    return render(request, "clusters/edit.html", {"form": form, "cluster": cluster}, status=status)


@require_POST
@login_required
def cluster_delete(request: SignedInRequest, pk: int) -> HttpResponse:
    cluster = or_404(selectors.cluster_get(user=request.user, pk=pk), NO_SUCH_CLUSTER)
    try:
        services.cluster_delete(cluster=cluster, deleted_by=request.user)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
        url = reverse("clusters:detail", args=[cluster.pk])
        return HttpResponseClientRedirect(url) if request.htmx else redirect(url)
    messages.success(request, f"Cluster {cluster.name} and its credential were removed.")
    return HttpResponseClientRedirect(reverse("clusters:fleet")) if request.htmx else redirect("clusters:fleet")


@require_POST
@login_required
def cluster_probe(request: SignedInRequest, pk: int) -> HttpResponse:
    """Probe now; the result arrives on the page through the event path too."""
    cluster = or_404(selectors.cluster_get(user=request.user, pk=pk), NO_SUCH_CLUSTER)
    if not policy.can(request.user, "operate", cluster):
        raise PermissionDenied("Only operators can probe clusters on demand.")
    cluster = sweep.cluster_probe(cluster=cluster)
    cluster = or_404(selectors.cluster_get(user=request.user, pk=pk), NO_SUCH_CLUSTER)
    if request.htmx:
        return render(request, "clusters/detail.html#status-card", cluster_context(request, cluster))
    return redirect("clusters:detail", pk=pk)


@require_POST
@login_required
def node_operation(request: SignedInRequest, pk: int, node: str, kind: str) -> HttpResponse:
    """Start a cordon, uncordon or drain; progress arrives live."""
    cluster = or_404(selectors.cluster_get(user=request.user, pk=pk), NO_SUCH_CLUSTER)
    form = NodeOperationForm(request.POST)
    error = ""
    if form.is_valid():
        try:
            operations.node_operation_start(cluster=cluster, node=node, kind=kind, requested_by=request.user,
                                          timeout_seconds=form.cleaned_data.get("timeout_seconds"))
        except ValidationError as exc:
            error = " ".join(exc.messages)
    else:
        error = " ".join(str(e) for errs in form.errors.values() for e in errs)
    if request.htmx:
        context = cluster_context(request, cluster)
        context["operation_error"] = error
        return render(request, "clusters/detail.html#operations", context, status=400 if error else 200)
    if error:
        messages.error(request, error)
    return redirect("clusters:detail", pk=pk)
