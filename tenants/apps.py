from django.apps import AppConfig


class TenantsConfig(AppConfig):
    name = "tenants"

    def ready(self) -> None:
        from pksweb import policy
        from tenants import access  # noqa: F401
        from tenants.selectors import member_tenant_ids

        policy.memberships_from(member_tenant_ids)
