"""Websocket routes. Ids are at most 18 digits (within a bigint, as in the API); any other
path, or a malformed id, reaches the last route and is closed with 4404 (Channels' router
would raise instead, and the server answer 500)."""

from django.urls import path, re_path, register_converter

from clusters import consumers as cluster_consumers
from pksweb import consumers
from tenants import consumers as tenant_consumers
from upgrades import consumers as upgrade_consumers


class IdConverter:
    """An object id: 1 to 18 digits, so it fits a bigint (a longer one overflows SQLite's integer in the consumer)."""

    regex = "[0-9]{1,18}"

    def to_python(self, value: str) -> int:
        return int(value)

    def to_url(self, value: int) -> str:
        return str(value)


register_converter(IdConverter, "id")

websocket_urlpatterns = [
    path("ws/fleet/", cluster_consumers.FleetConsumer.as_asgi()),
    path("ws/clusters/<id:cluster_id>/", cluster_consumers.ClusterConsumer.as_asgi()),
    path("ws/activity/", consumers.ActivityConsumer.as_asgi()),
    path("ws/tenants/<id:tenant_id>/", tenant_consumers.TenantConsumer.as_asgi()),
    path("ws/rollouts/<id:rollout_id>/", upgrade_consumers.RolloutConsumer.as_asgi()),
    re_path(r"", consumers.UnknownRouteConsumer.as_asgi()),
]
