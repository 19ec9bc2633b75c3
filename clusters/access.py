"""Access rules for clusters and node operations (see pksweb.policy)."""

from __future__ import annotations

from django.db.models import QuerySet

from clusters.models import Cluster, NodeOperation
from pksweb.policy import Access, is_operator, is_platform, register
from pksweb.types import AnyUser

# What a person who may not change a cluster is told (services and pages alike).
OPERATORS_ONLY = "Only operators can change clusters."


@register(Cluster)
class ClusterAccess(Access[Cluster]):
    """Who may see and change clusters.

    - Operators, approvers and viewers can see every cluster, its health and nodes.
    - Tenant admins see no cluster here (their namespaces come with the tenants pages).
    - Only an operator can register (``create``), edit (``update``), remove (``delete``) or probe a
      cluster, or start a node operation on it (``operate``).
    """

    def can_view(self, user: AnyUser, cluster: Cluster) -> bool:
        return is_platform(user)

    def can_operate(self, user: AnyUser, cluster: Cluster | type[Cluster]) -> bool:
        return is_operator(user)

    def can_create(self, user: AnyUser, _model: type[Cluster]) -> bool:
        return is_operator(user)

    def can_update(self, user: AnyUser, cluster: Cluster | type[Cluster]) -> bool:
        return is_operator(user)

    def can_delete(self, user: AnyUser, cluster: Cluster | type[Cluster]) -> bool:
        return is_operator(user)

    def restrict_view(self, user: AnyUser, queryset: QuerySet[Cluster]) -> QuerySet[Cluster]:
        return queryset if is_platform(user) else queryset.none()


@register(NodeOperation)
class NodeOperationAccess(Access[NodeOperation]):
    """Node operations are seen by whoever may see their cluster; only operators start them."""

    def can_view(self, user: AnyUser, operation: NodeOperation) -> bool:
        return is_platform(user)

    def can_create(self, user: AnyUser, _model: type[NodeOperation]) -> bool:
        return is_operator(user)

    def restrict_view(self, user: AnyUser, queryset: QuerySet[NodeOperation]) -> QuerySet[NodeOperation]:
        return queryset if is_platform(user) else queryset.none()
