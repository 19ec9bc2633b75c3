"""The tenants' part of a cluster in the API: its segmentation matrix, and dedicated nodes given and taken back.

Served under the cluster's own paths (``/api/clusters/<id>/segmentation/``, ``…/nodes/<node>/assign/``,
``…/nodes/<node>/release/``), routed beside the clusters' API in ``pksweb.api.urls``.
"""

from __future__ import annotations

from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from clusters import selectors as cluster_selectors
from clusters.api.serializers import ClusterSerializer
from clusters.models import Cluster
from pksweb.api.permissions import PolicyPermission
from tenants import selectors, services
from tenants.api.serializers import AssignSerializer, SegmentationSerializerOut
from tenants.segmentation import cluster_segmentation


class ClusterTenancyViewSet(viewsets.GenericViewSet[Cluster]):
    """A cluster's segmentation and dedicated nodes. Whoever may see the cluster reads; operators change."""

    # OPTIONS describes the cluster, as it did when these actions sat on the clusters' own viewset.
    serializer_class = ClusterSerializer
    permission_classes = [PolicyPermission]
    policy_model = Cluster
    policy_actions = {"POST": "create"}

    def get_queryset(self) -> QuerySet[Cluster]:
        return cluster_selectors.cluster_list(user=self.request.user)

    @extend_schema(responses={200: SegmentationSerializerOut}, parameters=[
        OpenApiParameter("source", str, description="Only the cells from this namespace."),
        OpenApiParameter("target", str, description="Only the cells to this namespace.")])
    @action(detail=True, methods=["get"])
    def segmentation(self, request: Request, pk: str | None = None) -> Response:
        """Which namespaces' pods can open connections to which, pod by pod from the cluster's actual NetworkPolicies:
        each cell reads all, some or none of the pod pairs, with the policies and rules responsible."""
        matrix = cluster_segmentation(self.get_object())
        cells = matrix.cells(source=request.query_params.get("source", ""), target=request.query_params.get("target", ""))
        return Response({"namespaces": matrix.namespaces, "pods": matrix.pods, "cells": cells, "partial": matrix.partial,
                         "error": matrix.error})

    @extend_schema(request=AssignSerializer, responses={200: AssignSerializer})
    @action(detail=True, methods=["post"], url_path=r"nodes/(?P<node>[^/]+)/assign")
    def node_assign(self, request: Request, pk: str | None = None, node: str = "") -> Response:
        """Give a node to a dedicated-nodes tenant (labelled and tainted for it)."""
        cluster = self.get_object()
        data = AssignSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        tenant = selectors.tenant_get_by_name(name=data.validated_data["tenant"])
        if tenant is None:
            raise ValidationError({"tenant": ["No such tenant."]})
        services.node_assign(cluster=cluster, node=node, tenant=tenant, assigned_by=request.user)
        return Response({"node": node, "tenant": tenant.name})

    @extend_schema(request=None, responses={200: None})
    @action(detail=True, methods=["post"], url_path=r"nodes/(?P<node>[^/]+)/release")
    def node_release(self, request: Request, pk: str | None = None, node: str = "") -> Response:
        """Take a node back from its tenant (refused while the tenant's pods run there)."""
        services.node_release(cluster=self.get_object(), node=node, released_by=request.user)
        return Response({"node": node, "tenant": None})
