from django.apps import AppConfig


class TenantsConfig(AppConfig):
    name = "tenants"

    def ready(self) -> None:
        from clusters import hooks
        from pksweb import policy, tenancy
        from pksweb.metrics import collect_from
        from tenants import access  # noqa: F401
        from tenants.cluster_pages import node_assignable, node_owners
        from tenants.metrics import namespace_figures
        from tenants.selectors import landing_tenant, member_tenant_ids, member_tenant_names, membership_rows
        from tenants.services import membership_sync

        policy.memberships_from(member_tenant_ids, membership_rows)
        tenancy.tenancy_from(landing=landing_tenant, names=member_tenant_names)
        # Single sign-on sets a person's memberships from their groups at every sign-in.
        tenancy.memberships_sync_from(membership_sync)
        # The cluster page shows which tenant each dedicated node is given to, and offers the others.
        hooks.on_node_owners(node_owners)
        hooks.on_node_assignable(node_assignable)
        # /metrics reports each tenant's namespaces by sync state (drifted ones among them).
        collect_from(namespace_figures)
