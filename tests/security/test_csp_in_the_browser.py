"""The admin's and the artists' pages keep to their Content-Security-Policy in Chromium:
not one violation on any page or frame, while the pages' own scripts (live progress
polling) do run. And the policy is enforced: a script injected inline is blocked and
seen as a violation."""

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytest
from playwright.sync_api import Browser, Page, expect

from accounts.models import ArtistProfile, User
from backfills.models import BackfillRun
from campaigns import services, unsubscribe
from campaigns.models import Campaign, Recipient

if TYPE_CHECKING:
    from tests.support.browser import CspViolations, chromium
else:
    from support.browser import CspViolations, chromium

pytestmark = pytest.mark.django_db(transaction=True)

PASSWORD = "correct horse battery staple"


@dataclass(frozen=True)
class Site:
    url: str
    artist: ArtistProfile
    campaign: Campaign
    run: BackfillRun
    unsubscribe_path: str


@pytest.fixture
def site(live_server: Any, make_artist: Any) -> Site:
    """Everything the pages show, made before the browser starts (Playwright's event loop
    then owns this thread, where Django refuses ORM calls)."""
    User.objects.create_superuser("root", "root@example.com", PASSWORD)
    artist = make_artist(is_approved=True, display_name="Nina Blue")
    campaign = services.create(Campaign(name="Reconnect", rate_limit=""), actor="test")
    services.start(campaign.pk, actor="test")
    # Paused, it stays live (its page keeps polling) whether or not a worker of an
    # earlier test is still consuming: a running one could finish before the page opens.
    services.pause(campaign.pk, actor="test")
    recipient = Recipient.objects.get(campaign=campaign)
    run = BackfillRun.objects.create(backfill="sumup_connection_status", status="running")
    link = unsubscribe.unsubscribe_url(recipient.pk)
    return Site(live_server.url, artist, campaign, run, link.split("/", 3)[3])


@pytest.fixture
def browser() -> Iterator[Browser]:
    with chromium() as launched:
        yield launched


@pytest.fixture
def watched(site: Site, browser: Browser) -> Iterator[tuple[Page, CspViolations]]:
    context = browser.new_context(base_url=site.url)
    violations = CspViolations(context)
    page = context.new_page()
    page.set_default_timeout(15_000)
    yield page, violations
    context.close()


def log_in(page: Page, path: str, username: str) -> None:
    page.goto(path)
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("[type=submit]")


def test_the_admin_pages_break_no_rule_and_their_scripts_run(site: Site, watched):
    page, violations = watched
    log_in(page, "/admin/login/", "root")
    expect(page.locator("#site-name")).to_be_visible()

    campaign = f"/admin/campaigns/campaign/{site.campaign.pk}"
    for path in (
        "/admin/",
        "/admin/campaigns/campaign/",
        f"{campaign}/change/",
        "/admin/accounts/artistprofile/",
        f"/admin/accounts/artistprofile/{site.artist.pk}/change/",
        "/admin/accounts/user/add/",
        "/admin/django_celery_beat/periodictask/add/",
    ):
        page.goto(path)
        expect(page.locator("#content")).to_be_visible()

    # The progress page polls its JSON every 2 s: its inline script runs.
    with page.expect_request(lambda request: "progress.json" in request.url, timeout=10_000):
        page.goto(f"{campaign}/progress/")
    with page.expect_request(lambda request: "/preview.html/" in request.url):
        page.goto(f"{campaign}/preview/?artist={site.artist.pk}")
    expect(page.frame_locator("iframe.email-html").locator("body")).to_contain_text(
        "Hello Nina Blue"
    )
    # The backfills list polls each running run's progress.
    with page.expect_request(lambda request: f"/{site.run.pk}/progress/" in request.url):
        page.goto("/admin/backfills/backfillrun/")

    violations.assert_none()


def test_the_artists_pages_break_no_rule(site: Site, watched):
    page, violations = watched
    log_in(page, "/accounts/login/", site.artist.user.username)
    expect(page.locator("#sumup-status")).to_have_text("Not connected")

    page.click("#sumup-connect")
    expect(page.locator("h1")).to_have_text("Connect your SumUp account")
    page.goto(f"/{site.unsubscribe_path}")
    expect(page.locator("h1")).to_have_text("Unsubscribe")
    page.goto("/email/unsubscribe/not-a-token/")
    expect(page.locator("h1")).to_have_text("This link does not work")

    violations.assert_none()


def test_an_injected_inline_script_is_blocked_and_seen(site: Site, watched):
    page, violations = watched
    page.goto("/accounts/login/")

    page.evaluate(
        """() => {
          const script = document.createElement("script");
          script.textContent = "window.injected = true";
          document.head.append(script);
        }"""
    )

    assert page.evaluate("() => window.injected === undefined")
    page.wait_for_timeout(200)  # the violation event is queued as a task
    assert any("script-src" in seen for seen in violations.seen), violations.seen
