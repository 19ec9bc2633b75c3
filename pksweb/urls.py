from django.contrib.auth import views as auth_views
from django.urls import include, path

from pksweb import views

urlpatterns = [
    path("", views.home, name="home"),
    path("healthz", views.healthz, name="healthz"),
    path("favicon.ico", views.favicon, name="favicon"),
    path("readyz", views.readyz, name="readyz"),
    path("metrics", views.metrics_scrape, name="metrics"),
    path("accounts/login/", auth_views.LoginView.as_view(redirect_authenticated_user=True), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("activity/", views.activity, name="activity"),
    path("activity/announce/", views.announcement_create, name="announce"),
    path("clusters/", include("clusters.urls")),
    path("tenants/", include("tenants.urls")),
    path("upgrades/", include("upgrades.urls")),
    path("notifications/", include("notifications.urls")),
    path("api/", include("pksweb.api.urls")),
]

handler404 = "pksweb.views.not_found"
handler500 = "pksweb.views.server_error"
