"""The pages artists and staff open, in Chromium at a desktop's width (1400 px) and a
phone's (390 px): axe-core finds nothing serious or critical on any of them, each has a
level-one heading, none is wider than the phone's screen, the admin's artist list shows
every column at the desktop's width, and the campaign preview shows the email's HTML. A
screenshot of each page is left in artifacts/screenshots/ (git-ignored) for a person to
look at."""

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import pytest
from django.utils import timezone
from playwright.sync_api import Browser, expect

from accounts.models import ArtistProfile, ConnectionStatus, User
from campaigns import services
from campaigns.models import Campaign

if TYPE_CHECKING:
    from tests.support.walk import PASSWORD, Visit
else:
    from support.walk import PASSWORD, Visit

pytestmark = pytest.mark.django_db(transaction=True)


@dataclass(frozen=True)
class Site:
    url: str
    artist: ArtistProfile
    lapsed_artist: ArtistProfile
    campaign: Campaign


@pytest.fixture
def site(live_server: Any, make_artist: Any, sumup: Any, settings: Any) -> Site:
    """Everything the pages show, made before the browser starts (Playwright's event loop
    then owns this thread, where Django refuses ORM calls)."""
    callback = f"{live_server.url}/accounts/sumup/callback/"
    settings.SUMUP_REDIRECT_URI = callback
    sumup.state.add_client("jersey-events-local", "local-secret", [callback])
    User.objects.create_superuser("root", "root@example.com", PASSWORD)
    artist = make_artist(is_approved=True, display_name="Nina Blue")
    # Every column of the admin's list filled, at the width of real values.
    lapsed = make_artist(
        is_approved=True,
        display_name="Harbour Lights Community Choir",
        sumup_connection_status=ConnectionStatus.EXPIRED,
        sumup_merchant_code="MH4H92C7",
        sumup_expires_at=timezone.now() - timedelta(days=3),
        sumup_last_refresh_at=timezone.now() - timedelta(days=4),
        sumup_refresh_failures=12,
    )
    User.objects.filter(pk=lapsed.user_id).update(email="bookings.harbourlights@example.com")
    campaign = services.create(Campaign(name="Reconnect", rate_limit=""), actor="test")
    return Site(live_server.url, artist, lapsed, campaign)


@pytest.fixture
def visit(site: Site, browser: Browser, width: str) -> Iterator[Visit]:
    with Visit(browser, site.url, width) as opened:
        yield opened


def test_the_pages_an_artist_meets_are_accessible_and_fit_a_phone(site: Site, visit: Visit):
    page = visit.page
    page.goto("/")
    expect(page.locator("#landing-login")).to_be_visible()
    visit.check("landing-anonymous")

    page.goto("/accounts/login/")
    visit.check("login")
    page.fill("#id_username", site.artist.user.username)
    page.fill("#id_password", "not the password")
    page.click("[type=submit]")
    expect(page.get_by_role("alert")).to_contain_text("did not match")
    expect(page.locator("#id_username")).to_have_value(site.artist.user.username)
    visit.check("login-failed")

    page.fill("#id_password", PASSWORD)
    page.click("[type=submit]")
    expect(page.locator("#sumup-status")).to_have_text("Not connected")
    visit.check("dashboard")

    page.goto("/")
    expect(page.locator("#landing-dashboard")).to_be_visible()
    visit.check("landing-artist")

    page.goto("/accounts/sumup/connect/")
    expect(page.locator("h1")).to_have_text("Connect your SumUp account")
    visit.check("connect")

    page.click("#sumup-continue")
    page.click("#deny")
    expect(page.get_by_role("status")).to_contain_text("You did not allow the connection")
    visit.check("dashboard-with-a-message")

    visit.assert_no_faults()


def test_an_artist_whose_sumup_lapsed_reads_plain_words(site: Site, visit: Visit):
    visit.log_in("/accounts/login/", site.lapsed_artist.user.username)

    expect(visit.page.locator("#sumup-status")).to_have_text("SumUp needs you to reconnect")
    visit.check("dashboard-lapsed")
    visit.assert_no_faults()


def test_the_staff_pages_are_accessible_and_show_what_they_should(site: Site, visit: Visit):
    page = visit.page
    visit.log_in("/admin/login/", "root")
    expect(page.locator("#site-name")).to_have_text("Jersey Events admin")
    visit.check("admin-index")

    page.goto("/admin/accounts/artistprofile/")
    expect(page.locator("#result_list")).to_contain_text("Harbour Lights Community Choir")
    visit.check("admin-artists")
    if visit.width == "desktop":
        hidden = page.evaluate(
            """() => {
              const table = document.getElementById("result_list");
              return table.scrollWidth - table.parentElement.clientWidth;
            }"""
        )
        assert hidden <= 0, f"the artist list is {hidden} px wider than its box"

    campaign = f"/admin/campaigns/campaign/{site.campaign.pk}"
    page.goto(f"{campaign}/preview/?artist={site.artist.pk}")
    email = page.frame_locator("iframe.email-html")
    expect(email.locator("body")).to_contain_text("Hello Nina Blue")
    expect(email.locator("a", has_text="Connect SumUp")).to_be_visible()
    visit.check("campaign-preview")

    page.goto(f"{campaign}/progress/")
    expect(page.locator("#p-total")).to_be_visible()
    visit.check("campaign-progress")

    visit.assert_no_faults()
