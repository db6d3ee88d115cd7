from collections.abc import Callable
from functools import wraps
from typing import Concatenate, cast

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from accounts.models import ArtistProfile


def artist_required[**P](
    view: Callable[Concatenate[HttpRequest, ArtistProfile, P], HttpResponse],
) -> Callable[Concatenate[HttpRequest, P], HttpResponse]:
    """Log in first; then only artists with a profile get through, others a clear 403 page."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args: P.args, **kwargs: P.kwargs) -> HttpResponse:
        user_id = request.user.pk
        profile = None
        if user_id is not None and getattr(request.user, "is_artist", False):
            profile = ArtistProfile.objects.filter(user_id=user_id).first()
        if profile is None:
            return render(request, "accounts/not_artist.html", status=403)
        return view(request, profile, *args, **kwargs)

    return login_required(cast(Callable[Concatenate[HttpRequest, P], HttpResponse], wrapper))
