from django.urls import path

from tenants import views

app_name = "tenants"
urlpatterns = [
    path("", views.tenant_index, name="list"),
    path("<int:pk>/", views.tenant_detail, name="detail"),
]
