"""The overview's addresses, under /admin/overview/ (events.urls): behind the admin's
login, like the admin's own pages."""

from django.contrib import admin
from django.urls import path

from operations.overview import views

app_name = "overview"
urlpatterns = [
    path("", admin.site.admin_view(views.page), name="page"),
    path("refresh.json", admin.site.admin_view(views.refresh_json), name="refresh_json"),
]
