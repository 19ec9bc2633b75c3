"""Demo data for the embedded mode: tenants and one user per role.

``demo_seed`` is idempotent: running it again creates nothing new and changes no
password someone has since set.
"""

from __future__ import annotations

from django.db import transaction

from clusters.models import Cluster
from pksweb.choices import Role
from pksweb.events import publish
from pksweb.models import User
from tenants.models import Tenant
from tenants.services import tenant_create, user_create_in_tenants

DEMO_TENANTS = [("acme-bank", "ACME Bank", "shared"), ("globex-insurance", "Globex Insurance", "dedicated-nodes")]
# (username, password, role, tenants): listed in the README.
DEMO_USERS = [
    ("operator", "operator-demo", Role.OPERATOR, []),
    ("approver", "approver-demo", Role.APPROVER, []),
    ("acme-admin", "acme-admin-demo", Role.TENANT_ADMIN, ["acme-bank"]),
    ("viewer", "viewer-demo", Role.VIEWER, []),
]


@transaction.atomic
def demo_seed() -> list[str]:
    """Create what is missing of the demo data; returns what was created."""
    created: list[str] = []
    for name, display, isolation in DEMO_TENANTS:
        if not Tenant.objects.filter(name=name).exists():
            tenant_create(name=name, display_name=display, isolation=isolation, created_by=None,
                          ingress_from_namespaces=["ingress-nginx"])
            created.append(f"tenant {name}")
    for username, password, role, tenant_names in DEMO_USERS:
        if User.objects.filter(username=username).exists():
            continue
        user_create_in_tenants(
            username=username,
            role=role,
            password=password,
            tenants=Tenant.objects.filter(name__in=tenant_names),
            check_password=False,
        )
        created.append(f"user {username}")
    if created:
        publish(kind="system.seeded", message=f"Demo data created: {', '.join(created)}")
    return created


def demo_attach_clusters(clusters: list[Cluster]) -> None:
    """Let the demo tenants use the demo clusters (only if an operator has not set them already)."""
    for tenant in Tenant.objects.filter(name__in=[name for name, _, _ in DEMO_TENANTS]):
        if not tenant.clusters.exists():
            tenant.clusters.set(clusters)
