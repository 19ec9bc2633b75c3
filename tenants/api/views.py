from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import PermissionDenied, ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from pksweb import policy
from pksweb.api.permissions import WRITES, PolicyPermission
from tenants import scorecard, selectors, services
from tenants.api.serializers import MemberSerializer, NamespaceSerializer, ScorecardCheckSerializer, TenantSerializer
from tenants.models import Tenant, TenantNamespace


class TenantViewSet(viewsets.ModelViewSet[Tenant]):
    """Tenants and their profiles. Operators change them; members read their own."""

    serializer_class = TenantSerializer
    permission_classes = [PolicyPermission]
    policy_model = Tenant
    policy_actions = WRITES
    http_method_names = ["get", "post", "put", "patch", "delete", "head", "options"]

    def get_queryset(self) -> QuerySet[Tenant]:
        return selectors.tenant_list(user=self.request.user).prefetch_related("clusters")

    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        data = TenantSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        profile, clusters = data.flat()
        tenant = services.tenant_create(created_by=request.user, clusters=clusters or [], **profile)
        return Response(TenantSerializer(self.get_queryset().get(pk=tenant.pk)).data, status=status.HTTP_201_CREATED)

    def update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        tenant = self.get_object()
        data = TenantSerializer(tenant, data=request.data, partial=kwargs.get("partial", False))
        data.is_valid(raise_exception=True)
        profile, clusters = data.flat()
        if profile.pop("name", tenant.name) != tenant.name:
            raise ValidationError({"name": ["A tenant's name cannot change: it labels its objects in the clusters."]})
        services.tenant_update(tenant=tenant, updated_by=request.user, clusters=clusters, **profile)
        return Response(TenantSerializer(self.get_queryset().get(pk=tenant.pk)).data)

    def partial_update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return self.update(request, *args, partial=True, **kwargs)

    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        services.tenant_delete(tenant=self.get_object(), deleted_by=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request=MemberSerializer, responses={200: MemberSerializer(many=True), 201: MemberSerializer})
    @action(detail=True, methods=["get", "post"], permission_classes=[PolicyPermission], policy_actions={},
            pagination_class=None, filter_backends=[])
    def members(self, request: Request, pk: str | None = None) -> Response:
        """The tenant's members; operators add one with ``{"username", "role": "admin"|"viewer"}``."""
        tenant = self.get_object()
        if request.method == "GET":
            return Response([MemberSerializer.of(m) for m in selectors.tenant_members(tenant=tenant)])
        if not policy.can(request.user, "operate", tenant):
            raise PermissionDenied("Only operators can change a tenant's members.")
        data = MemberSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        membership = services.membership_add(tenant=tenant, user=data.validated_data["username"],
                                             role=data.validated_data["role"], added_by=request.user)
        return Response(MemberSerializer.of(membership), status=status.HTTP_201_CREATED)

    @extend_schema(request=None, responses={204: None})
    @action(detail=True, methods=["delete"], url_path=r"members/(?P<username>[^/]+)", policy_actions={})
    def remove_member(self, request: Request, pk: str | None = None, username: str = "") -> Response:
        tenant = self.get_object()
        if not policy.can(request.user, "operate", tenant):
            raise PermissionDenied("Only operators can change a tenant's members.")
        membership = tenant.memberships.select_related("user").filter(user__username=username).first()
        if membership is None:
            raise ValidationError({"username": [f"{username} is not a member of {tenant.name}."]})
        services.membership_remove(tenant=tenant, user=membership.user, removed_by=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(responses={200: ScorecardCheckSerializer(many=True)})
    @action(detail=True, methods=["get"], pagination_class=None, filter_backends=[])
    def scorecard(self, request: Request, pk: str | None = None) -> Response:
        """Isolation checks computed from the clusters' actual objects (platform team)."""
        tenant = self.get_object()
        if not policy.is_platform(request.user):
            raise PermissionDenied("The isolation scorecard is for the platform team.")
        return Response(ScorecardCheckSerializer(scorecard.tenant_scorecard(tenant), many=True).data)


class NamespaceViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin, mixins.DestroyModelMixin,
                       viewsets.GenericViewSet[TenantNamespace]):
    """Tenant namespaces and whether each cluster matches what pksweb wants (``sync_state``)."""

    serializer_class = NamespaceSerializer
    permission_classes = [PolicyPermission]

    def get_queryset(self) -> QuerySet[TenantNamespace]:
        return selectors.namespace_list(user=self.request.user)

    def get_object(self) -> TenantNamespace:
        return get_object_or_404(self.get_queryset(), pk=self.kwargs["pk"])

    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        data = NamespaceSerializer(data=request.data, context={"request": request})
        data.is_valid(raise_exception=True)
        tenant = data.validated_data["tenant"]
        if not policy.can(request.user, "manage", tenant):
            raise PermissionDenied("You may not create namespaces for this tenant.")
        namespace = services.namespace_create(tenant=tenant, cluster=data.validated_data["cluster"],
                                              name=data.validated_data["name"], created_by=request.user)
        return Response(NamespaceSerializer(namespace, context={"request": request}).data, status=status.HTTP_201_CREATED)

    @extend_schema(parameters=[OpenApiParameter("confirm", str, required=True, description="The namespace's name, typed again.")])
    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        namespace = self.get_object()
        if not policy.can(request.user, "manage", namespace):
            raise PermissionDenied("You may not delete this namespace.")
        services.namespace_delete(namespace=namespace, confirm=request.query_params.get("confirm", ""), deleted_by=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request=None, responses={202: None})
    @action(detail=True, methods=["post"])
    def reconcile(self, request: Request, pk: str | None = None) -> Response:
        """Re-apply the namespace's bundle now."""
        namespace = self.get_object()
        if not policy.can(request.user, "manage", namespace):
            raise PermissionDenied("You may not reconcile this namespace.")
        services.namespace_reconcile_request(namespace=namespace, requested_by=request.user)
        return Response({"status": "queued"}, status=status.HTTP_202_ACCEPTED)
