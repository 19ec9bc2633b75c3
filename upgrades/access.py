"""Access rules for upgrade plans and rollouts (see pksweb.policy)."""

from __future__ import annotations

from django.db.models import QuerySet

from pksweb.choices import Role
from pksweb.models import User
from pksweb.policy import Access, is_operator, is_platform, register
from pksweb.types import AnyUser
from upgrades.models import Rollout, UpgradePlan

# The words of a refusal the services and the pages both give.
APPROVERS_ONLY = "Only approvers sign off upgrade plans."

Plan = UpgradePlan | type[UpgradePlan]  # one plan, or the model (writing a new one)


@register(UpgradePlan)
class UpgradePlanAccess(Access[UpgradePlan]):
    """Who may see, write, approve and start upgrade plans.

    - The platform team (operators, approvers, viewers) sees every plan; tenants see none.
    - Operators write, edit, delete, submit and start plans (inside their window).
    - Approvers approve or reject — never a plan they wrote — and may start an approved
      plan outside its window, giving a reason that is recorded.
    """

    def can_view(self, user: AnyUser, plan: Plan) -> bool:
        return is_platform(user)

    def can_create(self, user: AnyUser, _model: Plan) -> bool:
        return is_operator(user)

    def can_update(self, user: AnyUser, plan: Plan) -> bool:
        return is_operator(user)

    def can_delete(self, user: AnyUser, plan: Plan) -> bool:
        return is_operator(user)

    def can_operate(self, user: AnyUser, plan: Plan) -> bool:
        return is_operator(user)

    def can_approve(self, user: AnyUser, plan: Plan) -> bool:
        return isinstance(user, User) and is_platform(user) and user.role == Role.APPROVER

    def restrict_view(self, user: AnyUser, queryset: QuerySet[UpgradePlan]) -> QuerySet[UpgradePlan]:
        return queryset if is_platform(user) else queryset.none()


@register(Rollout)
class RolloutAccess(Access[Rollout]):
    """Rollouts are seen by the platform team; operators pause, resume and abort them."""

    def can_view(self, user: AnyUser, rollout: Rollout | type[Rollout]) -> bool:
        return is_platform(user)

    def can_operate(self, user: AnyUser, rollout: Rollout | type[Rollout]) -> bool:
        return is_operator(user)

    def restrict_view(self, user: AnyUser, queryset: QuerySet[Rollout]) -> QuerySet[Rollout]:
        return queryset if is_platform(user) else queryset.none()
