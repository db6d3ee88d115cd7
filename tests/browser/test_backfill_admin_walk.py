"""Staff run a backfill from the admin in Chromium, at a desktop's width (1400 px) and a
phone's (390 px), against the live server and a real Celery worker: they start one after
a confirmation in numbers, watch it to its end with every field of its progress agreeing
at each poll, then start another and cancel it after a confirmation. axe-core finds
nothing serious or critical on any page, no page breaks its Content-Security-Policy or is
wider than the phone, and each page is left as a screenshot in artifacts/screenshots/."""

import re
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest
from playwright.sync_api import Browser, expect

from accounts.models import ArtistProfile, User
from backfills.models import BackfillRun, RunStatus

if TYPE_CHECKING:
    from tests.support.walk import PASSWORD, Visit, off_the_event_loop
else:
    from support.walk import PASSWORD, Visit, off_the_event_loop

pytestmark = pytest.mark.django_db(transaction=True)

NAME = "sumup_connection_status"
ROWS = 1_500
POLL_TIMEOUT_MS = 30_000  # a poll every 2 s; a busy machine may be slower

# Every live field of the run's page, read at one instant (between two of its scripts'
# turns, so all from the same poll).
READ_FIELDS = """() => {
  const field = (name) => document.querySelector('span[data-field="' + name + '"]').textContent;
  const state = document.querySelector('span[data-field="state"]');
  return {
    polls: Number(state.dataset.polls || 0),
    active: state.dataset.active,
    state: state.textContent,
    rows: field("rows_text"),
    percent: field("percent_text"),
    rate: field("rate_text"),
    eta: field("eta_text"),
    bar: document.querySelector('progress[data-field="percent"]').value,
    buttons: Array.from(document.querySelectorAll("form[data-action]"))
      .filter((form) => !form.hidden).map((form) => form.dataset.action),
  };
}"""
ROWS_OF = re.compile(r"^([\d,]+) of ([\d,]+) rows$")


def disagreements(seen: dict[str, Any]) -> list[str]:
    """What in one reading of the run's fields contradicts the rest of it."""
    wrong = []
    if seen["percent"] != f"{seen['bar']:.1f}%":
        wrong.append("the bar and its percentage differ")
    rows = ROWS_OF.match(seen["rows"])
    if rows:
        done, total = (int(n.replace(",", "")) for n in rows.groups())
        if abs(done * 100 / max(total, 1) - seen["bar"]) > 0.1:
            wrong.append("the bar and the rows differ")
    state = seen["state"]
    if state in ("Succeeded", "Cancelled", "Failed"):
        if seen["active"] != "false" or seen["eta"] != "—" or seen["buttons"]:
            wrong.append("an ended run still looks active")
        if state == "Succeeded" and (seen["bar"] != 100 or not seen["rows"].endswith("none left")):
            wrong.append("a succeeded run's bar is not full")
    elif state in ("Running", "Cancelling"):
        if seen["active"] != "true" or (state == "Running" and rows is None):
            wrong.append("a moving run does not show its rows")
        if seen["eta"] != "—" and not seen["eta"].startswith("about "):
            wrong.append("the ETA is not a duration")
        if seen["eta"] != "—" and (state != "Running" or seen["rate"] == "—"):
            wrong.append("an ETA without a rate")
        expected = ["pause", "cancel"] if state == "Running" else []
        if seen["buttons"] != expected:
            wrong.append(f"offers {seen['buttons']}, expected {expected}")
    else:
        wrong.append(f"unexpected state {state!r}")
    return [f"{problem}: {seen}" for problem in wrong]


class RunVisit(Visit):
    """A visit that reads a run's page as its poll renders it."""

    def reading(self, after: int | None = None) -> dict[str, Any]:
        """The run page's fields: as first rendered, or once its poll has rendered a
        payload after the `after`th."""
        if after is not None:
            self.page.wait_for_function(
                "n => Number(document.querySelector('span[data-field=\"state\"]')"
                ".dataset.polls || 0) > n",
                arg=after,
                timeout=POLL_TIMEOUT_MS,
            )
        seen: dict[str, Any] = self.page.evaluate(READ_FIELDS)
        self.faults += disagreements(seen)
        return seen

    def start_from_the_list(self) -> None:
        page = self.page
        page.goto("/admin/backfills/backfillrun/")
        expect(page.get_by_text("Start a backfill")).to_have_count(1)
        page.get_by_role("link", name="Start a backfill").click()
        expect(page.locator("h1")).to_have_text("Start a backfill")
        expect(page.get_by_text("Start a backfill")).to_have_count(1)
        page.click(f"#start-{NAME}")


@pytest.fixture
def staff_site(live_server: Any, legacy_artists: Any, settings: Any, project_worker: Any) -> str:
    """Rows for the backfill and a superuser, made before the browser starts (Playwright's
    event loop then owns this thread, where Django refuses ORM calls)."""
    settings.BACKFILL_BATCH_SIZE = 100
    # Batches steered toward 1 ms stay at the smallest size, 100 rows, each waiting
    # BACKFILL_PAUSE_MS: a run lasts several of the page's polls.
    settings.BACKFILL_TARGET_BATCH_MS = 1
    settings.BACKFILL_PAUSE_MS = 400
    legacy_artists(ROWS)
    User.objects.create_superuser("root", "root@example.com", PASSWORD)
    url: str = live_server.url
    return url


@pytest.fixture
def visit(staff_site: str, browser: Browser, width: str) -> Iterator[RunVisit]:
    with RunVisit(browser, staff_site, width) as opened:
        yield opened


def test_it_lets_staff_start_watch_and_cancel_a_backfill_with_confirmations(
    visit: RunVisit, settings: Any
):
    page = visit.page
    visit.log_in("/admin/login/?next=/admin/backfills/backfillrun/", "root")
    expect(page.locator("#result_list, .paginator").first).to_be_visible()
    visit.check("backfills-empty")

    # Start, after a confirmation in numbers.
    visit.start_from_the_list()
    expect(page.locator("#start-question")).to_have_text(
        f"Start '{NAME}' over about {ROWS:,} rows, in batches of 100?"
    )
    visit.check("backfill-start-confirmation")
    assert off_the_event_loop(BackfillRun.objects.count) == 0, "asking started nothing"
    page.click("#confirm-start")
    expect(page.locator("span[data-field='state']")).to_be_visible()
    visit.check("backfill-run-started")

    # Watch it: each poll's fields agree, through to the end.
    readings = [visit.reading()]
    while readings[-1]["active"] == "true":
        readings.append(visit.reading(after=readings[-1]["polls"]))
        if len(readings) == 2:
            visit.check("backfill-run-running")
    assert readings[-1]["state"] == "Succeeded"
    assert readings[-1]["bar"] == 100 and readings[-1]["eta"] == "—"
    assert any(0 < r["bar"] < 100 for r in readings if r["state"] == "Running"), readings
    visit.check("backfill-run-succeeded")

    # Another run, slower, cancelled after a confirmation.
    off_the_event_loop(
        lambda: ArtistProfile.objects.update(sumup_connection_status=None)  # all to do again
    )
    settings.BACKFILL_PAUSE_MS = 2_000
    visit.start_from_the_list()
    expect(page.locator("#start-question")).to_contain_text(f"over about {ROWS:,} rows")
    page.click("#confirm-start")
    expect(page.locator("#run-cancel")).to_be_visible()
    page.click("#run-cancel")
    expect(page.locator(".cancel-questions")).to_contain_text(
        re.compile(
            rf"Cancel '{NAME}' run #\d+\? [\d,]+ of {ROWS:,} rows done stay done; the rest "
            "are not touched until a new run."
        )
    )
    visit.check("backfill-cancel-confirmation")
    page.click("#confirm-cancel")
    page.wait_for_url(re.compile(r"/admin/backfills/backfillrun/\d+/change/$"))
    expect(page.locator("#run-cancel")).to_be_hidden()
    reading = visit.reading()
    while reading["active"] == "true":
        reading = visit.reading(after=reading["polls"])
    assert reading["state"] == "Cancelled" and reading["buttons"] == []
    visit.check("backfill-run-cancelled")

    page.goto("/admin/backfills/backfillrun/")
    expect(page.locator("#result_list span[data-field='state']")).to_have_text(
        ["Cancelled", "Succeeded"]
    )
    visit.check("backfills-two-runs")

    first, second = off_the_event_loop(lambda: list(BackfillRun.objects.order_by("pk")))
    assert (first.status, second.status) == (RunStatus.SUCCEEDED, RunStatus.CANCELLED)
    left = off_the_event_loop(
        ArtistProfile.objects.filter(sumup_connection_status__isnull=True).count
    )
    assert second.rows_done < ROWS and left == ROWS - second.rows_done, "the rest untouched"
    visit.assert_no_faults()
