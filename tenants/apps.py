from django.apps import AppConfig


class TenantsConfig(AppConfig):
    name = "tenants"

    def ready(self) -> None:
        from pksweb import policy, tenancy
        from tenants import access  # noqa: F401
        from tenants.selectors import landing_tenant, member_tenant_ids, member_tenant_names, membership_rows

        policy.memberships_from(member_tenant_ids, membership_rows)
        tenancy.tenancy_from(landing=landing_tenant, names=member_tenant_names)
