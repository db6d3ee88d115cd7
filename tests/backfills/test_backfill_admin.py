"""The backfill admin: every progress field from one payload, in the list, on a run's page
and in the poll's JSON; start and cancel only after a confirmation in numbers; on a run's
page, only the actions that apply to it now."""

import re
from datetime import datetime, timedelta
from html import unescape
from typing import Any

import pytest
import time_machine
from django.contrib.auth.models import Permission
from django.test import Client
from django.utils import timezone

from accounts.models import User
from backfills import control
from backfills.models import BackfillRun, RunStatus
from backfills.status import NOTHING, status_payload

NAME = "sumup_connection_status"
LIST = "/admin/backfills/backfillrun/"
START = f"{LIST}start/"

pytestmark = pytest.mark.django_db

_LIVE = re.compile(
    r'<(span|progress) data-backfill-run="(\d+)" data-field="(\w+)"[^>]*?'
    r'(?:value="([\d.]+)"[^>]*)?>([^<]*)<'
)


def shown(html: str, run: BackfillRun) -> dict[str, str]:
    """The live fields a page shows for `run`: each text, and the bar's value."""
    found = {}
    for tag, run_id, field, value, text in _LIVE.findall(html):
        if int(run_id) == run.pk:
            found[field] = value if tag == "progress" else unescape(text)
    return found


def batches(end: datetime, *seconds_before: int, rows: int = 100) -> list[dict[str, Any]]:
    """Recent-batch entries as the engine writes them, `seconds_before` `end` each."""
    return [
        {"rows": rows, "ms": 50.0, "at": (end - timedelta(seconds=s)).isoformat()}
        for s in seconds_before
    ]


def a_run(status: str, name: str = NAME, **fields: Any) -> BackfillRun:
    now = timezone.now()
    moving = status not in (RunStatus.PENDING,)
    run = BackfillRun.objects.create(
        backfill=name,
        status=status,
        generation=1,
        started_at=now if moving else None,
        heartbeat_at=now if moving else None,
        **fields,
    )
    run.events.create(action="start" if moving else "record")
    return run


def staff(*codenames: str) -> User:
    user = User.objects.create_user(f"staff-{'-'.join(codenames) or 'none'}", is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(codename__in=codenames))
    return user


# --- one payload ------------------------------------------------------------------------


def test_it_renders_the_list_the_run_page_and_the_json_from_one_payload(admin_client: Client):
    with time_machine.travel(timezone.now(), tick=False):
        now = timezone.now()
        moving = a_run(
            RunStatus.RUNNING,
            "moving",
            rows_total=10_000,
            rows_done=3_000,
            recent_batches=batches(now, 10, 8, 6, 4, 2, 0),
        )
        done = a_run(RunStatus.SUCCEEDED, "done", rows_total=1_000, rows_done=990)
        BackfillRun.objects.filter(pk=done.pk).update(finished_at=now + timedelta(seconds=10))
        waiting = a_run(RunStatus.PENDING, "waiting", rows_total=100_000)

        listing = admin_client.get(LIST).text
        for run in (moving, done, waiting):
            payload = admin_client.get(f"{LIST}{run.pk}/progress/").json()
            page = admin_client.get(f"{LIST}{run.pk}/change/").text
            for html in (listing, page):
                fields = shown(html, run)
                assert fields.pop("percent") == str(payload["percent"])
                assert fields and all(text == payload[field] for field, text in fields.items())
            assert {"state", "rows_text", "percent_text", "rate_text", "eta_text"} <= set(
                shown(listing, run)
            )

    assert shown(listing, moving)["state"] == "Running"
    assert shown(listing, moving)["rate_text"] == "50 rows/s"
    assert shown(listing, moving)["eta_text"] == "about 2 min"  # 7,000 rows at 50 rows/s
    assert shown(listing, done)["state"] == "Succeeded"


def test_it_shows_a_finished_run_with_a_full_bar_its_average_and_no_eta():
    run = a_run(RunStatus.RUNNING, rows_total=1_000, rows_done=990)
    assert run.started_at is not None
    BackfillRun.objects.filter(pk=run.pk).update(
        status=RunStatus.SUCCEEDED, finished_at=run.started_at + timedelta(seconds=10)
    )
    run.refresh_from_db()

    payload = status_payload(run)

    assert (payload["state"], payload["percent"], payload["percent_text"]) == (
        "Succeeded",
        100.0,
        "100.0%",
    )
    assert payload["rows_text"] == "990 rows done, none left"
    assert payload["rate_text"] == "99 rows/s on average"
    assert (payload["eta_seconds"], payload["eta_text"]) == (None, NOTHING)
    assert payload["actions"] == [] and payload["active"] is False


def test_it_shows_a_pending_run_with_an_empty_bar_and_no_rate_or_eta():
    payload = status_payload(a_run(RunStatus.PENDING, rows_total=100_000))

    assert (payload["state"], payload["percent"]) == ("Pending", 0.0)
    assert payload["rows_text"] == "0 of about 100,000 rows: waiting for a worker"
    assert (payload["rate_text"], payload["eta_text"], payload["eta_seconds"]) == (
        NOTHING,
        NOTHING,
        None,
    )
    assert payload["actions"] == ["pause", "cancel"]


def test_it_shows_a_stalled_run_as_stalled_where_it_stopped_with_no_rate_or_eta(settings):
    settings.BACKFILL_STALE_SECONDS = 60
    with time_machine.travel(timezone.now(), tick=False) as traveller:
        run = a_run(
            RunStatus.RUNNING,
            rows_total=10_000,
            rows_done=2_500,
            recent_batches=batches(timezone.now(), 6, 4, 2, 0),
        )
        traveller.shift(timedelta(minutes=2, seconds=5))

        payload = status_payload(run)

    assert payload["state"] == "Stalled — no progress for 2 min"
    assert (payload["stalled"], payload["no_progress_seconds"]) == (True, 125)
    assert (payload["percent"], payload["rows_text"]) == (25.0, "2,500 of 10,000 rows")
    assert (payload["rate_text"], payload["eta_text"], payload["eta_seconds"]) == (
        NOTHING,
        NOTHING,
        None,
    )


def test_it_never_shows_an_eta_of_zero_for_a_run_with_no_rows_left():
    with time_machine.travel(timezone.now(), tick=False):
        run = a_run(
            RunStatus.RUNNING,
            rows_total=600,
            rows_done=600,
            recent_batches=batches(timezone.now(), 4, 2, 0),
        )
        payload = status_payload(run)

    assert payload["state"] == "Running" and payload["rate_text"] == "50 rows/s"
    assert (payload["eta_seconds"], payload["eta_text"]) == (None, NOTHING)


# --- actions that apply now -------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "offered"),
    [
        (RunStatus.PENDING, {"pause", "cancel"}),
        (RunStatus.RUNNING, {"pause", "cancel"}),
        (RunStatus.PAUSED, {"resume", "cancel"}),
        (RunStatus.FAILED, {"retry"}),
        (RunStatus.CANCELLING, set()),
        (RunStatus.SUCCEEDED, set()),
        (RunStatus.CANCELLED, set()),
    ],
)
def test_it_offers_on_a_runs_page_only_the_actions_valid_in_its_state(
    status: str, offered: set[str], admin_client: Client
):
    run = a_run(status)

    page = admin_client.get(f"{LIST}{run.pk}/change/").text

    buttons = dict(re.findall(r'data-action="(\w+)"( hidden)?>', page))
    assert set(buttons) == {"pause", "resume", "retry", "cancel"}, "all there, for the poll"
    assert {action for action, hidden in buttons.items() if not hidden} == offered
    assert set(status_payload(run)["actions"]) == offered


def test_it_offers_a_button_only_to_staff_with_its_permission(client: Client):
    run = a_run(RunStatus.RUNNING)
    client.force_login(staff("view_backfillrun", "pause_backfillrun"))

    page = client.get(f"{LIST}{run.pk}/change/").text

    assert re.findall(r'data-action="(\w+)"', page) == ["pause"]


def test_it_returns_to_the_runs_page_after_a_button_there(admin_client: Client):
    run = a_run(RunStatus.RUNNING)

    pressed = admin_client.post(
        LIST, {"action": "pause_runs", "_selected_action": run.pk, "return_to_run": "1"}
    )

    assert pressed.status_code == 302 and pressed["Location"] == f"{LIST}{run.pk}/change/"
    assert BackfillRun.objects.get(pk=run.pk).status == RunStatus.PAUSED


# --- confirm, then act -----------------------------------------------------------------


def test_it_asks_to_confirm_a_start_with_its_numbers_and_starts_only_on_post(
    admin_client: Client, legacy_artists, settings
):
    legacy_artists(1_234)
    settings.BACKFILL_BATCH_SIZE = 1_000
    settings.BACKFILL_TARGET_BATCH_MS = 100
    settings.BACKFILL_PAUSE_MS = 900

    listing = admin_client.get(START).text
    asked = admin_client.get(START, {"backfill": NAME})

    assert f'href="?backfill={NAME}"' in listing and 'name="backfill"' not in listing
    assert asked.status_code == 200
    assert f"Start &#x27;{NAME}&#x27; over about 1,234 rows, in batches of 1,000?" in asked.text
    assert "100 ms each" in asked.text and "900 ms apart" in asked.text
    assert "one database connection is busy about 10% of the time" in asked.text
    assert not BackfillRun.objects.exists(), "asking starts nothing"

    started = admin_client.post(START, {"backfill": NAME})

    run = BackfillRun.objects.get()
    assert started.status_code == 302 and started["Location"] == f"{LIST}{run.pk}/change/"
    assert (run.rows_total, run.batch_size, run.pause_ms) == (1_234, 1_000, 900)
    again = admin_client.get(START, {"backfill": NAME}).text
    assert "It is already running" in again and 'id="confirm-start"' not in again


def test_it_shows_start_a_backfill_once_on_each_page(admin_client: Client):
    for url in (LIST, START):
        body = admin_client.get(url).text.split("<body", 1)[1]
        assert body.count("Start a backfill") == 1, url


def test_it_asks_to_confirm_a_cancel_with_the_rows_that_stay_done(admin_client: Client):
    run = a_run(RunStatus.RUNNING, rows_total=100_000, rows_done=42_000)
    selected = {"action": "cancel_runs", "_selected_action": run.pk}

    asked = admin_client.post(LIST, selected)

    assert asked.status_code == 200
    assert (
        f"Cancel &#x27;{NAME}&#x27; run #{run.pk}? 42,000 of 100,000 rows done stay done; "
        "the rest are not touched until a new run." in asked.text
    )
    assert 'name="post" value="yes"' in asked.text
    assert BackfillRun.objects.get(pk=run.pk).status == RunStatus.RUNNING, "asking does nothing"

    confirmed = admin_client.post(LIST, {**selected, "post": "yes"})

    assert confirmed.status_code == 302
    assert BackfillRun.objects.get(pk=run.pk).status == RunStatus.CANCELLING
    assert list(run.events.filter(action="cancel").values_list("user__username", flat=True)) == [
        "admin"
    ]


def test_it_does_not_ask_to_cancel_a_run_that_is_over(admin_client: Client):
    run = a_run(RunStatus.SUCCEEDED)

    answer = admin_client.post(
        LIST, {"action": "cancel_runs", "_selected_action": run.pk}, follow=True
    )

    assert "Yes, cancel" not in answer.text
    assert (
        f"Run #{run.pk} (succeeded) cannot be cancelled: only a pending, running or paused run "
        "can." in answer.text
    )
    assert BackfillRun.objects.get(pk=run.pk).status == RunStatus.SUCCEEDED


def test_it_cancels_from_a_runs_page_and_returns_there(admin_client: Client):
    run = a_run(RunStatus.PAUSED, rows_total=10, rows_done=4)
    control_fields = {"action": "cancel_runs", "_selected_action": run.pk, "return_to_run": "1"}

    asked = admin_client.post(LIST, control_fields)
    assert 'name="return_to_run" value="1"' in asked.text
    assert f'href="{LIST}{run.pk}/change/"' in asked.text, "no, take me back: to the run"

    confirmed = admin_client.post(LIST, {**control_fields, "post": "yes"})

    assert confirmed["Location"] == f"{LIST}{run.pk}/change/"
    assert BackfillRun.objects.get(pk=run.pk).status == RunStatus.CANCELLED


def test_it_refuses_a_start_to_staff_without_the_permission(client: Client, legacy_artists):
    legacy_artists(3)
    client.force_login(staff("view_backfillrun"))

    assert client.get(START, {"backfill": NAME}).status_code == 403
    assert "Start a backfill" not in client.get(LIST).text
    assert not BackfillRun.objects.exists()
    assert control.active_run(NAME) is None
