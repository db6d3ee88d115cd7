"""The campaign admin's own pages: live progress, a preview for any artist, and the
start / pause / resume / cancel buttons. Each checks its own permission: the admin site
lets any staff member through to them.

Start (it emails the whole audience) and cancel (what is not sent never will be) are
asked first: a GET of their address shows what they would do, in numbers, and only a
POST acts. Pause and resume act at once and say what they did. Only the changes the
campaign's status allows now (campaigns.services' state machine) and the reader may
make are offered."""

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
from django.views.decorators.http import require_http_methods, require_POST

from accounts.models import ArtistProfile
from campaigns import audience, dispatch, services
from campaigns import messages as campaign_messages
from campaigns.models import Campaign, Recipient
from campaigns.progress import Progress, counted, progress
from events.durations import roughly

# button -> (permission it needs, the service function)
_CHANGES = {
    "start": ("campaigns.start_campaign", services.start),
    "pause": ("campaigns.start_campaign", services.pause),
    "resume": ("campaigns.start_campaign", services.resume),
    "cancel": ("campaigns.cancel_campaign", services.cancel),
}
# What each change is called in a sentence: "cannot be started".
_DONE_WORDS = {"start": "started", "pause": "paused", "resume": "resumed", "cancel": "cancelled"}


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


def _button(request: HttpRequest) -> str:
    assert request.resolver_match is not None
    return str(request.resolver_match.url_name).removeprefix("campaigns_campaign_")


def _permitted(request: HttpRequest) -> list[str]:
    """The changes the reader may make to any campaign, in the buttons' order."""
    return [name for name, (permission, _) in _CHANGES.items() if request.user.has_perm(permission)]


def _progress_for(request: HttpRequest, campaign: Campaign) -> Progress:
    """The campaign's progress, offering the changes its status allows that the reader
    may make: the one payload the progress page and its poll render."""
    permitted = _permitted(request)
    allowed = services.changes_allowed(campaign)
    return progress(campaign).offering(name for name in allowed if name in permitted)


def _changed(request: HttpRequest, button: str, pk: int) -> Campaign:
    """The campaign a change names, once the reader may make that change."""
    if not request.user.has_perm(_CHANGES[button][0]):
        raise PermissionDenied
    return get_object_or_404(Campaign, pk=pk)


def _back(campaign: Campaign) -> HttpResponseRedirect:
    return HttpResponseRedirect(reverse("admin:campaigns_campaign_progress", args=[campaign.pk]))


@require_POST
def change_status(request: HttpRequest, pk: int) -> HttpResponse:
    """Pause or resume at once (neither loses anything), and say what happened; also
    the POST of a confirmed start or cancel."""
    button = _button(request)
    campaign = _changed(request, button, pk)
    was = campaign.get_status_display().lower()
    try:
        done = _change(request, campaign, button)
    except services.CampaignError as exc:
        messages.error(request, f"{str(exc).capitalize()}. This one is {was}.")
    else:
        messages.success(request, done)
    return _back(campaign)


def _change(request: HttpRequest, campaign: Campaign, button: str) -> str:
    """Make the change; what happened, in numbers."""
    if button == "start":
        counts = services.start(campaign.pk, user=request.user)
        rate = campaign.rate_limit or "no rate limit"
        return (
            f"Started: {counted(counts['queued'], 'email')} queued ({rate}); "
            f"{counts['skipped']} skipped."
        )
    _CHANGES[button][1](campaign.pk, user=request.user)
    now = progress(Campaign.objects.get(pk=campaign.pk))
    if button == "pause":
        return (
            f"Paused: no email goes out until the campaign is resumed; "
            f"{now.remaining} not yet sent."
        )
    if button == "resume":
        return f"Resumed: {counted(now.remaining, 'email')} left to send."
    if now.total == 0:
        return "Cancelled: no email was sent, and this campaign can never be started."
    return f"Cancelled: {now.sent} sent stay sent; no other email of this campaign will go out."


@require_http_methods(["GET", "POST"])
def confirm_then_change(request: HttpRequest, pk: int) -> HttpResponse:
    """Start or cancel: a GET shows what the change would do, in numbers, and asks; only
    the POST of that page (with its CSRF token) acts."""
    if request.method == "POST":
        return change_status(request, pk)
    button = _button(request)
    campaign = _changed(request, button, pk)
    if button not in services.changes_allowed(campaign):
        status = campaign.get_status_display().lower()
        messages.error(request, f"“{campaign}” is {status}: it cannot be {_DONE_WORDS[button]}.")
        return _back(campaign)
    if button == "start":
        question, details, label = _start_question(campaign)
    else:
        question, details, label = _cancel_question(campaign)
    context = _context(request, campaign, f"{button.capitalize()} campaign: {campaign}")
    context.update(
        question=question,
        details=details,
        confirm_label=label,
        danger=button == "cancel",
        back_url=reverse("admin:campaigns_campaign_progress", args=[campaign.pk])
        if _may_view(request, Campaign)
        else reverse("admin:index"),
        back_label="No, keep it as it is" if button == "cancel" else "No, not now",
    )
    return TemplateResponse(request, "campaigns/admin/confirm.html", context)


def _start_question(campaign: Campaign) -> tuple[str, list[str], str]:
    """What starting would do, counted from the audience now."""
    found = audience.count(
        approved_only=campaign.approved_only, include_notified=campaign.include_notified
    )
    emails = counted(found.eligible, "email")
    if found.eligible == 0:
        question = "Start? No artist would be emailed now: the campaign would finish at once."
    elif campaign.rate is None:
        question = f"Send {emails} with no rate limit, as fast as the workers go?"
    else:
        seconds = found.eligible * dispatch.send_interval(campaign)
        over = f"over about {roughly(seconds)}" if seconds >= 1 else "within a second"
        question = f"Send {emails} {over} (rate limit {campaign.rate_limit})?"
    details = [
        f"Skipped: {found.suppressed} suppressed (the address unsubscribed, bounced or "
        f"complained) and {found.already_notified} already notified since they were last "
        "disconnected.",
        "The audience is counted again when the campaign starts: the artists who need "
        "SumUp at that moment are the ones emailed.",
    ]
    label = f"Yes, send {emails}" if found.eligible else "Yes, start"
    return question, details, label


def _cancel_question(campaign: Campaign) -> tuple[str, list[str], str]:
    """What cancelling would do, counted from the recipients now."""
    if campaign.status == Campaign.Status.DRAFT:
        question = "Cancel this draft? Nothing has been sent; once cancelled it can never start."
        return question, [], "Yes, cancel the campaign"
    now = progress(campaign)
    queued = now.by_status[Recipient.Status.QUEUED]
    sending = now.by_status[Recipient.Status.SENDING]
    question = (
        f"Cancel? {counted(queued, 'email')} not yet sent will never be sent; "
        f"{now.sent} already sent stay sent."
    )
    details = (
        [f"{counted(sending, 'email')} being sent this moment may still go out."] if sending else []
    )
    return question, details, "Yes, cancel the campaign"


def progress_page(request: HttpRequest, pk: int) -> HttpResponse:
    campaign = _viewable(request, pk)
    context = _context(request, campaign, f"Progress: {campaign}")
    context["payload"] = _progress_for(request, campaign).as_dict()
    context["buttons"] = _permitted(request)
    context["can_preview"] = may_preview(request)
    if _may_view(request, Recipient):
        context["unknown_url"] = (
            reverse("admin:campaigns_recipient_changelist")
            + f"?campaign__id__exact={campaign.pk}&status__exact={Recipient.Status.UNKNOWN}"
        )
    return TemplateResponse(request, "campaigns/admin/progress.html", context)


def progress_json(request: HttpRequest, pk: int) -> JsonResponse:
    campaign = _viewable(request, pk)
    return JsonResponse(_progress_for(request, campaign).as_dict())


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
