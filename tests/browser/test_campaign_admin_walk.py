"""Staff run a campaign in Chromium, at a desktop's width (1400 px) and a phone's (390 px):
the draft's preview shows the email's HTML; Start asks first, with the numbers; the
confirmed campaign sends through a real Celery worker to the fake email provider while
pause, a look at the cancel question, and resume act on it; and the progress page's
every field moves together from its poll, each render exactly the payload progress.json
served, until it says Finished, its buttons gone and its poll stopped. axe-core finds
nothing serious or critical on any page, none is wider than the phone, no page breaks
the Content-Security-Policy, and a screenshot of each is left in artifacts/screenshots/
(git-ignored)."""

import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import pytest
from django.contrib.auth.models import Permission
from django.utils import timezone
from playwright.sync_api import Browser, Page, expect

from accounts.models import ArtistProfile, User
from campaigns import services
from campaigns.models import Campaign, CampaignAction, Suppression
from events import shared_redis
from fakes.brevo import FakeBrevo

if TYPE_CHECKING:
    from tests.support.walk import PASSWORD, Visit, off_the_event_loop
else:
    from support.walk import PASSWORD, Visit, off_the_event_loop

pytestmark = pytest.mark.django_db(transaction=True)

EMAILED = 8  # artists the campaign emails, at 1/s: long enough to pause on the way
PERMISSIONS = ("view_campaign", "start_campaign", "cancel_campaign", "view_artistprofile")
FINISH_DEADLINE = 90.0  # seconds the campaign may take on a slow machine
POLL_GAP = 20_000  # ms: the longest a poll of the page may take to come (it polls every 2 s)
RENDER_DEADLINE = 5.0  # seconds for the page to show a poll's answer once it has it

# Everything the progress page shows, read in one go.
READ_PAGE = """() => {
  const shown = el => !el.hidden;
  const bar = document.getElementById("p-bar");
  return {
    fields: Object.fromEntries([...document.querySelectorAll("[data-field]")]
      .map(el => [el.dataset.field, el.textContent])),
    bar: bar.hidden ? null : bar.value,
    actions: [...document.querySelectorAll("[data-action]")].filter(shown)
      .map(el => el.dataset.action),
    byStatus: Object.fromEntries([...document.querySelectorAll("#p-by-status tr")]
      .map(row => [row.cells[0].textContent, Number(row.cells[1].textContent)])),
  };
}"""


@dataclass(frozen=True)
class Site:
    url: str
    campaign: Campaign
    emails: list[str]
    esp: FakeBrevo


@pytest.fixture
def esp(settings: Any) -> Iterator[FakeBrevo]:
    """The fake Brevo, which the worker's sends reach through anymail's Brevo backend."""
    with FakeBrevo() as fake:
        settings.EMAIL_BACKEND = FakeBrevo.BACKEND
        settings.ANYMAIL = fake.anymail_settings()
        yield fake


@pytest.fixture
def site(
    live_server: Any, make_artist: Callable[..., ArtistProfile], esp: FakeBrevo, project_worker: Any
) -> Site:
    """A member of staff who may run campaigns, their audience (one suppressed, one
    already notified) and a draft, made before the browser starts (Playwright's event
    loop then owns this thread, where Django refuses ORM calls)."""
    shared_redis.client().flushdb()  # no rate-limit window left by an earlier test
    staff = User.objects.create_user("campaigner", password=PASSWORD, is_staff=True)
    staff.user_permissions.set(Permission.objects.filter(codename__in=PERMISSIONS))
    emailed = [make_artist(is_approved=True) for _ in range(EMAILED)]
    suppressed = make_artist(is_approved=True)
    Suppression.objects.create(email=suppressed.user.email, reason=Suppression.Reason.MANUAL)
    make_artist(is_approved=True, sumup_lapse_notified_at=timezone.now() - timedelta(days=2))
    campaign = services.create(Campaign(name="Autumn reconnect", rate_limit="1/s"), actor="test")
    return Site(live_server.url, campaign, [artist.user.email for artist in emailed], esp)


@pytest.fixture
def visit(site: Site, browser: Browser, width: str) -> Iterator[Visit]:
    with Visit(browser, site.url, width, prefix="campaign-walk-") as opened:
        yield opened


def as_the_page_shows(payload: dict[str, Any], fields: list[str]) -> dict[str, Any]:
    """What the page must show for this payload: each field's text, the bar (or none),
    the buttons and the table by status."""
    return {
        "fields": {name: str(payload[name]) for name in fields},
        "bar": payload["bar"],
        "actions": payload["actions"],
        "byStatus": payload["by_status"],
    }


def shows_all_of(page: Page, expected: dict[str, Any], before: dict[str, Any] | None) -> None:
    """Wait for the page to show `expected`, every field at once: until then, each look
    at it finds the render of the poll `before` it whole, never a mix of the two."""
    deadline = time.monotonic() + RENDER_DEADLINE
    while (shown := page.evaluate(READ_PAGE)) != expected:
        if before is not None:
            assert shown == before, "the page shows a mix of two polls"
        assert time.monotonic() < deadline, f"the page shows {shown}, not {expected}"
        page.wait_for_timeout(50)


def test_it_walks_a_campaign_from_its_draft_to_finished(site: Site, visit: Visit) -> None:
    page = visit.page
    visit.log_in("/admin/login/", "campaigner")
    expect(page.locator("#site-name")).to_be_visible()
    base = f"/admin/campaigns/campaign/{site.campaign.pk}"

    page.goto(f"{base}/preview/")
    email = page.frame_locator("iframe.email-html")
    expect(email.locator("body")).to_contain_text("Hello")
    assert email.locator("body").inner_text().strip(), "the email's HTML frame is blank"
    frame_box = page.locator("iframe.email-html").bounding_box()
    assert frame_box is not None and frame_box["height"] > 100
    visit.check("preview")

    page.goto(f"{base}/progress/")
    state = page.locator("#p-state")
    expect(state).to_have_text(f"Draft — not started; {EMAILED} artists would be emailed")
    expect(page.locator("#p-bar")).to_be_hidden()
    expect(page.locator("#p-eta")).to_have_text("—")
    expect(page.locator("#p-start")).to_be_visible()
    expect(page.locator("#p-pause")).to_be_hidden()
    visit.check("draft")

    page.click("#p-start")
    # 8 sends 1.045 s apart at 1/s (the dispatcher's spacing): about 8 s.
    question = page.locator("#confirm-question")
    expect(question).to_have_text(f"Send {EMAILED} emails over about 8 s (rate limit 1/s)?")
    expect(page.locator("#content-main")).to_contain_text(
        "Skipped: 1 suppressed (the address unsubscribed, bounced or complained) and 1 "
        "already notified"
    )
    visit.check("confirm-start")
    page.click("#confirm")
    messages = page.locator(".messagelist")
    expect(messages).to_contain_text(f"Started: {EMAILED} emails queued (1/s); 2 skipped.")
    expect(state).to_have_text("Running")
    expect(page.locator("#p-bar")).to_be_visible()
    visit.check("running")

    page.click("#p-pause")
    expect(messages).to_contain_text("Paused: no email goes out until the campaign is resumed")
    expect(state).to_have_text("Paused")
    expect(page.locator("#p-resume")).to_be_visible()
    expect(page.locator("#p-pause")).to_be_hidden()
    visit.check("paused")

    page.click("#p-cancel")
    expect(question).to_have_text(
        re.compile(r"Cancel\? \d+ emails? not yet sent will never be sent; \d+ already sent")
    )
    visit.check("confirm-cancel")
    page.click("#confirm-back")
    expect(state).to_have_text("Paused")
    page.click("#p-resume")
    expect(messages).to_contain_text("Resumed:")

    polls: list[str] = []
    page.on("request", lambda request: polls.append(request.url))
    fields = sorted(page.evaluate(READ_PAGE)["fields"])
    seen: list[dict[str, Any]] = []
    deadline = time.monotonic() + FINISH_DEADLINE
    while not seen or seen[-1]["live"]:
        assert time.monotonic() < deadline, f"not finished in time: {seen[-1:]}"
        with page.expect_response(lambda r: "progress.json" in r.url, timeout=POLL_GAP) as got:
            pass
        payload: dict[str, Any] = got.value.json()
        before = as_the_page_shows(seen[-1], fields) if seen else None
        shows_all_of(page, as_the_page_shows(payload, fields), before)
        seen.append(payload)

    finished = seen[-1]
    assert (finished["state"], finished["bar"], finished["actions"]) == ("Finished", 1.0, [])
    assert (finished["sent"], finished["skipped"], finished["remaining"]) == (EMAILED, 2, 0)
    assert any(0 < p["sent"] < EMAILED for p in seen), "the page moved while sending"
    expect(page.locator("#p-eta")).to_have_text("—")
    expect(page.locator("#p-bar-text")).to_have_text("100% done")
    visit.check("finished")
    asked = polls.count(got.value.url)
    page.wait_for_timeout(3_000)  # over a poll's interval
    assert polls.count(got.value.url) == asked, "the page stops polling once it is over"

    page.goto("/admin/campaigns/campaign/")
    expect(page.locator("#result_list")).to_contain_text("Finished")
    expect(page.locator("#result_list")).to_contain_text(f"100% done · {EMAILED} sent")
    visit.check("list")

    visit.assert_no_faults()
    assert all(site.esp.state.accepted_for(email) == 1 for email in site.emails)
    changes = off_the_event_loop(
        lambda: list(
            CampaignAction.objects.filter(campaign=site.campaign, user__username="campaigner")
            .order_by("at")
            .values_list("action", flat=True)
        )
    )
    assert changes == ["started", "paused", "resumed"]
