from __future__ import annotations

from typing import Any, cast

from django import forms

from clusters.models import Cluster
from pksweb.fields import IdChoiceField, IdsChoiceField
from tenants.choices import MemberRole
from tenants.models import Tenant
from tenants.selectors import assignable_tenants


class ListField(forms.Field):
    """Comma- or line-separated values as a list."""

    def to_python(self, value: Any) -> list[str]:
        text = "" if value in self.empty_values else str(value).strip()
        return [part.strip() for part in text.replace("\n", ",").split(",") if part.strip()]

    def prepare_value(self, value: Any) -> str:
        return ", ".join(value) if isinstance(value, list) else (value or "")


class TenantForm(forms.ModelForm):  # type: ignore[type-arg]  # no type argument at run time
    clusters = IdsChoiceField(queryset=Cluster.objects.order_by("name"), required=False,
                                              widget=forms.CheckboxSelectMultiple)
    ingress_from_namespaces = ListField(required=False, help_text="Namespaces allowed to open connections in, e.g. ingress-nginx.")
    egress_cidrs = ListField(required=False, help_text="Networks pods may reach outside the cluster, e.g. 10.20.0.0/16.")

    class Meta:
        model = Tenant
        fields = ["name", "display_name", "isolation", "clusters", "max_namespaces", "pod_security", "quota_cpu",
                  "quota_memory", "quota_pods", "quota_storage", "quota_load_balancers", "limit_cpu", "limit_memory",
                  "request_cpu", "request_memory", "allow_same_namespace", "allow_same_tenant", "allow_dns",
                  "ingress_from_namespaces", "egress_cidrs"]


class NamespaceForm(forms.Form):
    cluster = IdChoiceField(queryset=Cluster.objects.none(), empty_label=None)
    name = forms.CharField(max_length=100, widget=forms.TextInput(attrs={"placeholder": "e.g. payments-prod"}))

    def __init__(self, *args: Any, tenant: Tenant, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        cast(IdChoiceField, self.fields["cluster"]).queryset = tenant.clusters.order_by("name")


class MemberForm(forms.Form):
    username = forms.CharField(max_length=150)
    role = forms.ChoiceField(choices=MemberRole.choices)


class DeleteNamespaceForm(forms.Form):
    confirm = forms.CharField(max_length=100, required=False, label="Type the namespace's name to delete it")


class AssignNodeForm(forms.Form):
    tenant = IdChoiceField(queryset=Tenant.objects.none(), empty_label=None)

    def __init__(self, *args: Any, cluster: Cluster, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        cast(IdChoiceField, self.fields["tenant"]).queryset = assignable_tenants(cluster=cluster)
