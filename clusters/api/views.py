from __future__ import annotations

from typing import Any, TypeVar

from django.db.models import QuerySet
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from clusters import operations, selectors, services, sweep
from clusters.api.serializers import (
    ClusterHealthSerializer,
    ClusterSerializer,
    ClusterUpdateSerializer,
    ClusterWriteSerializer,
    NodeSerializer,
    OperationRequestSerializer,
    OperationSerializer,
)
from clusters.filters import ClusterFilter
from clusters.models import Cluster, NodeOperation
from pksweb import policy
from pksweb.api.permissions import WRITES, PolicyPermission

Row = TypeVar("Row")


class ClusterViewSet(viewsets.ModelViewSet[Cluster]):
    """Registered clusters and their health. Viewers read; operators change."""

    serializer_class = ClusterSerializer
    permission_classes = [PolicyPermission]
    policy_model = Cluster
    policy_actions = WRITES
    filterset_class = ClusterFilter
    http_method_names = ["get", "post", "put", "patch", "delete", "head", "options"]

    def get_queryset(self) -> QuerySet[Cluster]:
        return selectors.cluster_list(user=self.request.user)

    def filter_queryset(self, queryset: QuerySet[Cluster, Row]) -> QuerySet[Cluster, Row]:
        """The fleet's filters (?name=, ?status=) choose clusters in the list; one cluster's own answers
        (its nodes, health, operations) ignore them, as their schema says."""
        return super().filter_queryset(queryset) if self.action == "list" else queryset

    @extend_schema(request=ClusterWriteSerializer, responses={201: ClusterSerializer})
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        data = ClusterWriteSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        given = data.validated_data["credential_input"]
        cluster = services.cluster_register(name=data.validated_data["name"], credential=given.credential,
                                            context=given.context, created_by=request.user, credential_field=given.field)
        return Response(ClusterSerializer(cluster).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=ClusterUpdateSerializer, responses={200: ClusterSerializer})
    def update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        cluster = self.get_object()
        data = ClusterUpdateSerializer(data=request.data, partial=kwargs.get("partial", False))
        data.is_valid(raise_exception=True)
        given = data.validated_data.get("credential_input")
        cluster = services.cluster_update(cluster=cluster, updated_by=request.user, name=data.validated_data.get("name"),
                                          credential=given.credential if given else None,
                                          context=given.context if given else None,
                                          credential_field=given.field if given else "kubeconfig",
                                          upgrade_driver=data.validated_data.get("upgrade_driver"),
                                          upgrade_command=data.validated_data.get("upgrade_command"))
        return Response(ClusterSerializer(cluster).data)

    @extend_schema(request=ClusterUpdateSerializer, responses={200: ClusterSerializer})
    def partial_update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return self.update(request, *args, partial=True, **kwargs)

    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        services.cluster_delete(cluster=self.get_object(), deleted_by=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(responses={200: ClusterHealthSerializer})
    @action(detail=True, methods=["get"])
    def health(self, request: Request, pk: str | None = None) -> Response:
        """Current status, 24 h / 7 d availability and the status history of the last 7 days."""
        cluster = self.get_object()
        spans = selectors.cluster_spans(cluster=cluster)
        view = selectors.cluster_health_view(cluster, spans)
        return Response(ClusterHealthSerializer({"cluster": cluster, "availability_24h": view.availability_day,
                                                 "availability_7d": view.availability_week, "history": spans}).data)

    @extend_schema(responses={200: NodeSerializer(many=True)}, filters=False)
    @action(detail=True, methods=["get"], pagination_class=None)  # one whole list (the schema reads this)
    def nodes(self, request: Request, pk: str | None = None) -> Response:
        """Nodes as of the last probe, all of them in one list."""
        return Response(NodeSerializer(selectors.cluster_nodes(cluster=self.get_object()), many=True).data)

    @extend_schema(request=None, responses={200: ClusterSerializer})
    @action(detail=True, methods=["post"], permission_classes=[PolicyPermission])
    def probe(self, request: Request, pk: str | None = None) -> Response:
        """Probe the cluster now and return what it showed (operators)."""
        cluster = self.get_object()
        return Response(ClusterSerializer(sweep.cluster_probe(cluster=cluster)).data)

    @extend_schema(request=OperationRequestSerializer, responses={202: OperationSerializer})
    @action(detail=True, methods=["post"], url_path=r"nodes/(?P<node>[^/]+)/(?P<kind>(?:cordon|uncordon|drain))")
    def node_operation(self, request: Request, pk: str | None = None, node: str = "", kind: str = "") -> Response:
        """Cordon, uncordon or drain a node (operators); returns the queued operation."""
        cluster = self.get_object()
        data = OperationRequestSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        operation = operations.node_operation_start(cluster=cluster, node=node, kind=kind, requested_by=request.user,
                                                    timeout_seconds=data.validated_data.get("timeout_seconds"))
        return Response(OperationSerializer(operation).data, status=status.HTTP_202_ACCEPTED)


class OperationViewSet(mixins.RetrieveModelMixin, mixins.ListModelMixin, viewsets.GenericViewSet[NodeOperation]):
    """Node operations: state, progress and the final report."""

    serializer_class = OperationSerializer
    permission_classes = [PolicyPermission]

    def get_queryset(self) -> QuerySet[NodeOperation]:
        return policy.restrict(self.request.user, NodeOperation.objects.all())

    def get_object(self) -> NodeOperation:
        return get_object_or_404(self.get_queryset(), pk=self.kwargs["pk"])
