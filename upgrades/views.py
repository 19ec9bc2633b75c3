from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from clusters import selectors as cluster_selectors
from clusters import services as cluster_services
from clusters.access import OPERATORS_ONLY
from pksweb import policy
from pksweb.forms import errors_into
from pksweb.shortcuts import or_404
from pksweb.types import SignedInRequest
from upgrades import rules, selectors, services
from upgrades.access import APPROVERS_ONLY
from upgrades.forms import DecisionForm, DriverForm, PlanForm, StartForm
from upgrades.live import rollout_context
from upgrades.models import UpgradePlan


def _refused(request: SignedInRequest, form: forms.Form, then: HttpResponse) -> HttpResponse:
    """A form posted from another page (a button on the plan or cluster page): say what was wrong there."""
    said = []
    for name, errors in form.errors.items():
        words = " ".join(str(error) for error in errors)
        field = form.fields.get(name)
        said.append(f"{field.label or name.replace('_', ' ').capitalize()}: {words}" if field is not None else words)
    messages.error(request, " ".join(said))
    return then


@require_GET
@login_required
def plan_index(request: SignedInRequest) -> HttpResponse:
    if not policy.is_platform(request.user):
        raise PermissionDenied("Upgrades are the platform team's.")
    return render(request, "upgrades/list.html", {"plans": selectors.plan_list(user=request.user),
                                                  "rollouts": selectors.rollout_list(user=request.user)[:20],
                                                  "can_create": policy.can(request.user, "create", UpgradePlan)})


@require_http_methods(["GET", "POST"])
@login_required
def plan_edit(request: SignedInRequest, pk: int | None = None) -> HttpResponse:
    """Write a plan, or edit one that has not started (approvals are voided)."""
    plan = or_404(selectors.plan_get(user=request.user, pk=pk), "No such plan.") if pk else None
    if not policy.can(request.user, "update" if plan else "create", plan or UpgradePlan):
        raise PermissionDenied("Only operators write upgrade plans.")
    initial = {f: getattr(plan, f) for f in PlanForm.base_fields} if plan else None
    form = PlanForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            if plan:
                plan = services.plan_update(plan=plan, editor=request.user, **form.cleaned_data)
            else:
                plan = services.plan_create(author=request.user, **form.cleaned_data)
        except ValidationError as exc:
            errors_into(form, exc)
        else:
            return redirect("upgrades:plan", pk=plan.pk)
    return render(request, "upgrades/form.html", {"form": form, "plan": plan}, status=400 if form.errors else 200)


def plan_context(request: SignedInRequest, plan: UpgradePlan, **extra: Any) -> dict[str, Any]:
    approvals = list(plan.approvals.all())
    return {
        "plan": plan,
        "approvals": approvals,
        "can_operate": policy.can(request.user, "operate", plan),
        "can_approve": policy.can(request.user, "approve", plan) and plan.author_id != request.user.pk,
        "in_window": rules.in_window(plan),
        "decision_form": DecisionForm(initial={"revision": plan.revision}),
        "start_form": StartForm(),
        **extra,
    }


@require_GET
@login_required
def plan_detail(request: SignedInRequest, pk: int) -> HttpResponse:
    plan = or_404(selectors.plan_get(user=request.user, pk=pk), "No such plan.")
    return render(request, "upgrades/plan.html", plan_context(request, plan))


@require_POST
@login_required
def plan_action(request: SignedInRequest, pk: int, action: str) -> HttpResponse:
    """submit, approve, reject, start: the same services the API calls."""
    plan = or_404(selectors.plan_get(user=request.user, pk=pk), "No such plan.")
    try:
        if action == "submit":
            services.plan_submit(plan=plan, by=request.user)
        elif action in ("approve", "reject"):
            policy.require(request.user, "approve", plan, APPROVERS_ONLY)  # who may, before what they sent
            decision = DecisionForm(request.POST)
            if not decision.is_valid():
                return _refused(request, decision, redirect("upgrades:plan", pk=pk))
            services.plan_decide(plan=plan, approver=request.user, decision=action, revision=decision.cleaned_data["revision"],
                                 comment=decision.cleaned_data.get("comment", ""))
            messages.success(request, "Plan approved." if action == "approve" else "Plan rejected.")
        elif action == "start":
            start = StartForm(request.POST)
            start.is_valid()
            rollout = services.plan_start(plan=plan, by=request.user, outside_window_reason=start.cleaned_data.get("outside_window_reason", ""))
            return redirect("upgrades:rollout", pk=rollout.pk)
        else:
            raise Http404("No such action.")
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    return redirect("upgrades:plan", pk=pk)


@require_GET
@login_required
def rollout_detail(request: SignedInRequest, pk: int) -> HttpResponse:
    rollout = or_404(selectors.rollout_get(user=request.user, pk=pk), "No such rollout.")
    return render(request, "upgrades/rollout.html", rollout_context(request.user, rollout))


@require_POST
@login_required
def rollout_action(request: SignedInRequest, pk: int, action: str) -> HttpResponse:
    rollout = or_404(selectors.rollout_get(user=request.user, pk=pk), "No such rollout.")
    actions = {"pause": services.rollout_pause, "resume": services.rollout_resume, "abort": services.rollout_abort}
    if action not in actions:
        raise Http404("No such action.")
    try:
        actions[action](rollout=rollout, by=request.user)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    return redirect("upgrades:rollout", pk=pk)


@require_POST
@login_required
def cluster_driver(request: SignedInRequest, cluster_id: int) -> HttpResponse:
    """Set a cluster's upgrade driver (from the cluster page)."""
    cluster = or_404(cluster_selectors.cluster_get(user=request.user, pk=cluster_id), "No such cluster.")
    policy.require(request.user, "update", cluster, OPERATORS_ONLY)  # who may, before what they sent
    form = DriverForm(request.POST)
    if not form.is_valid():
        return _refused(request, form, redirect("clusters:detail", pk=cluster_id))
    command = (form.cleaned_data.get("upgrade_command") or "").split()
    try:
        cluster_services.cluster_update(cluster=cluster, updated_by=request.user, upgrade_driver=form.cleaned_data.get("upgrade_driver", ""),
                                        upgrade_command=command)
        messages.success(request, "Upgrade driver saved.")
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    return redirect("clusters:detail", pk=cluster_id)
