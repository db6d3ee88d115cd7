"""An artist connects SumUp in a real browser: Playwright driving Debian's Chromium
against the live Django server and the fake SumUp, both on loopback. No page may break
its Content-Security-Policy on the way."""

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from playwright.sync_api import Browser, Page, expect

from accounts.models import ArtistProfile

if TYPE_CHECKING:
    from tests.support.browser import CspViolations
    from tests.support.walk import PASSWORD, off_the_event_loop
else:
    from support.browser import CspViolations
    from support.walk import PASSWORD, off_the_event_loop


@pytest.fixture
def artist(make_artist: Callable[..., ArtistProfile]) -> ArtistProfile:
    return make_artist(display_name="Nina Blue")


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context()
    violations = CspViolations(context)
    page = context.new_page()
    page.set_default_timeout(15_000)
    yield page
    context.close()
    violations.assert_none()


@pytest.mark.django_db(transaction=True)
def test_an_artist_logs_in_connects_sumup_and_sees_connected(
    live_server: Any, sumup: Any, settings: Any, artist: ArtistProfile, page: Page, tmp_path: Path
):
    callback = f"{live_server.url}/accounts/sumup/callback/"
    settings.SUMUP_REDIRECT_URI = callback
    sumup.state.add_client("jersey-events-local", "local-secret", [callback])
    profile = artist

    page.goto(f"{live_server.url}/accounts/dashboard/")
    page.fill("#id_username", profile.user.username)
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    expect(page.locator("#sumup-status")).to_have_text("Not connected")

    page.click("#sumup-connect")
    expect(page.locator("h1")).to_have_text("Connect your SumUp account")
    page.click("#sumup-continue")

    assert page.url.startswith(sumup.authorize_url)
    page.click("#allow")

    expect(page.locator("#sumup-status")).to_have_text("Connected")
    expect(page.locator("#sumup-merchant-code")).to_have_text("MH4H92C7")
    expect(page.locator("#sumup-business-name")).to_have_text("Harbour Lights Ltd")
    page.screenshot(path=str(tmp_path / "dashboard-connected.png"), full_page=True)
    stored = off_the_event_loop(lambda: ArtistProfile.objects.get(pk=profile.pk))
    assert stored.is_sumup_connected
    assert stored.sumup_merchant_code == "MH4H92C7"


@pytest.mark.django_db(transaction=True)
def test_an_artist_who_denies_on_sumup_sees_nothing_changed(
    live_server: Any, sumup: Any, settings: Any, artist: ArtistProfile, page: Page
):
    callback = f"{live_server.url}/accounts/sumup/callback/"
    settings.SUMUP_REDIRECT_URI = callback
    sumup.state.add_client("jersey-events-local", "local-secret", [callback])
    profile = artist
    page.goto(f"{live_server.url}/accounts/login/?next=/accounts/sumup/connect/")
    page.fill("#id_username", profile.user.username)
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.click("#sumup-continue")
    page.click("#deny")

    expect(page.locator(".messages")).to_contain_text("You did not allow the connection")
    expect(page.locator("#sumup-status")).to_have_text("Not connected")
