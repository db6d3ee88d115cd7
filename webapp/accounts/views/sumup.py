"""The artist's side of the SumUp authorization-code flow: start, callback, pick, and
disconnect (asked first: it stops card payments)."""

import logging
import re
from urllib.parse import urlsplit

from django.conf import settings
from django.contrib import messages
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.csp import CSP
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.csp import csp_override
from django.views.decorators.http import require_http_methods, require_safe

from accounts.models import ArtistProfile, ConnectionStatus
from accounts.sumup import client, oauth_flow
from accounts.sumup.client import Membership, SumUpError
from accounts.sumup.linking import MerchantAlreadyLinked, connect_merchant, disconnect_merchant
from accounts.views.access import artist_required

log = logging.getLogger(__name__)

ERROR_CODE = re.compile(r"[a-z_]{1,40}")


def _safe_next(request: HttpRequest, candidate: str | None) -> str:
    if candidate and url_has_allowed_host_and_scheme(
        candidate, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return candidate
    return ""


def _policy_with_sumup_form_action() -> dict[str, list[str]]:
    sumup = urlsplit(settings.SUMUP_BASE_URL)
    policy: dict[str, list[str]] = settings.SECURE_CSP
    return {**policy, "form-action": [CSP.SELF, f"{sumup.scheme}://{sumup.netloc}"]}


def _to_dashboard() -> HttpResponseRedirect:
    return redirect("accounts:dashboard")


@require_http_methods(["GET", "HEAD", "POST"])
@artist_required
def connect(request: HttpRequest, profile: ArtistProfile) -> HttpResponse:
    next_url = _safe_next(request, request.POST.get("next") or request.GET.get("next"))
    if request.method != "POST":
        # The page's form is answered with a redirect to SumUp's authorize page, which
        # browsers hold to the page's form-action.
        page = csp_override(_policy_with_sumup_form_action())(render)
        return page(request, "accounts/sumup_connect.html", {"profile": profile, "next": next_url})
    if not settings.SUMUP_CLIENT_ID:
        messages.error(request, "SumUp connections are not configured on this site yet.")
        return _to_dashboard()
    flow = oauth_flow.start(request.session, user_id=profile.user_id, next_url=next_url)
    return HttpResponseRedirect(
        client.authorization_url(state=flow.state, code_verifier=flow.code_verifier)
    )


def _exchange_failed(request: HttpRequest, exc: SumUpError) -> HttpResponse:
    log.warning("SumUp code exchange failed: %s", exc)
    if exc.permanent:
        messages.error(
            request,
            "SumUp did not accept this connection (it may have expired). "
            "Nothing was changed; please connect again.",
        )
    else:
        messages.error(
            request, "SumUp is not answering right now. Nothing was changed; please try again."
        )
    return _to_dashboard()


@require_safe
@artist_required
def callback(request: HttpRequest, profile: ArtistProfile) -> HttpResponse:
    try:
        flow = oauth_flow.consume(
            request.session, state=request.GET.get("state", ""), user_id=profile.user_id
        )
    except oauth_flow.StateError as exc:
        log.warning("SumUp callback refused for user %s: state %s", profile.user_id, exc)
        messages.error(
            request,
            "This SumUp response does not match a connection you started, or it was already "
            "used or has expired. Nothing was changed; please connect again.",
        )
        return _to_dashboard()
    error = request.GET.get("error")
    if error:
        if error == "access_denied":
            messages.info(request, "You did not allow the connection. Nothing was changed.")
        else:
            shown = error if ERROR_CODE.fullmatch(error) else "unknown"
            messages.error(request, f"SumUp reported an error ({shown}). Please try again.")
        return _to_dashboard()
    code = request.GET.get("code", "")
    if not code:
        messages.error(request, "SumUp sent no authorization code. Please connect again.")
        return _to_dashboard()
    try:
        token = client.exchange_code(code=code, code_verifier=flow.code_verifier)
    except SumUpError as exc:
        return _exchange_failed(request, exc)
    try:
        memberships = client.merchant_memberships(token["access_token"])
    except SumUpError as exc:
        log.warning("SumUp memberships lookup failed: %s", exc)
        messages.error(
            request,
            "We could not read your SumUp merchant accounts. Nothing was changed; "
            "please try again in a few minutes.",
        )
        return _to_dashboard()
    return _link(
        request, profile, token, memberships, request.GET.get("merchant_code", ""), flow.next_url
    )


def _link(
    request: HttpRequest,
    profile: ArtistProfile,
    token: dict[str, object],
    memberships: list[Membership],
    suggested: str,
    next_url: str,
) -> HttpResponse:
    codes = [membership.merchant_code for membership in memberships]
    if not codes:
        messages.error(request, "Your SumUp login has no merchant account to take payments with.")
        return _to_dashboard()
    if suggested in codes:
        chosen = suggested
    elif len(codes) == 1:
        chosen = codes[0]
    else:
        oauth_flow.hold_merchant_choice(
            request.session,
            token=dict(token),
            merchants=[{"code": m.merchant_code, "name": m.name} for m in memberships],
            next_url=next_url,
        )
        return redirect("accounts:sumup_choose_merchant")
    return _finish(request, profile, token, chosen, next_url)


def _finish(
    request: HttpRequest,
    profile: ArtistProfile,
    token: dict[str, object],
    merchant_code: str,
    next_url: str,
) -> HttpResponse:
    try:
        business_name = client.merchant_business_name(str(token["access_token"]), merchant_code)
    except SumUpError as exc:
        # The name is for display only; the connection works without it.
        log.warning("SumUp merchant lookup failed for %s: %s", merchant_code, exc)
        business_name = ""
    try:
        connect_merchant(
            profile_id=profile.pk,
            token=dict(token),
            merchant_code=merchant_code,
            business_name=business_name,
        )
    except MerchantAlreadyLinked:
        messages.error(
            request,
            f"The SumUp merchant account {merchant_code} is already connected to another "
            "artist. Nothing was changed.",
        )
        return _to_dashboard()
    messages.success(request, f"SumUp connected: merchant account {merchant_code}.")
    return HttpResponseRedirect(next_url or reverse("accounts:dashboard"))


@require_http_methods(["GET", "POST"])
@artist_required
def choose_merchant(request: HttpRequest, profile: ArtistProfile) -> HttpResponse:
    held = oauth_flow.peek_merchant_choice(request.session)
    if held is None:
        messages.error(request, "That choice has expired. Please connect again.")
        return _to_dashboard()
    if request.method == "GET":
        return render(
            request, "accounts/sumup_choose_merchant.html", {"merchants": held["merchants"]}
        )
    chosen = request.POST.get("merchant_code", "")
    if chosen not in {merchant["code"] for merchant in held["merchants"]}:
        messages.error(request, "Please pick one of your merchant accounts.")
        return redirect("accounts:sumup_choose_merchant")
    taken = oauth_flow.take_merchant_choice(request.session)
    if taken is None:
        return _to_dashboard()
    choice, token = taken
    return _finish(request, profile, token, chosen, choice["next_url"])


@require_http_methods(["GET", "HEAD", "POST"])
@artist_required
def disconnect(request: HttpRequest, profile: ArtistProfile) -> HttpResponse:
    """GET asks first, saying what disconnecting costs; only the page's POST disconnects."""
    if profile.sumup_status == ConnectionStatus.NOT_CONNECTED and not profile.sumup_access_token:
        messages.info(request, "SumUp was not connected.")
        return _to_dashboard()
    if request.method != "POST":
        return render(request, "accounts/sumup_disconnect.html", {"profile": profile})
    disconnect_merchant(profile_id=profile.pk)
    messages.success(
        request,
        "SumUp disconnected and our access deleted. To remove Jersey Events completely, "
        "also remove it from the apps with access in your SumUp account.",
    )
    return _to_dashboard()
