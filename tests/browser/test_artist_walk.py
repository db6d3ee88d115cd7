"""An artist's whole round with SumUp in Chromium, at a desktop's width (1400 px) and a
phone's (390 px): log in, connect through the fake SumUp, ask to disconnect and keep
SumUp after all, disconnect, and connect again, picking one of two merchant accounts.
Every page of ours on the way passes axe-core with nothing serious or critical, is no
wider than the window and breaks no Content-Security-Policy; a screenshot of each is
left in artifacts/screenshots/ (git-ignored) for a person to look at."""

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import pytest
from playwright.sync_api import Browser, Page, Route, expect

from accounts.models import ArtistProfile

if TYPE_CHECKING:
    from tests.support.walk import PASSWORD, Visit, off_the_event_loop
else:
    from support.walk import PASSWORD, Visit, off_the_event_loop

pytestmark = pytest.mark.django_db(transaction=True)

CONSEQUENCE = "Ticket sales will stop taking card payments until you reconnect."
FIRST_MERCHANT = "MH4H92C7"  # the one merchant of the fake SumUp's first login
TWO_ACCOUNTS = "two-accounts@example.com"
PICKED_MERCHANT = ("MBBB2222", "Studio Sales")


@dataclass(frozen=True)
class Site:
    url: str
    authorize_url: str
    artist: ArtistProfile


@pytest.fixture
def site(live_server: Any, make_artist: Any, sumup: Any, settings: Any) -> Site:
    """Made before the browser starts: Playwright's event loop then owns this thread,
    where Django refuses ORM calls."""
    callback = f"{live_server.url}/accounts/sumup/callback/"
    settings.SUMUP_REDIRECT_URI = callback
    sumup.state.add_client("jersey-events-local", "local-secret", [callback])
    sumup.add_user(
        TWO_ACCOUNTS,
        [{"code": "MAAA1111", "name": "Gig Nights"}, {"code": "MBBB2222", "name": "Studio Sales"}],
    )
    artist = make_artist(is_approved=True, display_name="Nina Blue")
    return Site(live_server.url, sumup.authorize_url, artist)


@pytest.fixture
def walk(site: Site, browser: Browser, width: str) -> Iterator[Visit]:
    with Visit(browser, site.url, width, prefix="walk-") as opened:
        yield opened


def naming_no_merchant(route: Route) -> None:
    """SumUp's answer to Allow as it comes when it names no merchant: the site then asks
    which one. (A route sees only the first request of a redirect, so the fake's answer
    is changed here rather than our callback's request.)"""
    if route.request.method != "POST":
        route.continue_()
        return
    answer = route.fetch(max_redirects=0)
    parts = urlsplit(answer.headers["location"])
    kept = [(k, v) for k, v in parse_qsl(parts.query) if k != "merchant_code"]
    bare = urlunsplit(parts._replace(query=urlencode(kept)))
    route.fulfill(response=answer, headers={**answer.headers, "location": bare})


def stored(artist: ArtistProfile) -> ArtistProfile:
    return off_the_event_loop(lambda: ArtistProfile.objects.get(pk=artist.pk))


def connect_on_sumup(page: Page, walk: Visit, step: str, login: str | None = None) -> None:
    """From the dashboard, through our connect page and the fake SumUp's consent page."""
    page.click("#sumup-connect")
    expect(page.locator("h1")).to_have_text("Connect your SumUp account")
    walk.check(step)
    page.click("#sumup-continue")
    expect(page.locator("#allow")).to_be_visible()
    if login is not None:
        page.select_option("#user", login)
    # SumUp's page, not ours: the fake stands in for it and is not held to our checks.
    walk.screenshot(f"{step}-sumup")
    page.click("#allow")


def test_it_walks_an_artist_through_connecting_disconnecting_and_reconnecting(
    site: Site, walk: Visit
):
    page = walk.page
    status = page.locator("#sumup-status")

    page.goto("/accounts/dashboard/")
    expect(page.locator("h1")).to_have_text("Artist log in")
    walk.check("login")
    page.fill("#id_username", site.artist.user.username)
    page.fill("#id_password", PASSWORD)
    page.click("[type=submit]")
    expect(status).to_have_text("Not connected")
    walk.check("dashboard")

    connect_on_sumup(page, walk, "connect")
    expect(status).to_have_text("Connected")
    expect(page.locator("#sumup-merchant-code")).to_have_text(FIRST_MERCHANT)
    walk.check("connected")
    connected = stored(site.artist)
    assert connected.is_sumup_connected

    page.click("#sumup-disconnect")
    expect(page.locator("h1")).to_have_text("Disconnect SumUp?")
    expect(page.locator("#sumup-disconnect-consequence")).to_have_text(CONSEQUENCE)
    walk.check("disconnect-question")
    page.click("#sumup-keep")
    expect(status).to_have_text("Connected")
    expect(page.locator("#sumup-merchant-code")).to_have_text(FIRST_MERCHANT)
    walk.check("kept")
    kept = stored(site.artist)
    assert kept.is_sumup_connected
    assert kept.sumup_token_version == connected.sumup_token_version, "keeping changed nothing"

    page.click("#sumup-disconnect")
    page.click("#sumup-disconnect-confirm")
    expect(status).to_have_text("Not connected")
    expect(page.get_by_role("status")).to_contain_text("SumUp disconnected")
    expect(page.locator("#sumup-disconnect")).to_have_count(0)
    walk.check("disconnected")
    disconnected = stored(site.artist)
    assert disconnected.sumup_access_token is None and disconnected.sumup_merchant_code is None

    page.route(lambda url: url.startswith(site.authorize_url), naming_no_merchant)
    connect_on_sumup(page, walk, "connect-again", login=TWO_ACCOUNTS)
    expect(page.locator("h1")).to_have_text(
        "Which SumUp merchant account should receive your ticket payments?"
    )
    walk.check("choose-merchant")
    code, name = PICKED_MERCHANT
    page.check(f"input[name=merchant_code][value={code}]")
    page.click("text=Use this account")
    expect(status).to_have_text("Connected")
    expect(page.locator("#sumup-merchant-code")).to_have_text(code)
    expect(page.locator("#sumup-business-name")).to_have_text(name)
    walk.check("reconnected")
    reconnected = stored(site.artist)
    assert (reconnected.is_sumup_connected, reconnected.sumup_merchant_code) == (True, code)

    walk.assert_no_faults()
