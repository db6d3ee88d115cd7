from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("", include("accounts.landing_urls")),
    path("admin/", admin.site.urls),
    path("accounts/", include("accounts.urls")),
    path("", include("campaigns.urls")),
    path("", include("operations.urls")),
]
