"""The tenants' figures for ``/metrics``, read from the database at each scrape (``pksweb.metrics.collect_from``).

Each tenant's namespaces by sync state: in sync, pending, drifted (the cluster no longer matches the tenant's
profile) or failed. One query, whatever the number of tenants and namespaces.
"""

from __future__ import annotations

from collections.abc import Iterator

from django.db.models import Count
from prometheus_client.core import GaugeMetricFamily, Metric

from tenants.choices import SyncState
from tenants.models import Tenant, TenantNamespace


def namespace_figures() -> Iterator[Metric]:
    family = GaugeMetricFamily("pksweb_tenant_namespaces", "A tenant's namespaces in each sync state (drifted: the "
                               "cluster no longer matches the tenant's profile).", labels=["tenant", "state"])
    counts = {(tenant, state): n for tenant, state, n in TenantNamespace.objects.order_by()
              .values_list("tenant__name", "sync_state").annotate(n=Count("id")).values_list("tenant__name", "sync_state", "n")}
    for tenant in Tenant.objects.order_by("name").values_list("name", flat=True):
        for state in SyncState:
            family.add_metric([tenant, state.value], counts.get((tenant, state.value), 0))
    yield family
