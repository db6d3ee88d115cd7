"""The staff overview in Chromium at a desktop's width (1400 px) and a phone's (390 px):
reached from the admin's home page, every chart drawn and visible, nothing wider than
the phone's screen, axe-core finding nothing serious or critical, no
Content-Security-Policy violation, and the sweep's live state read again by the page's
own script. A screenshot is left in artifacts/screenshots/ (git-ignored)."""

from datetime import timedelta
from typing import TYPE_CHECKING, Any

import pytest
from django.utils import timezone
from playwright.sync_api import Browser, expect

from accounts.models import User
from accounts.sumup import refresh_outcomes
from accounts.sumup.refresh import Outcome
from backfills.models import BackfillRun, RunStatus
from campaigns.models import Campaign, Recipient
from events import shared_redis
from operations.models import ConnectionDay

if TYPE_CHECKING:
    from tests.support.walk import PASSWORD, Visit
else:
    from support.walk import PASSWORD, Visit

pytestmark = pytest.mark.django_db(transaction=True)

CHARTS = (
    "connections-now",
    "connections-history",
    "refresh-hours",
    "campaign-rates",
    "campaign-conversion",
    "backfill-progress",
)
POLL_WAIT_MS = 15_000  # the page reads the state again every 5 s


@pytest.fixture
def site(live_server: Any, make_artist: Any) -> str:
    """What the charts draw, made before the browser starts (Playwright's event loop then
    owns this thread, where Django refuses ORM calls)."""
    shared_redis.client().flushdb()
    User.objects.create_superuser("root", "root@example.com", PASSWORD)
    for status, n in (("connected", 6), ("expired", 2), ("error", 1), ("not_connected", 4)):
        for _ in range(n):
            make_artist(sumup_connection_status=status, sumup_connected_at=timezone.now())
    for back in range(3, 10):
        for status, count in (("connected", 10 - back), ("expired", 1), ("not_connected", 4)):
            ConnectionDay.objects.create(
                day=timezone.localdate() - timedelta(days=back),
                status=status,
                count=count,
                recorded_at=timezone.now(),
            )
    for outcome in (Outcome.REFRESHED, Outcome.REFRESHED, Outcome.EXPIRED, Outcome.OVER_BUDGET):
        refresh_outcomes.count(outcome)
    refresh_outcomes.take()
    campaign = Campaign.objects.create(
        name="Harbour Lights spring reconnect, all approved artists",
        status=Campaign.Status.RUNNING,
        rate_limit="10/s",
        started_at=timezone.now(),
    )
    sent = timezone.now() - timedelta(days=3)
    for n, artist in enumerate(make_artist() for _ in range(5)):
        Recipient.objects.create(
            campaign=campaign,
            artist=artist,
            email=f"to{n}@example.com",
            status=Recipient.Status.DELIVERED if n else Recipient.Status.BOUNCED,
            sent_at=sent,
        )
    BackfillRun.objects.create(
        backfill="sumup_connection_status", status=RunStatus.RUNNING, rows_done=3, rows_total=8
    )
    url: str = live_server.url
    return url


def test_it_draws_every_chart_accessibly_and_within_the_screen_at_each_width(
    site: str, browser: Browser, width: str
):
    with Visit(browser, site, width) as visit:
        page = visit.page
        visit.log_in("/admin/login/", "root")
        page.get_by_role("link", name="Overview: connections, refreshes, campaigns").click()

        expect(page.locator("h1")).to_have_text("Overview: connections, refreshes, campaigns")
        for chart in CHARTS:
            svg = page.locator(f"#{chart} svg[role=img]")
            expect(svg).to_be_visible()
            box = svg.bounding_box()
            assert box is not None and box["width"] > 200 and box["height"] > 20, chart
        expect(page.locator("#connections-now svg")).to_have_attribute(
            "aria-label",
            "SumUp connections now: 6 connected, 2 needs reconnecting, "
            "1 connection error, 9 not connected.",
        )
        expect(page.locator("[data-refresh=refreshed]")).to_have_text("2")
        expect(page.locator("[data-refresh=budget]")).to_contain_text("of 64,800 calls")
        expect(page.locator("[data-refresh=budget_warning]")).to_be_hidden()
        first_read = page.locator("[data-refresh=as_of]").inner_text()
        expect(page.locator("[data-refresh=as_of]")).not_to_have_text(
            first_read, timeout=POLL_WAIT_MS
        )

        visit.check("overview")
        visit.assert_no_faults()
