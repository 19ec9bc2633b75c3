"""Access rules for upgrade plans and rollouts (see pksweb.policy)."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet

from pksweb.choices import Role
from pksweb.policy import Access, is_operator, is_platform, register
from upgrades.models import Rollout, UpgradePlan


@register(UpgradePlan)
class UpgradePlanAccess(Access):
    """Who may see, write, approve and start upgrade plans.

    - The platform team (operators, approvers, viewers) sees every plan; tenants see none.
    - Operators write, edit, submit and start plans (inside their window).
    - Approvers approve or reject — never a plan they wrote — and may start an approved
      plan outside its window, giving a reason that is recorded.
    """

    def can_view(self, user: Any, plan: Any) -> bool:
        return is_platform(user)

    def can_create(self, user: Any, _model: Any) -> bool:
        return is_operator(user)

    def can_operate(self, user: Any, plan: Any) -> bool:
        return is_operator(user)

    def can_approve(self, user: Any, plan: Any) -> bool:
        return is_platform(user) and user.role == Role.APPROVER

    def restrict_view(self, user: Any, queryset: QuerySet[UpgradePlan]) -> QuerySet[UpgradePlan]:
        return queryset if is_platform(user) else queryset.none()


@register(Rollout)
class RolloutAccess(Access):
    """Rollouts are seen by the platform team; operators pause, resume and abort them."""

    def can_view(self, user: Any, rollout: Any) -> bool:
        return is_platform(user)

    def can_operate(self, user: Any, rollout: Any) -> bool:
        return is_operator(user)

    def restrict_view(self, user: Any, queryset: QuerySet[Rollout]) -> QuerySet[Rollout]:
        return queryset if is_platform(user) else queryset.none()
