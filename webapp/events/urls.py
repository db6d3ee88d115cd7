from django.contrib import admin
from django.urls import include, path

from events import health

urlpatterns = [
    path("admin/", admin.site.urls),
    path("accounts/", include("accounts.urls")),
    path("healthz", health.healthz, name="healthz"),
]
