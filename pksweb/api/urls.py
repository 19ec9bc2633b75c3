from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView
from rest_framework.routers import DefaultRouter

from clusters.api import views as cluster_views
from notifications.api import views as notify_views
from pksweb.api import views
from tenants.api import nodes as tenant_nodes
from tenants.api import views as tenant_views
from upgrades.api import views as upgrade_views

app_name = "api"



class IdRouter(DefaultRouter):
    """Objects are addressed by integer id (at most 18 digits, within a bigint): any other
    segment is a JSON 404, never a lookup that fails inside a view."""

    def __init__(self) -> None:
        super().__init__()
        self._default_value_pattern = "[0-9]{1,18}"


router = IdRouter()
router.register("events", views.EventViewSet, basename="event")
router.register("tenants", tenant_views.TenantViewSet, basename="tenant")
router.register("namespaces", tenant_views.NamespaceViewSet, basename="namespace")
router.register("upgrade-plans", upgrade_views.PlanViewSet, basename="upgrade-plan")
router.register("rollouts", upgrade_views.RolloutViewSet, basename="rollout")
router.register("clusters", cluster_views.ClusterViewSet, basename="cluster")
router.register("operations", cluster_views.OperationViewSet, basename="operation")
router.register("notification-channels", notify_views.ChannelViewSet, basename="notification-channel")
router.register("notification-deliveries", notify_views.DeliveryViewSet, basename="notification-delivery")
# The tenants' part of a cluster (segmentation, dedicated nodes), under the cluster's paths and URL names.
cluster_tenancy = IdRouter()
cluster_tenancy.include_root_view = False
cluster_tenancy.register("clusters", tenant_nodes.ClusterTenancyViewSet, basename="cluster")

urlpatterns = [
    path("", include(router.urls)),
    path("", include(cluster_tenancy.urls)),
    path("announcements/", views.AnnouncementCreate.as_view(), name="announcement-create"),
    path("me/", views.MeView.as_view(), name="me"),
    path("me/notifications/", notify_views.my_subscriptions, name="my-notifications"),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="api:schema"), name="docs"),
    path("redoc/", SpectacularRedocView.as_view(url_name="api:schema"), name="redoc"),
]
