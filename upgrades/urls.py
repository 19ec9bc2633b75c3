from django.urls import path

from upgrades import views

app_name = "upgrades"
urlpatterns = [
    path("", views.plan_index, name="list"),
    path("new/", views.plan_edit, name="create"),
    path("<int:pk>/", views.plan_detail, name="plan"),
    path("<int:pk>/edit/", views.plan_edit, name="edit"),
    path("<int:pk>/<str:action>/", views.plan_action, name="plan-action"),
    path("rollouts/<int:pk>/", views.rollout_detail, name="rollout"),
    path("rollouts/<int:pk>/<str:action>/", views.rollout_action, name="rollout-action"),
    path("clusters/<int:cluster_id>/driver/", views.cluster_driver, name="cluster-driver"),
]
