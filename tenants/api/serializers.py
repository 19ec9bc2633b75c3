from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from clusters.models import Cluster
from pksweb.models import User
from tenants.choices import Isolation, MemberRole, PodSecurity, Reach
from tenants.models import Tenant, TenantMembership, TenantNamespace
from tenants.selectors import tenant_list
from tenants.validators import cidr_list, namespace_list, quantity


def _django(validator: Any) -> Any:
    """A Django validator as a DRF one (same message)."""
    def run(value: Any) -> None:
        try:
            validator(value)
        except DjangoValidationError as exc:
            raise serializers.ValidationError(exc.messages) from None

    return run


class QuotaSerializer(serializers.Serializer[Any]):
    cpu = serializers.CharField(source="quota_cpu", required=False, validators=[_django(quantity)])
    memory = serializers.CharField(source="quota_memory", required=False, validators=[_django(quantity)])
    pods = serializers.CharField(source="quota_pods", required=False, validators=[_django(quantity)])
    storage = serializers.CharField(source="quota_storage", required=False, validators=[_django(quantity)])
    load_balancers = serializers.IntegerField(source="quota_load_balancers", required=False, min_value=0)


class LimitsSerializer(serializers.Serializer[Any]):
    cpu = serializers.CharField(source="limit_cpu", required=False, validators=[_django(quantity)])
    memory = serializers.CharField(source="limit_memory", required=False, validators=[_django(quantity)])
    request_cpu = serializers.CharField(required=False, validators=[_django(quantity)])
    request_memory = serializers.CharField(required=False, validators=[_django(quantity)])


class SegmentationSerializer(serializers.Serializer[Any]):
    allow_same_namespace = serializers.BooleanField(required=False)
    allow_same_tenant = serializers.BooleanField(required=False)
    allow_dns = serializers.BooleanField(required=False)
    ingress_from_namespaces = serializers.ListField(child=serializers.CharField(), required=False, validators=[_django(namespace_list)])
    egress_cidrs = serializers.ListField(child=serializers.CharField(), required=False, validators=[_django(cidr_list)])


class TenantSerializer(serializers.ModelSerializer[Tenant]):
    """A tenant and its profiles. ``clusters`` are cluster ids it may use."""

    isolation = serializers.ChoiceField(choices=Isolation.choices, required=False)
    pod_security = serializers.ChoiceField(choices=PodSecurity.choices, required=False)
    clusters = serializers.PrimaryKeyRelatedField(many=True, queryset=Cluster.objects.all(), required=False)
    quota = QuotaSerializer(source="*", required=False)
    limits = LimitsSerializer(source="*", required=False)
    segmentation = SegmentationSerializer(source="*", required=False)
    member_count = serializers.IntegerField(read_only=True)
    namespace_count = serializers.IntegerField(read_only=True)

    class Meta:
        model = Tenant
        fields = ["id", "name", "display_name", "isolation", "clusters", "max_namespaces", "pod_security", "quota", "limits",
                  "segmentation", "member_count", "namespace_count", "created_at"]
        read_only_fields = ["id", "created_at"]
        extra_kwargs: dict[str, dict[str, Any]] = {"name": {"validators": []}}

    def flat(self) -> tuple[dict[str, Any], list[Cluster] | None]:
        """Validated data as the services take it: profile fields, and the clusters."""
        data = dict(self.validated_data)
        clusters = data.pop("clusters", None)
        return data, clusters


class MemberSerializer(serializers.Serializer[Any]):
    username = serializers.CharField(max_length=150)
    role = serializers.ChoiceField(choices=MemberRole.choices, default=MemberRole.ADMIN)

    def validate_username(self, value: str) -> User:
        user = User.objects.filter(username=value).first()
        if user is None:
            raise serializers.ValidationError(f"No user is called {value!r}.")
        return user

    @staticmethod
    def of(membership: TenantMembership) -> dict[str, str]:
        return {"username": membership.user.get_username(), "role": membership.role}


@extend_schema_field({"oneOf": [{"type": "integer"}, {"type": "string"}], "description": "Tenant id or name"})
class TenantRefField(serializers.Field[Tenant, Any, str, Any]):
    """A tenant by id or by name, among the tenants the user may see."""

    default_error_messages = {"missing": "No such tenant."}

    def to_internal_value(self, data: Any) -> Tenant:
        tenants = tenant_list(user=self.context["request"].user)
        tenant = tenants.filter(pk=data).first() if isinstance(data, int) else tenants.filter(name=str(data)).first()
        if tenant is None:
            self.fail("missing")
        return tenant

    def to_representation(self, value: Tenant) -> str:
        return value.name


class TenantClusterField(serializers.PrimaryKeyRelatedField[Cluster]):
    """A cluster id among the clusters of tenants the user may see: any other id reads "does not exist",
    so a tenant admin learns nothing about clusters that are not their tenant's."""

    def get_queryset(self) -> Any:
        return Cluster.objects.filter(tenants__in=tenant_list(user=self.context["request"].user)).distinct()


class NamespaceSerializer(serializers.ModelSerializer[TenantNamespace]):
    tenant = TenantRefField()
    cluster = TenantClusterField()
    cluster_name = serializers.CharField(source="cluster.name", read_only=True)

    class Meta:
        model = TenantNamespace
        fields = ["id", "tenant", "cluster", "cluster_name", "name", "sync_state", "drift", "error", "last_reconciled_at",
                  "last_checked_at", "created_at"]
        read_only_fields = ["id", "sync_state", "drift", "error", "last_reconciled_at", "last_checked_at", "created_at"]
        extra_kwargs: dict[str, dict[str, Any]] = {"name": {"validators": []}}
        validators: list[Any] = []


class AssignSerializer(serializers.Serializer[Any]):
    tenant = serializers.CharField(help_text="Name of a dedicated-nodes tenant allowed on the cluster.")


class ScorecardCheckSerializer(serializers.Serializer[Any]):
    cluster = serializers.CharField()
    subject = serializers.CharField()
    check = serializers.CharField()
    ok = serializers.BooleanField()
    detail = serializers.CharField()


class SegmentationReasonSerializer(serializers.Serializer[Any]):
    direction = serializers.ChoiceField(choices=["egress", "ingress"],
                                        help_text="egress: the source namespace's side; ingress: the target namespace's side.")
    policy = serializers.CharField(help_text="namespace/name of the NetworkPolicy this comes from; empty when the reason is "
                                             "that no policy or rule applies.")
    rule = serializers.IntegerField(allow_null=True, help_text="1-based index of the rule in the policy's ingress or egress "
                                                               "list; null for isolation and for the absence of a rule.")
    text = serializers.CharField(help_text="The reason in words, with the rule's peers, ports and pod counts.")


REACH_HELP = ("Over the source→target pod pairs: all (every pair may connect), some, or none. About whether any port may be "
              "reachable: port numbers count as reachable, a named port only on pods that declare it. ipBlock peers match "
              "pods by IP. A namespace without pods counts as one hypothetical new pod without labels (no IP, no ports).")


class SegmentationCellSerializer(serializers.Serializer[Any]):
    # A declared field named like a serializer attribute: DRF's metaclass takes it off the class (the stubs cannot say so).
    source = serializers.CharField()  # type: ignore[assignment]
    target = serializers.CharField()
    reach = serializers.ChoiceField(choices=Reach.choices, help_text=REACH_HELP)
    allowed = serializers.BooleanField(help_text="At least one source pod may connect to at least one target pod "
                                                 "(reach is not none); kept for clients written before reach.")
    pairs_allowed = serializers.IntegerField(help_text="Source→target pod pairs that may connect.")
    pairs = serializers.IntegerField(help_text="Source→target pod pairs in all.")
    intended = serializers.BooleanField(allow_null=True, help_text="What pksweb's tenant profiles intend, as allowed "
                                                                   "(intended reach is not none); null where pksweb has no intent.")
    intended_reach = serializers.ChoiceField(choices=Reach.choices, allow_null=True,
                                             help_text="The reach pksweb's tenant profiles intend; null where it has no intent.")
    drift = serializers.BooleanField(help_text="The actual reach differs from the intended reach.")
    summary = serializers.CharField(help_text="The verdict in one sentence.")
    symbol = serializers.CharField(help_text="✓ all, ◐ some, ✕ none.")
    reasons = SegmentationReasonSerializer(many=True, help_text="The source's egress side, then the target's ingress side: "
                                                                "isolating policies and the rules that allow traffic.")


class SegmentationSerializerOut(serializers.Serializer[Any]):
    namespaces = serializers.ListField(child=serializers.CharField())
    pods = serializers.DictField(child=serializers.IntegerField(), help_text="Pods per namespace, finished ones (Succeeded, Failed) left out "
                                 "(0: evaluated for a hypothetical new pod without labels).")
    cells = SegmentationCellSerializer(many=True)
    partial = serializers.ListField(  # type: ignore[assignment]  # a declared field, as ``source`` above
        child=serializers.CharField(), help_text="Policies that select only some pods of their namespace (evaluated pod by pod; "
                                                 "listed for reference).")
    error = serializers.CharField()
