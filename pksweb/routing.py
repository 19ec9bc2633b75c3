"""Websocket routes. Ids are at most 18 digits (within a bigint, as in the API); any other
path, or a malformed id, reaches the last route and is closed with 4404 (Channels' router
would raise instead, and the server answer 500)."""

from django.urls import path, re_path

from clusters import consumers as cluster_consumers
from pksweb import consumers
from tenants import consumers as tenant_consumers
from upgrades import consumers as upgrade_consumers

ID = "[0-9]{1,18}"

websocket_urlpatterns = [
    path("ws/fleet/", cluster_consumers.FleetConsumer.as_asgi()),
    re_path(rf"^ws/clusters/(?P<cluster_id>{ID})/$", cluster_consumers.ClusterConsumer.as_asgi()),
    path("ws/activity/", consumers.ActivityConsumer.as_asgi()),
    re_path(rf"^ws/tenants/(?P<tenant_id>{ID})/$", tenant_consumers.TenantConsumer.as_asgi()),
    re_path(rf"^ws/rollouts/(?P<rollout_id>{ID})/$", upgrade_consumers.RolloutConsumer.as_asgi()),
    re_path(r"", consumers.UnknownRouteConsumer.as_asgi()),
]
