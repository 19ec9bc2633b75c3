from django.urls import include, path

from pksweb import views
from pksweb.oidc import views as sign_in

urlpatterns = [
    path("", views.home, name="home"),
    path("healthz", views.healthz, name="healthz"),
    path("favicon.ico", views.favicon, name="favicon"),
    path("readyz", views.readyz, name="readyz"),
    path("metrics", views.metrics_scrape, name="metrics"),
    path("accounts/login/", sign_in.LoginPage.as_view(), name="login"),
    path("accounts/logout/", sign_in.LogoutPage.as_view(), name="logout"),
    path("accounts/oidc/login/", sign_in.oidc_login, name="oidc_login"),
    path("accounts/oidc/callback/", sign_in.oidc_callback, name="oidc_callback"),
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
