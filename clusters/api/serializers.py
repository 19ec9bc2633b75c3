from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import serializers

from clusters.choices import UpgradeDriver
from clusters.credentials import credential_from_input
from clusters.models import Cluster, ClusterNode, HealthSpan, NodeOperation


class ClusterSerializer(serializers.ModelSerializer[Cluster]):
    """A cluster as read back: never its credential."""

    probe_stale = serializers.BooleanField(read_only=True, help_text="No probe for three sweep intervals (90 s at least): the "
                                                                      "status may no longer hold.")

    class Meta:
        model = Cluster
        fields = ["id", "name", "server", "context", "status", "reasons", "version", "nodes_ready", "nodes_total",
                  "warnings", "last_probe_at", "last_probe_ms", "status_since", "created_at", "upgrade_driver", "upgrade_command",
                  "probe_stale"]
        read_only_fields = fields


# The parts of a credential that mean nothing without one (a server and a token, or a kubeconfig).
PARTS = ("context", "ca_data", "insecure_skip_tls_verify")


class ClusterWriteSerializer(serializers.Serializer[dict[str, Any]]):
    """Register or edit: a name and a kubeconfig (+ context) or server + token (+ CA)."""

    name = serializers.CharField(max_length=63)
    kubeconfig = serializers.CharField(required=False, allow_blank=True, write_only=True, trim_whitespace=False,
                                       help_text="A kubeconfig with inline credentials (no exec/auth-provider plugins, no file paths).")
    # DRF takes declared fields off the class, so this does not hide Field.context (the stubs cannot know).
    context = serializers.CharField(required=False, allow_blank=True, help_text="Context to use when the kubeconfig has several.")  # type: ignore[assignment]
    server = serializers.CharField(required=False, allow_blank=True, help_text="API server URL, e.g. https://10.0.0.1:6443.")
    token = serializers.CharField(required=False, allow_blank=True, write_only=True, help_text="Bearer token.")
    ca_data = serializers.CharField(required=False, allow_blank=True, write_only=True, help_text="CA certificate, PEM or base64.")
    insecure_skip_tls_verify = serializers.BooleanField(required=False, default=False)

    credential_required = True

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        given = any((attrs.get(k) or "").strip() for k in ("kubeconfig", "server", "token"))
        if not given and not self.credential_required:
            partial = [k for k in PARTS if k in getattr(self, "initial_data", {})]
            if partial:  # a CA or a context alone would be dropped without a word
                raise serializers.ValidationError({k: ["A credential is changed whole: send a kubeconfig, or server and token "
                                                       "(with ca_data or insecure_skip_tls_verify) together."] for k in partial})
            attrs["credential_input"] = None
            return attrs
        try:
            attrs["credential_input"] = credential_from_input(
                kubeconfig=attrs.get("kubeconfig") or "", context=attrs.get("context") or "", server=attrs.get("server") or "",
                token=attrs.get("token") or "", ca_data=attrs.get("ca_data") or "",
                insecure_skip_tls_verify=attrs.get("insecure_skip_tls_verify", False))
        except DjangoValidationError as exc:
            if hasattr(exc, "error_dict"):
                raise serializers.ValidationError({k: [e.message for e in v] for k, v in exc.error_dict.items()}) from None
            raise serializers.ValidationError({"non_field_errors": exc.messages}) from None
        return attrs


class ClusterUpdateSerializer(ClusterWriteSerializer):
    name = serializers.CharField(max_length=63, required=False)
    upgrade_driver = serializers.ChoiceField(choices=UpgradeDriver.choices, required=False,
                                             help_text="How a drained node is upgraded.")
    upgrade_command = serializers.ListField(child=serializers.CharField(), required=False,
                                            help_text="For the command driver: argv with {cluster}, {node}, {version}.")
    credential_required = False


class HealthSpanSerializer(serializers.ModelSerializer[HealthSpan]):
    class Meta:
        model = HealthSpan
        fields = ["status", "reasons", "started_at", "ended_at"]


class ClusterHealthSerializer(serializers.Serializer[dict[str, Any]]):
    cluster = ClusterSerializer()
    availability_24h = serializers.FloatField(allow_null=True)
    availability_7d = serializers.FloatField(allow_null=True)
    history = HealthSpanSerializer(many=True)


class NodeSerializer(serializers.ModelSerializer[ClusterNode]):
    class Meta:
        model = ClusterNode
        fields = ["name", "roles", "kubelet_version", "ready", "ready_message", "conditions", "unschedulable", "taints",
                  "labels", "updated_at"]


class OperationSerializer(serializers.ModelSerializer[NodeOperation]):
    cluster: serializers.PrimaryKeyRelatedField[Cluster] = serializers.PrimaryKeyRelatedField(read_only=True)

    class Meta:
        model = NodeOperation
        fields = ["id", "cluster", "node", "kind", "state", "requested_by_name", "timeout_seconds", "progress", "report",
                  "created_at", "started_at", "finished_at"]
        read_only_fields = fields


class OperationRequestSerializer(serializers.Serializer[dict[str, Any]]):
    timeout_seconds = serializers.IntegerField(required=False, min_value=10, max_value=86400,
                                               help_text="Drain only: how long to keep retrying evictions a PDB refuses.")
