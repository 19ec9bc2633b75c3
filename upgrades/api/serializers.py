from __future__ import annotations

from rest_framework import serializers

from upgrades.models import Approval, Rollout, RolloutStep, UpgradePlan
from upgrades.rules import COMMENT_LIMIT


class ApprovalSerializer(serializers.ModelSerializer[Approval]):
    class Meta:
        model = Approval
        fields = ["approver_name", "revision", "decision", "comment", "voided", "created_at"]


class PlanSerializer(serializers.ModelSerializer[UpgradePlan]):
    """An upgrade plan. ``waves`` is a list of lists of cluster ids, in order (a canary wave first)."""

    approvals = ApprovalSerializer(many=True, read_only=True)
    author = serializers.CharField(source="author.username", read_only=True, default="")
    rollouts: serializers.PrimaryKeyRelatedField[Rollout] = serializers.PrimaryKeyRelatedField(many=True, read_only=True)
    waves = serializers.ListField(child=serializers.ListField(child=serializers.IntegerField(), allow_empty=False), allow_empty=False)

    class Meta:
        model = UpgradePlan
        fields = ["id", "name", "target_version", "waves", "max_unavailable", "drain_timeout_seconds", "node_ready_timeout_seconds",
                  "health_gate", "soak_seconds", "window_start", "window_end", "window_weekly", "quorum", "state", "revision",
                  "preflight", "flight_plan", "approvals", "author", "rollouts", "created_at", "updated_at"]
        read_only_fields = ["id", "state", "revision", "preflight", "flight_plan", "approvals", "author", "rollouts",
                            "created_at", "updated_at"]


class DecisionSerializer(serializers.Serializer[None]):
    revision = serializers.CharField(help_text="The revision you reviewed (from the plan).")
    comment = serializers.CharField(required=False, allow_blank=True, default="", max_length=COMMENT_LIMIT)


class StartSerializer(serializers.Serializer[None]):
    outside_window_reason = serializers.CharField(required=False, allow_blank=True, default="", max_length=2000,
                                                  help_text="Needed to start outside the window; recorded on the rollout and "
                                                            "in the event (a reason given inside the window is recorded too).")


class StepSerializer(serializers.ModelSerializer[RolloutStep]):
    cluster_name = serializers.CharField(source="cluster.name", read_only=True)

    class Meta:
        model = RolloutStep
        fields = ["order", "wave", "cluster", "cluster_name", "node", "control_plane", "phase", "log", "started_at", "finished_at"]


class RolloutSerializer(serializers.ModelSerializer[Rollout]):
    steps = StepSerializer(many=True, read_only=True)

    class Meta:
        model = Rollout
        fields = ["id", "plan", "revision", "state", "reason", "waiting_for_window", "pause_requested", "outside_window_reason", "start_reason",
                  "started_at", "finished_at", "steps"]
