from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("", include("accounts.landing_urls")),
    # Ahead of the admin's own, whose catch-all would answer 404 for it.
    path("admin/overview/", include("operations.overview.urls")),
    path("admin/", admin.site.urls),
    path("accounts/", include("accounts.urls")),
    path("", include("campaigns.urls")),
    path("", include("operations.urls")),
]
