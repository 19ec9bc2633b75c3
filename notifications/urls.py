from django.urls import path

from notifications import views

app_name = "notifications"
urlpatterns = [
    path("", views.index, name="index"),
    path("channels/", views.channel_create, name="channel-create"),
    path("channels/<int:pk>/delete/", views.channel_delete, name="channel-delete"),
    path("me/", views.profile, name="profile"),
]
