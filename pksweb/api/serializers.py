from __future__ import annotations

from typing import Any

from rest_framework import serializers

from pksweb.choices import Role
from pksweb.models import Event, User
from pksweb.tenancy import tenant_model, tenant_names


class EventSerializer(serializers.ModelSerializer[Event]):
    tenant: serializers.SlugRelatedField[Any] = serializers.SlugRelatedField(slug_field="name", read_only=True)

    class Meta:
        model = Event
        fields = [
            "id", "kind", "message", "actor_name", "subject_type", "subject_id",
            "subject_label", "tenant", "payload", "created_at",
        ]
        read_only_fields = fields


class AnnouncementSerializer(serializers.Serializer[Any]):
    message = serializers.CharField(max_length=500, trim_whitespace=True)
    tenant = serializers.SlugRelatedField(
        slug_field="name", queryset=tenant_model()._default_manager.all(), required=False, allow_null=True,
        help_text="Name of the tenant whose people should see it; omit for everyone.",
    )


class MeSerializer(serializers.ModelSerializer[User]):
    role = serializers.ChoiceField(choices=Role.choices)
    tenants = serializers.SerializerMethodField()

    class Meta:
        model = User
        fields = ["id", "username", "role", "tenants"]

    def get_tenants(self, user: User) -> list[str]:
        return tenant_names(user)
