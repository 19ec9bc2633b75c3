from django.urls import path

from tenants import views

app_name = "tenants"
urlpatterns = [
    path("", views.tenant_index, name="list"),
    path("new/", views.tenant_create, name="create"),
    path("<int:pk>/", views.tenant_detail, name="detail"),
    path("<int:pk>/edit/", views.tenant_edit, name="edit"),
    path("<int:pk>/scorecard/", views.tenant_scorecard, name="scorecard"),
    path("<int:pk>/namespaces/", views.namespace_create, name="namespace-create"),
    path("<int:pk>/members/", views.member_add, name="member-add"),
    path("namespaces/<int:pk>/", views.namespace_detail, name="namespace"),
    path("namespaces/<int:pk>/live/", views.namespace_live, name="namespace-live"),
    path("namespaces/<int:pk>/reconcile/", views.namespace_reconcile, name="namespace-reconcile"),
    path("namespaces/<int:pk>/delete/", views.namespace_delete, name="namespace-delete"),
    path("clusters/<int:cluster_id>/segmentation/", views.cluster_segmentation, name="segmentation"),
    path("clusters/<int:cluster_id>/nodes/<str:node>/assign/", views.node_assign, name="node-assign"),
    path("clusters/<int:cluster_id>/nodes/<str:node>/release/", views.node_release, name="node-release"),
]
