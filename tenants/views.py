from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth import get_user_model
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from clusters import selectors as cluster_selectors
from clusters.connect import gateway_for
from clusters.kube import KubeError
from pksweb import policy
from pksweb import selectors as event_selectors
from pksweb.forms import errors_into
from pksweb.shortcuts import or_404
from pksweb.types import SignedInRequest
from tenants import scorecard, segmentation, selectors, services
from tenants.forms import AssignNodeForm, DeleteNamespaceForm, MemberForm, NamespaceForm, TenantForm
from tenants.models import Tenant

EVENTS_SHOWN = 50


@require_GET
@login_required
def tenant_index(request: SignedInRequest) -> HttpResponse:
    """Tenants the user may see; a member of exactly one lands on it."""
    landing = selectors.landing_tenant(user=request.user)
    if landing is not None and not request.GET.get("all"):
        return redirect("tenants:detail", pk=landing.pk)
    return render(request, "tenants/list.html", {"tenants": selectors.tenant_list(user=request.user),
                                                 "can_create": policy.can(request.user, "create", Tenant)})


@require_http_methods(["GET", "POST"])
@login_required
def tenant_create(request: SignedInRequest) -> HttpResponse:
    if not policy.can(request.user, "create", Tenant):
        raise PermissionDenied("Only operators can create tenants.")
    form = TenantForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = dict(form.cleaned_data)
        clusters = data.pop("clusters")
        try:
            tenant = services.tenant_create(created_by=request.user, clusters=clusters, **data)
        except ValidationError as exc:
            errors_into(form, exc)
        else:
            return redirect("tenants:detail", pk=tenant.pk)
    return render(request, "tenants/form.html", {"form": form, "title": "New tenant"}, status=400 if form.errors else 200)


@require_http_methods(["GET", "POST"])
@login_required
def tenant_edit(request: SignedInRequest, pk: int) -> HttpResponse:
    """Edit a tenant's profile; its namespaces are re-reconciled."""
    tenant = or_404(selectors.tenant_get(user=request.user, pk=pk), "No such tenant.")
    if not policy.can(request.user, "operate", tenant):
        raise PermissionDenied("Only operators can change tenants.")
    form = TenantForm(request.POST or None, instance=Tenant.objects.get(pk=tenant.pk))
    form.fields["name"].disabled = True
    if request.method == "POST" and form.is_valid():
        data = {k: v for k, v in form.cleaned_data.items() if k not in ("name", "clusters")}
        try:
            services.tenant_update(tenant=tenant, updated_by=request.user, clusters=form.cleaned_data["clusters"], **data)
        except ValidationError as exc:
            errors_into(form, exc)
        else:
            messages.success(request, "Profile saved; the tenant's namespaces are being re-applied.")
            return redirect("tenants:detail", pk=tenant.pk)
    return render(request, "tenants/form.html", {"form": form, "title": f"Edit {tenant.name}", "tenant": tenant},
                  status=400 if form.errors else 200)


def tenant_context(request: SignedInRequest, tenant: Tenant, **extra: Any) -> dict[str, Any]:
    events = list(event_selectors.event_list(user=request.user, tenant_id=tenant.pk)[:EVENTS_SHOWN])
    can_manage = policy.can(request.user, "manage", tenant)
    return {
        "tenant": tenant,
        "members": selectors.tenant_members(tenant=tenant),
        "namespaces": selectors.namespace_list(user=request.user, tenant=tenant),
        "assignments": selectors.node_assignments(user=request.user, tenant=tenant),
        "events": events,
        "cursor": events[0].pk if events else 0,
        "ws_path": f"/ws/tenants/{tenant.pk}/",
        "can_manage": can_manage,
        "can_operate": policy.can(request.user, "operate", tenant),
        "namespace_form": NamespaceForm(tenant=tenant) if can_manage else None,
        "member_form": MemberForm(),
        **extra,
    }


@require_GET
@login_required
def tenant_detail(request: SignedInRequest, pk: int) -> HttpResponse:
    """A tenant: its namespaces on every cluster (live), members, nodes, activity."""
    tenant = or_404(selectors.tenant_get(user=request.user, pk=pk), "No such tenant.")
    return render(request, "tenants/detail.html", tenant_context(request, tenant))


@require_GET
@login_required
def tenant_scorecard(request: SignedInRequest, pk: int) -> HttpResponse:
    """The isolation scorecard, read from the clusters (operators and approvers/viewers)."""
    tenant = or_404(selectors.tenant_get(user=request.user, pk=pk), "No such tenant.")
    if not policy.is_platform(request.user):
        raise PermissionDenied("The isolation scorecard is for the platform team.")
    return render(request, "tenants/_scorecard.html", {"tenant": tenant, "checks": scorecard.tenant_scorecard(tenant)})


@require_POST
@login_required
def namespace_create(request: SignedInRequest, pk: int) -> HttpResponse:
    tenant = or_404(selectors.tenant_get(user=request.user, pk=pk), "No such tenant.")
    if not policy.can(request.user, "manage", tenant):
        raise PermissionDenied("You may not create namespaces for this tenant.")
    form = NamespaceForm(request.POST, tenant=tenant)
    if form.is_valid():
        try:
            services.namespace_create(tenant=tenant, cluster=form.cleaned_data["cluster"], name=form.cleaned_data["name"],
                                      created_by=request.user)
        except ValidationError as exc:
            errors_into(form, exc)
        else:
            form = NamespaceForm(tenant=tenant)
    if request.htmx:
        context = tenant_context(request, tenant, namespace_form=form)
        return render(request, "tenants/detail.html#namespaces", context, status=400 if form.errors else 200)
    if form.errors:
        return render(request, "tenants/detail.html", tenant_context(request, tenant, namespace_form=form), status=400)
    return redirect("tenants:detail", pk=tenant.pk)


@require_POST
@login_required
def member_add(request: SignedInRequest, pk: int) -> HttpResponse:
    tenant = or_404(selectors.tenant_get(user=request.user, pk=pk), "No such tenant.")
    if not policy.can(request.user, "operate", tenant):
        raise PermissionDenied("Only operators can change a tenant's members.")
    form = MemberForm(request.POST)
    if form.is_valid():
        user = get_user_model().objects.filter(username=form.cleaned_data["username"]).first()
        if user is None:
            form.add_error("username", f"No user is called {form.cleaned_data['username']!r}.")
        else:
            try:
                services.membership_add(tenant=tenant, user=user, role=form.cleaned_data["role"], added_by=request.user)
            except ValidationError as exc:
                errors_into(form, exc)
    if form.errors:
        return render(request, "tenants/detail.html", tenant_context(request, tenant, member_form=form), status=400)
    return redirect("tenants:detail", pk=tenant.pk)


@require_GET
@login_required
def namespace_detail(request: SignedInRequest, pk: int) -> HttpResponse:
    namespace = or_404(selectors.namespace_get(user=request.user, pk=pk), "No such namespace.")
    return render(request, "tenants/namespace.html", {
        "namespace": namespace, "tenant": namespace.tenant, "delete_form": DeleteNamespaceForm(),
        "can_manage": policy.can(request.user, "manage", namespace),
    })


@require_GET
@login_required
def namespace_live(request: SignedInRequest, pk: int) -> HttpResponse:
    """Quota use, workloads, pods, network policies and events, read from the cluster now."""

    namespace = or_404(selectors.namespace_get(user=request.user, pk=pk), "No such namespace.")
    context: dict[str, Any] = {"namespace": namespace}
    try:
        context.update(gateway_for(namespace.cluster).namespace_overview(namespace.name))
    except KubeError as exc:
        context["error"] = exc.message
    return render(request, "tenants/_namespace_live.html", context)


@require_POST
@login_required
def namespace_reconcile(request: SignedInRequest, pk: int) -> HttpResponse:
    namespace = or_404(selectors.namespace_get(user=request.user, pk=pk), "No such namespace.")
    services.namespace_reconcile_request(namespace=namespace, requested_by=request.user)
    messages.success(request, f"Re-applying {namespace.name}; its state updates when done.")
    return redirect("tenants:namespace", pk=pk) if not request.htmx else HttpResponse(status=204)


@require_POST
@login_required
def namespace_delete(request: SignedInRequest, pk: int) -> HttpResponse:
    namespace = or_404(selectors.namespace_get(user=request.user, pk=pk), "No such namespace.")
    form = DeleteNamespaceForm(request.POST)
    form.is_valid()
    try:
        services.namespace_delete(namespace=namespace, confirm=form.cleaned_data.get("confirm", ""), deleted_by=request.user)
    except ValidationError as exc:
        errors_into(form, exc)
        return render(request, "tenants/namespace.html", {"namespace": namespace, "tenant": namespace.tenant,
                                                          "delete_form": form, "can_manage": True}, status=400)
    messages.success(request, f"Namespace {namespace.name} deleted.")
    return redirect("tenants:detail", pk=namespace.tenant_id)


@require_GET
@login_required
def cluster_segmentation(request: SignedInRequest, cluster_id: int) -> HttpResponse:
    """Which namespaces' pods can reach which on a cluster, from its actual NetworkPolicies; ``?from=&to=`` explains one cell."""
    cluster = or_404(cluster_selectors.cluster_get(user=request.user, pk=cluster_id), "No such cluster.")
    matrix = segmentation.cluster_segmentation(cluster)
    source, target = request.GET.get("from", ""), request.GET.get("to", "")
    chosen = matrix.cell(source, target, explain=True) if source in matrix.namespaces and target in matrix.namespaces else None
    context = {"cluster": cluster, "matrix": matrix, "chosen": chosen}
    if request.htmx and request.htmx.target == "why":
        return render(request, "tenants/segmentation.html#why", context)
    return render(request, "tenants/segmentation.html", context)


@require_POST
@login_required
def node_assign(request: SignedInRequest, cluster_id: int, node: str) -> HttpResponse:
    cluster = or_404(cluster_selectors.cluster_get(user=request.user, pk=cluster_id), "No such cluster.")
    if not policy.can(request.user, "operate", cluster):
        raise PermissionDenied("Only operators can assign nodes.")  # before the form: its errors are for operators
    form = AssignNodeForm(request.POST, cluster=cluster)
    try:
        if not form.is_valid():
            raise ValidationError({"tenant": "Pick a dedicated-nodes tenant allowed on this cluster."})
        services.node_assign(cluster=cluster, node=node, tenant=form.cleaned_data["tenant"], assigned_by=request.user)
        messages.success(request, f"Node {node} assigned to {form.cleaned_data['tenant'].name}.")
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    return redirect("clusters:detail", pk=cluster_id)


@require_POST
@login_required
def node_release(request: SignedInRequest, cluster_id: int, node: str) -> HttpResponse:
    cluster = or_404(cluster_selectors.cluster_get(user=request.user, pk=cluster_id), "No such cluster.")
    if not policy.can(request.user, "operate", cluster):
        raise PermissionDenied("Only operators can release nodes.")
    try:
        services.node_release(cluster=cluster, node=node, released_by=request.user)
        messages.success(request, f"Node {node} released.")
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    return redirect("clusters:detail", pk=cluster_id)
