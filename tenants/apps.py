from django.apps import AppConfig


class TenantsConfig(AppConfig):
    name = "tenants"

    def ready(self) -> None:
        from clusters import hooks
        from pksweb import policy
        from tenants import access  # noqa: F401
        from tenants.cluster_pages import node_assignable, node_owners
        from tenants.selectors import member_tenant_ids

        policy.memberships_from(member_tenant_ids)
        # The cluster page shows which tenant each dedicated node is given to, and offers the others.
        hooks.on_node_owners(node_owners)
        hooks.on_node_assignable(node_assignable)
