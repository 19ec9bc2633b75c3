"""Access rules for clusters and node operations (see pksweb.policy)."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet

from clusters.models import Cluster, NodeOperation
from pksweb.policy import Access, is_operator, is_platform, register


@register(Cluster)
class ClusterAccess(Access):
    """Who may see and change clusters.

    - Operators, approvers and viewers can see every cluster, its health and nodes.
    - Tenant admins see no cluster here (their namespaces come with the tenants pages).
    - Only an operator can register, edit, delete or probe a cluster, or start a
      node operation on it (``operate``, ``create``).
    """

    def can_view(self, user: Any, cluster: Any) -> bool:
        return is_platform(user)

    def can_operate(self, user: Any, cluster: Any) -> bool:
        return is_operator(user)

    def can_create(self, user: Any, _model: Any) -> bool:
        return is_operator(user)

    def restrict_view(self, user: Any, queryset: QuerySet[Cluster]) -> QuerySet[Cluster]:
        return queryset if is_platform(user) else queryset.none()


@register(NodeOperation)
class NodeOperationAccess(Access):
    """Node operations are seen by whoever may see their cluster; only operators start them."""

    def can_view(self, user: Any, operation: NodeOperation) -> bool:
        return is_platform(user)

    def can_create(self, user: Any, _model: Any) -> bool:
        return is_operator(user)

    def restrict_view(self, user: Any, queryset: QuerySet[NodeOperation]) -> QuerySet[NodeOperation]:
        return queryset if is_platform(user) else queryset.none()
