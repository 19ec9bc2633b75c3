"""HTML fragments the fleet and cluster pages swap in when a cluster event arrives."""

from __future__ import annotations

from django.template.loader import render_to_string

from clusters import hooks, selectors
from clusters.forms import NodeOperationForm
from clusters.rows import render_one
from pksweb import policy
from pksweb.models import Event
from pksweb.types import AnyUser

STATUS_KINDS = {"cluster.status_changed", "cluster.version_changed", "cluster.registered", "cluster.updated",
                "cluster.node_ready_changed", "cluster.nodes_changed"}
NODE_KINDS = {"cluster.node_ready_changed", "cluster.nodes_changed", "cluster.status_changed", "cluster.operation_finished", "cluster.registered",
              "tenant.node_assigned", "tenant.node_released"}


def fleet_fragments(cluster_id: int, user: AnyUser, *, new: bool = False) -> list[str]:
    """Messages: the cluster's fleet row (or its removal), then the fleet counts; ``new`` rows are inserted.

    Rows go in messages of their own, each starting with its table part, so the browser parses them as rows.
    """
    clusters = selectors.cluster_scope(user=user)
    counts = render_to_string("clusters/_counts.html", {"counts": selectors.fleet_counts(clusters), "oob": True})
    if new:
        row = render_one(cluster_id, clusters)
        if row is None:
            return [counts]
        # Upsert: drop the row if the page has it, then put the fresh one on top of the table.
        return [f'<tr id="cluster-{cluster_id}" hx-swap-oob="delete"></tr>',
                f'<tbody hx-swap-oob="afterbegin:#fleet-rows">{row}</tbody>', counts]
    row = render_one(cluster_id, clusters, oob=True)
    if row is None:
        return [f'<tr id="cluster-{cluster_id}" hx-swap-oob="delete"></tr>', counts]
    return [row, counts]


def cluster_fragments(event: Event, cluster_id: int, user: AnyUser) -> str:
    """For the cluster page: the event row, and the sections the event changed."""
    parts: list[str] = [render_to_string("pksweb/_event_oob.html", {"event": event})]
    if event.kind == "cluster.deleted":
        parts.append('<section class="card" id="status-card" hx-swap-oob="true"><p class="errorlist">This cluster was removed from pksweb.</p></section>')
        return "".join(parts)
    cluster = selectors.cluster_get(user=user, pk=cluster_id)
    if cluster is None:
        return "".join(parts)
    context = {"cluster": cluster, "oob": True, "can_operate": policy.can(user, "operate", cluster), "op_form": NodeOperationForm()}
    if event.kind in STATUS_KINDS:
        context["health"] = selectors.cluster_health_view(cluster, list(cluster.spans.all()))
        parts.append(render_to_string("clusters/detail.html#status-card", context))
    if event.kind in NODE_KINDS:
        context["nodes"] = selectors.cluster_node_rows(cluster=cluster)
        context["assignable"] = hooks.node_assignable(cluster)
        parts.append(render_to_string("clusters/detail.html#nodes", context))
    if event.kind.startswith("cluster.operation_"):
        context["operations"] = selectors.cluster_operations(user=user, cluster=cluster)
        parts.append(render_to_string("clusters/detail.html#operations", context))
    return "".join(parts)
