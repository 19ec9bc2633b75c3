from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import api_view, permission_classes
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response

from notifications import selectors, services
from notifications.api.serializers import ChannelSerializer, DeliverySerializer, SubscriptionsSerializer
from notifications.models import Channel, Delivery
from pksweb.api.permissions import WRITES, PolicyPermission


class ChannelViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin, mixins.DestroyModelMixin,
                     viewsets.GenericViewSet[Channel]):
    """Notification channels: operators create and remove them with an apprise URL, which is never returned; everyone
    lists the channels they may receive on (names; the scheme and host only for operators)."""

    serializer_class = ChannelSerializer
    permission_classes = [PolicyPermission]
    policy_model = Channel
    policy_actions = WRITES

    def get_queryset(self) -> QuerySet[Channel]:
        return selectors.channel_list(user=self.request.user)

    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        data = ChannelSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        channel = services.channel_create(name=data.validated_data["name"], url=data.validated_data["url"],
                                          tenant=data.validated_data.get("tenant"), created_by=request.user)
        return Response(ChannelSerializer(channel, context={"request": request}).data, status=status.HTTP_201_CREATED)

    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        services.channel_delete(channel=self.get_object(), deleted_by=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


class DeliveryViewSet(viewsets.ReadOnlyModelViewSet[Delivery]):
    """Every delivery: sent, failed with its reason, or suppressed by the debounce (operators; an empty list for others)."""

    serializer_class = DeliverySerializer
    permission_classes = [PolicyPermission]

    def get_queryset(self) -> QuerySet[Delivery]:
        return selectors.delivery_list(user=self.request.user)


@extend_schema(request=SubscriptionsSerializer, responses=SubscriptionsSerializer)
@api_view(["GET", "PUT"])
@permission_classes([IsAuthenticated])
def my_subscriptions(request: Request) -> Response:
    """The signed-in person's subscriptions: PUT replaces them all ({"subscriptions": [{"kind", "channel"}]})."""
    if request.method == "PUT":
        data = SubscriptionsSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        services.subscriptions_set(user=request.user,
                                   wanted=[(i["kind"], i["channel"]) for i in data.validated_data["subscriptions"]])
    rows = selectors.subscription_list(user=request.user)
    return Response({"subscriptions": [{"kind": s.kind, "channel": s.channel_id} for s in rows]})
