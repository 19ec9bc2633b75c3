from django.urls import path

from clusters import consumers as cluster_consumers
from pksweb import consumers
from tenants import consumers as tenant_consumers
from upgrades import consumers as upgrade_consumers

websocket_urlpatterns = [
    path("ws/fleet/", cluster_consumers.FleetConsumer.as_asgi()),
    path("ws/clusters/<int:cluster_id>/", cluster_consumers.ClusterConsumer.as_asgi()),
    path("ws/activity/", consumers.ActivityConsumer.as_asgi()),
    path("ws/tenants/<int:tenant_id>/", tenant_consumers.TenantConsumer.as_asgi()),
    path("ws/rollouts/<int:rollout_id>/", upgrade_consumers.RolloutConsumer.as_asgi()),
]
