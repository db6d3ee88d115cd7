"""The campaign admin's own pages: live progress, a preview for any artist, and the
start / pause / resume / cancel buttons. Each checks its own permission: the admin site
lets any staff member through to them."""

from __future__ import annotations

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Model
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.csp import CSP
from django.views.decorators.clickjacking import xframe_options_sameorigin
from django.views.decorators.csp import csp_override
from django.views.decorators.http import require_POST

from accounts.models import ArtistProfile
from campaigns import audience, services
from campaigns import messages as campaign_messages
from campaigns.models import Campaign, Recipient
from campaigns.progress import progress

# button -> (permission it needs, the service function)
_CHANGES = {
    "start": ("campaigns.start_campaign", services.start),
    "pause": ("campaigns.start_campaign", services.pause),
    "resume": ("campaigns.start_campaign", services.resume),
    "cancel": ("campaigns.cancel_campaign", services.cancel),
}


def _may_view(request: HttpRequest, model: type[Model]) -> bool:
    """As the admin decides for the model's own pages: its view or change permission."""
    return admin.site.get_model_admin(model).has_view_permission(request)


def may_preview(request: HttpRequest) -> bool:
    # A preview shows an artist's address and SumUp status: it needs the artists' view too.
    return _may_view(request, Campaign) and _may_view(request, ArtistProfile)


def _viewable(request: HttpRequest, pk: int) -> Campaign:
    if not _may_view(request, Campaign):
        raise PermissionDenied
    return get_object_or_404(Campaign, pk=pk)


def _context(request: HttpRequest, campaign: Campaign, title: str) -> dict[str, object]:
    return {
        **admin.site.each_context(request),
        "opts": Campaign._meta,
        "original": campaign,
        "campaign": campaign,
        "title": title,
    }


@require_POST
def change_status(request: HttpRequest, pk: int) -> HttpResponse:
    assert request.resolver_match is not None
    button = str(request.resolver_match.url_name).removeprefix("campaigns_campaign_")
    permission, change = _CHANGES[button]
    if not request.user.has_perm(permission):
        raise PermissionDenied
    try:
        change(pk, user=request.user)
    except services.CampaignError as exc:
        messages.error(request, str(exc).capitalize() + ".")
    else:
        messages.success(request, f"Campaign {button} recorded.")
    return HttpResponseRedirect(reverse("admin:campaigns_campaign_progress", args=[pk]))


def progress_page(request: HttpRequest, pk: int) -> HttpResponse:
    campaign = _viewable(request, pk)
    context = _context(request, campaign, f"Progress: {campaign}")
    context["progress"] = progress(campaign)
    context["buttons"] = [
        name for name, (permission, _) in _CHANGES.items() if request.user.has_perm(permission)
    ]
    context["can_preview"] = may_preview(request)
    if _may_view(request, Recipient):
        context["unknown_url"] = (
            reverse("admin:campaigns_recipient_changelist")
            + f"?campaign__id__exact={campaign.pk}&status__exact={Recipient.Status.UNKNOWN}"
        )
    return TemplateResponse(request, "campaigns/admin/progress.html", context)


def progress_json(request: HttpRequest, pk: int) -> JsonResponse:
    return JsonResponse(progress(_viewable(request, pk)).as_dict())


def _previewed(request: HttpRequest, pk: int) -> tuple[Campaign, str, ArtistProfile | None]:
    """The campaign, the artist asked for (`?artist=<id or email>`, else the first of the
    audience) and that artist's profile, once the permissions allow a preview."""
    if not may_preview(request):
        raise PermissionDenied
    campaign = _viewable(request, pk)
    wanted = request.GET.get("artist", "").strip()
    profiles = ArtistProfile.objects.select_related("user")
    if wanted.isascii() and wanted.isdigit():
        profile = profiles.filter(pk=int(wanted)).first()
    elif wanted:
        profile = profiles.filter(user__email__iexact=wanted).first()
    else:
        profile = audience.candidates(approved_only=campaign.approved_only).first()
    return campaign, wanted, profile


def preview(request: HttpRequest, pk: int) -> HttpResponse:
    """The email as one artist would get it (any artist: `?artist=<id or email>`), with a
    sample in place of the artist's unsubscribe link; its HTML part in a frame of its own
    (preview_html)."""
    campaign, wanted, profile = _previewed(request, pk)
    context = _context(request, campaign, f"Preview: {campaign}")
    context.update(wanted=wanted, profile=profile)
    if profile is not None:
        message = campaign_messages.build(campaign, profile)
        context.update(
            message=message,
            headers=sorted(message.extra_headers.items()),
            skip_reason=audience.ineligible_reason(campaign, profile),
        )
    return TemplateResponse(request, "campaigns/admin/preview.html", context)


# The email's HTML is written for mail clients, styled inline as email must be, which the
# site's policy forbids; it gets a policy of its own, as strict as it can be: no script,
# no form, nothing but its styles and images, framed only by the preview page (and
# sandboxed even when opened on its own).
EMAIL_HTML_CSP: dict[str, list[str] | str] = {
    "default-src": [CSP.NONE],
    "style-src": [CSP.UNSAFE_INLINE],
    "img-src": ["https:", "data:"],
    "base-uri": [CSP.NONE],
    "form-action": [CSP.NONE],
    "frame-ancestors": [CSP.SELF],
    "sandbox": "",  # the directive alone: every restriction a sandbox has
}


@xframe_options_sameorigin
@csp_override(EMAIL_HTML_CSP)
def preview_html(request: HttpRequest, pk: int) -> HttpResponse:
    """The HTML part of the previewed email, for the preview page's frame."""
    campaign, _, profile = _previewed(request, pk)
    if profile is None:
        raise Http404("no such artist")
    message = campaign_messages.build(campaign, profile)
    html = next((body for body, kind in message.alternatives if kind == "text/html"), "")
    return HttpResponse(html, content_type="text/html; charset=utf-8")
