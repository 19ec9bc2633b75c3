from __future__ import annotations

import pytest

from tenants.services import namespace_create, tenant_create


@pytest.fixture
def acme(db, registered, operator):
    """Tenant acme-bank (shared) allowed on the registered sandbox cluster."""
    from tenants.models import Tenant

    existing = Tenant.objects.filter(name="acme-bank").first()
    if existing is not None:
        existing.clusters.add(registered)
        existing.ingress_from_namespaces = ["ingress-nginx"]
        existing.save()
        return existing
    return tenant_create(name="acme-bank", created_by=operator, clusters=[registered], ingress_from_namespaces=["ingress-nginx"])


@pytest.fixture
def globex(db, registered, operator):
    """Tenant globex-insurance (dedicated nodes) allowed on the same cluster."""
    from tenants.models import Tenant

    existing = Tenant.objects.filter(name="globex-insurance").first()
    if existing is not None:
        existing.clusters.add(registered)
        existing.isolation = "dedicated-nodes"
        existing.save()
        return existing
    return tenant_create(name="globex-insurance", created_by=operator, clusters=[registered], isolation="dedicated-nodes")


@pytest.fixture
def make_namespace(operator, django_capture_on_commit_callbacks):
    def make(tenant, cluster, name, user=None):
        with django_capture_on_commit_callbacks(execute=False):
            return namespace_create(tenant=tenant, cluster=cluster, name=name, created_by=user or operator)

    return make
