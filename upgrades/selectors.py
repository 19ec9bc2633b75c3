"""Reads of upgrades for a person, scoped by the policy."""

from __future__ import annotations

from django.db.models import QuerySet

from pksweb import policy
from pksweb.types import AnyUser
from upgrades.choices import ACTIVE_ROLLOUT
from upgrades.models import Rollout, RolloutStep, UpgradePlan


def plan_list(*, user: AnyUser) -> QuerySet[UpgradePlan]:
    return policy.restrict(user, UpgradePlan.objects.prefetch_related("approvals", "rollouts"))


def plan_get(*, user: AnyUser, pk: int) -> UpgradePlan | None:
    return plan_list(user=user).filter(pk=pk).first()


def rollout_list(*, user: AnyUser) -> QuerySet[Rollout]:
    return policy.restrict(user, Rollout.objects.select_related("plan"))


def rollout_get(*, user: AnyUser, pk: int) -> Rollout | None:
    return rollout_list(user=user).filter(pk=pk).first()


def rollout_steps(*, rollout: Rollout) -> QuerySet[RolloutStep]:
    return RolloutStep.objects.filter(rollout=rollout).select_related("cluster").order_by("order")


def clusters_upgrading() -> dict[int, int]:
    """Cluster id → id of the active rollout upgrading it (for the fleet page)."""
    return dict(RolloutStep.objects.filter(rollout__state__in=ACTIVE_ROLLOUT).values_list("cluster_id", "rollout_id").distinct())
