from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from accounts.models import ArtistProfile
from accounts.views.access import artist_required


@artist_required
def dashboard(request: HttpRequest, profile: ArtistProfile) -> HttpResponse:
    return render(request, "accounts/dashboard.html", {"profile": profile})
