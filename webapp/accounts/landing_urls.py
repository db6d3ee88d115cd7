"""The site's root, `/`, which events.urls mounts by name (events sits below accounts
and never imports it)."""

from django.urls import path

from accounts.views.landing import landing

urlpatterns = [
    path("", landing, name="landing"),
]
