"""The campaign and backfill charts of the overview (operations.overview.charts says how
a chart is drawn)."""

from __future__ import annotations

from backfills.models import BackfillRun
from operations.overview.campaign_figures import CONVERSION_WINDOWS, Conversion, SendRate
from operations.overview.charts import LINE, Chart, Table, number

NAME_CHARS = 48  # of a name drawn in a chart; the table beside it has it whole
TRACK_LEFT = 110.0  # where the bars of a labelled row begin
VALUE_WIDTH = 90.0  # room after a track for its figure


def _name(text: str) -> str:
    return text if len(text) <= NAME_CHARS else text[: NAME_CHARS - 1] + "…"


def _rate(per_second: float) -> str:
    return f"{per_second:g}/s"


def _percent(part: int, whole: int) -> str:
    return f"{part / whole:.0%}" if whole else "—"


# --- send rates -----------------------------------------------------------------------


def send_rates(rates: list[SendRate]) -> Chart:
    """A bar per current campaign: its rate of sending, on a track whose mark is its
    limit (a campaign with no limit is drawn against its own rate)."""
    words = "; ".join(
        f"{r.campaign.name}: {_rate(r.per_second)}"
        + (
            f" of {_rate(r.limit_per_second)} ({r.limit_text})"
            if r.limit_per_second
            else ", no limit"
        )
        + f", {r.state.lower()}"
        for r in rates
    )
    chart = Chart(
        ident="campaign-rates",
        summary=f"Send rate of the current campaigns against their limit: {words}.",
        table=Table(
            "Send rate of the current campaigns",
            ("Campaign", "State", "Sending", "Limit"),
            tuple(
                (
                    r.campaign.name,
                    r.state,
                    _rate(r.per_second),
                    f"{_rate(r.limit_per_second)} ({r.limit_text})"
                    if r.limit_per_second
                    else "none",
                )
                for r in rates
            ),
        ),
        legend=[("s-rate", "Sending now"), ("s-limit", "Limit")],
    )
    track = chart.width - VALUE_WIDTH
    row, bar = 46.0, 16.0
    for n, r in enumerate(rates):
        top = n * row
        chart.label(0, top + 12, f"{_name(r.campaign.name)} — {r.state}")
        y = top + 18
        # The limit sits at four fifths of the track, so a rate over it still shows.
        scale = track * 0.8 / (r.limit_per_second or max(r.per_second, 1.0))
        chart.rect(0, y, track, bar, "track")
        tip = f"{r.campaign.name}: sending {_rate(r.per_second)}"
        chart.rect(0, y, min(r.per_second * scale, track), bar, "s-rate", tip)
        if r.limit_per_second:
            x = r.limit_per_second * scale
            chart.line(x, y - 3, x, y + bar + 3, "s-limit")
        chart.label(track + 6, y + bar - 4, _rate(r.per_second))
    chart.height = len(rates) * row
    return chart


# --- conversion -----------------------------------------------------------------------

WINDOW_CSS = {1: "s-within-1", 7: "s-within-7", 30: "s-within-30"}


def conversions(found: list[Conversion]) -> Chart:
    """Per campaign, on a track that is every artist it emailed: those who connected
    SumUp within 30, 7 and 1 days of their email (nested, each window holds the
    shorter), those who unsubscribed and those whose email bounced."""
    chart = Chart(
        ident="campaign-conversion",
        summary="What became of each campaign's emails: "
        + " ".join(_conversion_words(c) for c in found),
        table=Table(
            "What became of each campaign's emails",
            (
                "Campaign",
                "Emailed",
                *(f"Connected within {_days(d)}" for d in CONVERSION_WINDOWS),
                "Unsubscribed",
                "Bounced",
            ),
            tuple(
                (
                    c.campaign.name,
                    number(c.emailed),
                    *(_share(c.connected_within[d], c.emailed) for d in CONVERSION_WINDOWS),
                    _share(c.unsubscribed, c.emailed),
                    _share(c.bounced, c.emailed),
                )
                for c in found
            ),
        ),
        legend=[
            *((WINDOW_CSS[d], f"Connected within {_days(d)}") for d in CONVERSION_WINDOWS),
            ("s-unsubscribed", "Unsubscribed"),
            ("s-bounced", "Bounced"),
        ],
    )
    track = chart.width - TRACK_LEFT - VALUE_WIDTH
    row, bar = 20.0, 12.0
    group = LINE + 3 * row + 12
    for n, c in enumerate(found):
        top = n * group
        chart.label(0, top + 12, f"{_name(c.campaign.name)}: {number(c.emailed)} emailed")
        scale = track / c.emailed if c.emailed else 0.0
        rows = [
            (
                "Connected",
                [(c.connected_within[d], WINDOW_CSS[d], d) for d in reversed(CONVERSION_WINDOWS)],
            ),
            ("Unsubscribed", [(c.unsubscribed, "s-unsubscribed", 0)]),
            ("Bounced", [(c.bounced, "s-bounced", 0)]),
        ]
        for m, (text, bars) in enumerate(rows):
            y = top + LINE + 4 + m * row
            chart.label(0, y + bar - 2, text)
            chart.rect(TRACK_LEFT, y, track, bar, "track")
            for value, css, days in bars:
                what = f"connected within {_days(days)}" if days else text.lower()
                tip = f"{c.campaign.name}: {number(value)} of {number(c.emailed)} {what}"
                chart.rect(TRACK_LEFT, y, value * scale, bar, css, tip)
            shown = bars[0][0]  # the widest: 30 days for the connected
            chart.label(TRACK_LEFT + track + 6, y + bar - 2, _percent(shown, c.emailed))
    chart.height = len(found) * group
    return chart


def _days(days: int) -> str:
    return "1 day" if days == 1 else f"{days} days"


def _share(part: int, whole: int) -> str:
    return f"{number(part)} ({_percent(part, whole)})"


def _conversion_words(c: Conversion) -> str:
    within = ", ".join(
        f"{number(c.connected_within[d])} within {_days(d)}" for d in CONVERSION_WINDOWS
    )
    return (
        f"{c.campaign.name}: {number(c.emailed)} emailed; connected {within}; "
        f"{number(c.unsubscribed)} unsubscribed, {number(c.bounced)} bounced."
    )


# --- backfills ------------------------------------------------------------------------


def backfills(runs: list[BackfillRun]) -> Chart:
    """A progress bar per backfill under way."""
    states = {run.pk: run.state() for run in runs}  # each reads the run's events
    chart = Chart(
        ident="backfill-progress",
        summary="Backfills under way: "
        + "; ".join(
            f"{run.backfill} {run.progress:.0%} done ({number(run.rows_done)} of "
            f"{number(run.rows_total)} rows), {states[run.pk].lower()}"
            for run in runs
        )
        + ".",
        table=Table(
            "Backfills under way",
            ("Backfill", "State", "Done", "Rows done", "Rows in all"),
            tuple(
                (
                    run.backfill,
                    states[run.pk],
                    f"{run.progress:.0%}",
                    number(run.rows_done),
                    number(run.rows_total),
                )
                for run in runs
            ),
        ),
    )
    track = chart.width - VALUE_WIDTH
    row, bar = 46.0, 16.0
    for n, run in enumerate(runs):
        top = n * row
        chart.label(0, top + 12, f"{_name(run.backfill)} — {states[run.pk]}")
        y = top + 18
        chart.rect(0, y, track, bar, "track")
        tip = f"{run.backfill}: {number(run.rows_done)} of {number(run.rows_total)} rows"
        chart.rect(0, y, run.progress * track, bar, "s-progress", tip)
        chart.label(track + 6, y + bar - 4, f"{run.progress:.0%}")
    chart.height = len(runs) * row
    return chart
