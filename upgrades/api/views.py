from __future__ import annotations

from typing import Any, Protocol

from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from pksweb.api.permissions import WRITES, PolicyPermission
from pksweb.types import AnyUser
from upgrades import selectors, services
from upgrades.api.serializers import DecisionSerializer, PlanSerializer, RolloutSerializer, StartSerializer
from upgrades.models import Rollout, UpgradePlan


class PlanViewSet(viewsets.ModelViewSet[UpgradePlan]):
    """Upgrade plans: written and edited by operators while not started, approved by approvers."""

    serializer_class = PlanSerializer
    permission_classes = [PolicyPermission]
    policy_model = UpgradePlan
    policy_actions = WRITES
    http_method_names = ["get", "post", "put", "patch", "delete", "head", "options"]

    def get_queryset(self) -> QuerySet[UpgradePlan]:
        return selectors.plan_list(user=self.request.user)

    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        data = PlanSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        plan = services.plan_create(author=request.user, **data.validated_data)
        return Response(PlanSerializer(plan).data, status=status.HTTP_201_CREATED)

    def update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        plan = self.get_object()
        data = PlanSerializer(plan, data=request.data, partial=kwargs.get("partial", False))
        data.is_valid(raise_exception=True)
        plan = services.plan_update(plan=plan, editor=request.user, **data.validated_data)
        return Response(PlanSerializer(plan).data)

    def partial_update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return self.update(request, *args, partial=True, **kwargs)

    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        services.plan_delete(plan=self.get_object(), deleted_by=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request=None, responses={200: PlanSerializer})
    @action(detail=True, methods=["post"], policy_actions={"POST": "operate"})
    def submit(self, request: Request, pk: str | None = None) -> Response:
        plan = services.plan_submit(plan=self.get_object(), by=request.user)
        return Response(PlanSerializer(plan).data)

    @extend_schema(request=DecisionSerializer, responses={200: PlanSerializer})
    @action(detail=True, methods=["post"], policy_actions={"POST": "approve"})
    def approve(self, request: Request, pk: str | None = None) -> Response:
        data = DecisionSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        plan = services.plan_decide(plan=self.get_object(), approver=request.user, decision="approve", **data.validated_data)
        return Response(PlanSerializer(plan).data)

    @extend_schema(request=DecisionSerializer, responses={200: PlanSerializer})
    @action(detail=True, methods=["post"], policy_actions={"POST": "approve"})
    def reject(self, request: Request, pk: str | None = None) -> Response:
        data = DecisionSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        plan = services.plan_decide(plan=self.get_object(), approver=request.user, decision="reject", **data.validated_data)
        return Response(PlanSerializer(plan).data)

    @extend_schema(request=StartSerializer, responses={201: RolloutSerializer})
    @action(detail=True, methods=["post"], policy_actions={})
    def start(self, request: Request, pk: str | None = None) -> Response:
        """Start the approved plan; answers with the rollout (its ``id``)."""
        data = StartSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        rollout = services.plan_start(plan=self.get_object(), by=request.user, **data.validated_data)
        return Response(RolloutSerializer(rollout).data, status=status.HTTP_201_CREATED)


class RolloutAction(Protocol):
    """A rollout service the API calls: pause, resume or abort."""

    def __call__(self, *, rollout: Rollout, by: AnyUser | None) -> Rollout: ...


class RolloutViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet[Rollout]):
    """Rollouts: state, reason and every node step with its phase and log."""

    serializer_class = RolloutSerializer
    permission_classes = [PolicyPermission]
    policy_model = Rollout
    policy_actions: dict[str, str] = {}

    def get_queryset(self) -> QuerySet[Rollout]:
        return selectors.rollout_list(user=self.request.user).prefetch_related("steps__cluster")

    def _act(self, fn: RolloutAction) -> Response:
        rollout = fn(rollout=self.get_object(), by=self.request.user)
        return Response(RolloutSerializer(self.get_queryset().get(pk=rollout.pk)).data)

    @extend_schema(request=None, responses={200: RolloutSerializer})
    @action(detail=True, methods=["post"], policy_actions={"POST": "operate"})
    def pause(self, request: Request, pk: str | None = None) -> Response:
        return self._act(services.rollout_pause)

    @extend_schema(request=None, responses={200: RolloutSerializer})
    @action(detail=True, methods=["post"], policy_actions={"POST": "operate"})
    def resume(self, request: Request, pk: str | None = None) -> Response:
        return self._act(services.rollout_resume)

    @extend_schema(request=None, responses={200: RolloutSerializer})
    @action(detail=True, methods=["post"], policy_actions={"POST": "operate"})
    def abort(self, request: Request, pk: str | None = None) -> Response:
        return self._act(services.rollout_abort)
