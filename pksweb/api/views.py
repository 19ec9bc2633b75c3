from __future__ import annotations

from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema
from rest_framework import generics, status, viewsets
from rest_framework.exceptions import NotAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from pksweb import selectors, services
from pksweb.api.filters import EventFilter
from pksweb.api.permissions import PolicyPermission
from pksweb.api.serializers import AnnouncementSerializer, EventSerializer, MeSerializer
from pksweb.models import Event, User


class EventViewSet(viewsets.ReadOnlyModelViewSet[Event]):
    """Events you may see, newest first. `?after=<id>` returns what you missed."""

    serializer_class = EventSerializer
    permission_classes = [PolicyPermission]
    filterset_class = EventFilter

    def get_queryset(self) -> QuerySet[Event]:
        return selectors.event_list(user=self.request.user)


class AnnouncementCreate(APIView):
    """Post an announcement (operators only); it reaches every open page live."""

    permission_classes = [PolicyPermission]
    policy_actions = {"POST": "create"}
    policy_model = Event

    @extend_schema(request=AnnouncementSerializer, responses={201: EventSerializer})
    def post(self, request: Request) -> Response:
        data = AnnouncementSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        event = services.announcement_post(
            author=request.user,
            message=data.validated_data["message"],
            tenant=data.validated_data.get("tenant"),
        )
        return Response(EventSerializer(event).data, status=status.HTTP_201_CREATED)


class MeView(generics.RetrieveAPIView[User]):
    """Who you are signed in as: username, role and tenants."""

    serializer_class = MeSerializer
    permission_classes = [PolicyPermission]

    def get_object(self) -> User:
        user = self.request.user
        if not isinstance(user, User):  # PolicyPermission lets only signed-in users this far
            raise NotAuthenticated()
        return user
