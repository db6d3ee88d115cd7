"""Charts as data the page's one template draws as inline SVG: rectangles, lines and
labels in a coordinate space `WIDTH` wide that the browser scales to its column, a
sentence stating the figures (the SVG's title and accessible name), and a table of the
same figures for whoever cannot see the picture. Colours are CSS classes (`s-...`), so
the page's stylesheet holds them and the Content-Security-Policy needs no inline style.

This module holds the shapes and the connection and refresh charts; campaign_charts the
campaign and backfill ones.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date

from django.utils import timezone

from accounts.models import ConnectionStatus
from accounts.sumup.refresh_outcomes import Hour
from operations.overview.connections import STATUSES, Day
from operations.overview.refreshes import CHARTED, LABELS

WIDTH = 560  # of every chart's coordinate space; its height depends on its rows
LINE = 16  # height of a line of text
STATUS_CSS = {
    ConnectionStatus.CONNECTED: "s-connected",
    ConnectionStatus.EXPIRED: "s-expired",
    ConnectionStatus.ERROR: "s-error",
    ConnectionStatus.NOT_CONNECTED: "s-not-connected",
}


@dataclass(frozen=True)
class Rect:
    x: float
    y: float
    width: float
    height: float
    css: str
    tip: str = ""  # shown on hover


@dataclass(frozen=True)
class Line:
    x1: float
    y1: float
    x2: float
    y2: float
    css: str


@dataclass(frozen=True)
class Label:
    x: float
    y: float
    text: str
    anchor: str = "start"  # SVG's text-anchor: start, middle, end
    css: str = ""


@dataclass(frozen=True)
class Table:
    caption: str
    headers: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]


@dataclass
class Chart:
    ident: str  # the figure's id, unique on the page
    summary: str  # the figures in words
    table: Table
    height: float = 0.0
    width: int = WIDTH
    rects: list[Rect] = field(default_factory=list)
    lines: list[Line] = field(default_factory=list)
    labels: list[Label] = field(default_factory=list)
    legend: list[tuple[str, str]] = field(default_factory=list)  # (css, what it means)

    def rect(self, x: float, y: float, w: float, h: float, css: str, tip: str = "") -> None:
        self.rects.append(Rect(_r(x), _r(y), _r(max(w, 0.0)), _r(h), css, tip))

    def line(self, x1: float, y1: float, x2: float, y2: float, css: str) -> None:
        self.lines.append(Line(_r(x1), _r(y1), _r(x2), _r(y2), css))

    def label(self, x: float, y: float, text: str, anchor: str = "start", css: str = "") -> None:
        self.labels.append(Label(_r(x), _r(y), text, anchor, css))


def _r(value: float) -> float:
    return round(value, 1)


def number(n: int) -> str:
    return f"{n:,}"


def status_label(status: str) -> str:
    return str(ConnectionStatus(status).label)


def nice_ceiling(value: float) -> float:
    """The least of 1, 2 or 5 times a power of ten that is at least `value` (1 for 0)."""
    if value <= 0:
        return 1.0
    power = 10.0 ** math.floor(math.log10(value))
    return next(step * power for step in (1.0, 2.0, 5.0, 10.0) if step * power >= value)


def _tick(chart: Chart, x: float, y: float, text: str) -> None:
    """An axis label centred under `x`, or ending at the chart's edge when it would
    cross it (the SVG clips what passes its edge)."""
    if x + len(text) * 4 > chart.width:
        chart.label(chart.width, y, text, "end", "axis")
    else:
        chart.label(x, y, text, "middle", "axis")


def _day(day: date) -> str:
    return f"{day.day} {day:%b}"


# --- connections --------------------------------------------------------------------


def connections_now(counts: dict[str, int]) -> Chart:
    """One horizontal bar per status, longest the most artists."""
    words = ", ".join(f"{number(counts[s])} {status_label(s).lower()}" for s in STATUSES)
    chart = Chart(
        ident="connections-now",
        summary=f"SumUp connections now: {words}.",
        table=Table(
            "SumUp connections by status now",
            ("Status", "Artists"),
            tuple((status_label(s), number(counts[s])) for s in STATUSES),
        ),
    )
    _bar_rows(
        chart,
        [(status_label(s), counts[s], STATUS_CSS[s]) for s in STATUSES],
    )
    return chart


def _bar_rows(chart: Chart, rows: Sequence[tuple[str, int, str]]) -> None:
    label_width, value_width, row, bar = 170.0, 70.0, 30.0, 18.0
    track = chart.width - label_width - value_width
    scale = track / max([value for _, value, _ in rows] + [1])
    for n, (text, value, css) in enumerate(rows):
        y = n * row
        chart.label(0, y + bar - 4, text)
        chart.rect(label_width, y, value * scale, bar, css, f"{text}: {number(value)}")
        chart.label(label_width + value * scale + 6, y + bar - 4, number(value))
    chart.height = len(rows) * row


def connections_history(days: list[Day]) -> Chart:
    """A column per day, stacked by status; a day never counted is a dashed outline
    marked "no data", so it cannot be read as no artists."""
    kept = [day for day in days if day.counts is not None]
    today = days[-1]
    summary = (
        f"SumUp connections by day over the last {len(days)} days: "
        f"counted on {len(kept)} of them, no data for {len(days) - len(kept)}."
    )
    if kept:
        summary += f" Counts kept since {_day(kept[0].day)}."
    if today.counts is not None:
        words = ", ".join(f"{number(today.counts[s])} {status_label(s).lower()}" for s in STATUSES)
        summary += f" Today: {words}."
    chart = Chart(
        ident="connections-history",
        summary=summary,
        table=Table(
            f"SumUp connections by day, last {len(days)} days",
            ("Day", *(status_label(s) for s in STATUSES)),
            tuple(
                (
                    _day(day.day),
                    *(
                        number(day.counts[s]) if day.counts is not None else "no data"
                        for s in STATUSES
                    ),
                )
                for day in days
            ),
        ),
        legend=[(STATUS_CSS[s], status_label(s)) for s in STATUSES] + [("s-nodata", "No data")],
    )
    left, top, plot_height = 48.0, 8.0, 180.0
    bottom = top + plot_height
    highest = nice_ceiling(max([sum(day.counts.values()) for day in kept if day.counts] + [0]))
    for fraction in (0.0, 0.5, 1.0):
        y = bottom - fraction * plot_height
        chart.line(left, y, chart.width, y, "grid")
        chart.label(left - 6, y + 4, number(round(highest * fraction)), "end", "axis")
    slot = (chart.width - left) / len(days)
    for n, day in enumerate(days):
        x = left + n * slot + slot * 0.15
        if day.counts is None:
            chart.rect(x, top, slot * 0.7, plot_height, "s-nodata", f"{_day(day.day)}: no data")
            continue
        y = bottom
        for status in STATUSES:
            height = day.counts[status] / highest * plot_height
            y -= height
            tip = f"{_day(day.day)}: {number(day.counts[status])} {status_label(status).lower()}"
            chart.rect(x, y, slot * 0.7, height, STATUS_CSS[status], tip)
    for back in range(0, len(days), 7):  # today, and every week before it
        n = len(days) - 1 - back
        _tick(chart, left + (n + 0.5) * slot, bottom + LINE, _day(days[n].day))
    chart.height = bottom + LINE + 6
    return chart


# --- token refreshes ----------------------------------------------------------------

OUTCOME_CSS = {
    "refreshed": "s-refreshed",
    "expired": "s-expired",
    "error": "s-error",
    "over_budget": "s-over-budget",
}


def refresh_hours(hours: list[Hour]) -> Chart:
    """A row of hourly columns per outcome, each row on its own scale, so a handful of
    errors shows beside thousands of refreshes."""
    totals = {o.value: sum(h.counts.get(o.value, 0) for h in hours) for o in CHARTED}
    words = "; ".join(
        f"{number(totals[o.value])} {LABELS[o].lower()}"
        + (f" (at most {number(_peak(hours, o.value))} in an hour)" if totals[o.value] else "")
        for o in CHARTED
    )
    chart = Chart(
        ident="refresh-hours",
        summary=f"Token refresh outcomes per hour over the last {len(hours)} hours: {words}.",
        table=Table(
            f"Token refresh outcomes per hour, last {len(hours)} hours",
            ("Hour", *(LABELS[o] for o in CHARTED)),
            tuple((_hour(h), *(number(h.counts.get(o.value, 0)) for o in CHARTED)) for h in hours),
        ),
        legend=[(OUTCOME_CSS[o.value], LABELS[o]) for o in CHARTED],
    )
    row, plot = 64.0, 38.0
    slot = chart.width / len(hours)
    for n, outcome in enumerate(CHARTED):
        top = n * row
        peak = _peak(hours, outcome.value)
        chart.label(0, top + 12, f"{LABELS[outcome]}: {number(totals[outcome.value])} in 24 h")
        base = top + 18 + plot
        chart.line(0, base, chart.width, base, "grid")
        for m, hour in enumerate(hours):
            value = hour.counts.get(outcome.value, 0)
            height = value / peak * plot if peak else 0.0
            tip = f"{_hour(hour)}: {number(value)} {LABELS[outcome].lower()}"
            chart.rect(m * slot + 1, base - height, slot - 2, height, OUTCOME_CSS[outcome], tip)
    bottom = len(CHARTED) * row
    for m in range(len(hours) - 1, -1, -6):  # the hour under way, and every six before it
        _tick(chart, (m + 0.5) * slot, bottom + LINE, _hour(hours[m]))
    chart.height = bottom + LINE + 6
    return chart


def _peak(hours: list[Hour], outcome: str) -> int:
    return max(h.counts.get(outcome, 0) for h in hours)


def _hour(hour: Hour) -> str:
    return timezone.localtime(hour.start).strftime("%H:00")
