from __future__ import annotations

from typing import Any

from rest_framework import serializers

from notifications.choices import NotifyKind
from notifications.models import Channel, Delivery
from pksweb.policy import is_operator


class ChannelSerializer(serializers.ModelSerializer[Channel]):
    """A channel as the API shows it: never its URL, only the ``hint`` (scheme and host)."""

    url = serializers.CharField(write_only=True, max_length=2000, help_text="An apprise URL; stored encrypted, never returned.")
    name = serializers.CharField(max_length=100)

    class Meta:
        model = Channel
        fields = ["id", "name", "url", "hint", "tenant", "created_at"]
        read_only_fields = ["id", "hint", "created_at"]
        extra_kwargs = {"tenant": {"required": False, "allow_null": True}}

    def to_representation(self, instance: Channel) -> dict[str, Any]:
        data: dict[str, Any] = super().to_representation(instance)
        request = self.context.get("request")
        if request is None or not is_operator(request.user):
            data.pop("hint", None)  # subscribers see names; only operators see where a channel points
        return data


class DeliverySerializer(serializers.ModelSerializer[Delivery]):
    class Meta:
        model = Delivery
        fields = ["id", "channel", "channel_name", "kind", "subject", "event_id", "recipients", "title", "state",
                  "attempts", "reason", "created_at", "sent_at"]
        read_only_fields = fields


class SubscriptionItem(serializers.Serializer[Any]):
    kind = serializers.ChoiceField(choices=NotifyKind.choices, error_messages={"invalid_choice": "“{input}” is not a kind of notification."})
    channel = serializers.IntegerField(min_value=1, max_value=2**63 - 1)


class SubscriptionsSerializer(serializers.Serializer[Any]):
    subscriptions = serializers.ListField(child=SubscriptionItem(), max_length=500)
