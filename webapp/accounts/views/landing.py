"""The site's front door at `/`: where to go next, for whoever arrives."""

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from accounts.models import ArtistProfile


def landing(request: HttpRequest) -> HttpResponse:
    user = request.user
    is_artist = user.is_authenticated and ArtistProfile.objects.filter(user_id=user.pk).exists()
    return render(request, "accounts/landing.html", {"is_artist": is_artist})
