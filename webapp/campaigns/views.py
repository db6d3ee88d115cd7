"""Public endpoints of campaign emails: one-click unsubscribe and the provider's
tracking webhook."""

from __future__ import annotations

from collections.abc import Callable
from functools import cache

from anymail import urls as anymail_urls
from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseForbidden
from django.shortcuts import render
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from campaigns.audience import is_suppressed
from campaigns.unsubscribe import read_token, unsubscribe

ONE_CLICK = "One-Click"


@csrf_exempt  # RFC 8058: mail clients POST without cookies; the signed token is the proof
@require_http_methods(["GET", "POST"])
def unsubscribe_view(request: HttpRequest, token: str) -> HttpResponse:
    """GET shows a confirmation (link scanners must not unsubscribe anyone); POST, from
    the page's button or a mail client's one-click, unsubscribes."""
    subscriber = read_token(token)
    if subscriber is None:
        return render(request, "campaigns/unsubscribe_invalid.html", status=404)
    if request.method == "POST":
        unsubscribe(subscriber)
        if request.POST.get("List-Unsubscribe") == ONE_CLICK:
            return HttpResponse("Unsubscribed.\n", content_type="text/plain")
        done = True
    else:
        done = is_suppressed(subscriber.email)
    return render(request, "campaigns/unsubscribe.html", {"email": subscriber.email, "done": done})


@csrf_exempt
def tracking_webhook(request: HttpRequest) -> HttpResponse:
    """anymail's tracking webhook for the provider of EMAIL_BACKEND, behind HTTP basic
    auth (`ANYMAIL_WEBHOOK_SECRET`, "user:password"). Without a secret it stays shut:
    anymail alone would only warn and accept anyone's events."""
    if not settings.ANYMAIL.get("WEBHOOK_SECRET"):
        return HttpResponseForbidden("The tracking webhook needs ANYMAIL_WEBHOOK_SECRET.\n")
    view = _tracking_view(settings.EMAIL_BACKEND)
    if view is None:
        raise Http404("the configured email backend has no tracking webhook")
    return view(request)


@cache
def _tracking_view(backend: str) -> Callable[[HttpRequest], HttpResponse] | None:
    parts = backend.split(".")
    if parts[:2] != ["anymail", "backends"] or len(parts) < 4:
        return None
    name = f"{parts[2]}_tracking_webhook"
    for pattern in anymail_urls.urlpatterns:
        if getattr(pattern, "name", None) == name:
            view: Callable[[HttpRequest], HttpResponse] = pattern.callback
            return view
    return None
