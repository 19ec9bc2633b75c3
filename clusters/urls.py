from django.urls import path

from clusters import views

app_name = "clusters"
urlpatterns = [
    path("", views.fleet, name="fleet"),
    path("register/", views.cluster_register, name="register"),
    path("<int:pk>/", views.cluster_detail, name="detail"),
    path("<int:pk>/live/", views.cluster_live, name="live"),
    path("<int:pk>/edit/", views.cluster_edit, name="edit"),
    path("<int:pk>/delete/", views.cluster_delete, name="delete"),
    path("<int:pk>/probe/", views.cluster_probe, name="probe"),
    path("<int:pk>/nodes/<str:node>/<str:kind>/", views.node_operation, name="node-operation"),
]
