from django.urls import path

from pksweb import consumers

websocket_urlpatterns = [
    path("ws/activity/", consumers.ActivityConsumer.as_asgi()),
    path("ws/tenants/<int:tenant_id>/", consumers.TenantActivityConsumer.as_asgi()),
]
