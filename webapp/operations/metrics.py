"""Prometheus metrics, read from the database and Redis at scrape time.

Nothing is counted in process memory: with many web and worker processes, the database
and Redis already hold the truth, and every scrape reads it directly. Keep the queries
aggregate (GROUP BY on indexed columns) so a scrape stays cheap.
"""

from collections.abc import Iterator

from django.db.models import Count, Model
from django.http import HttpRequest, HttpResponse
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.core import CollectorRegistry, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from accounts.models import ArtistProfile
from accounts.sumup import headroom, refresh_outcomes
from backfills.models import ACTIVE, BackfillRun
from campaigns.models import Recipient
from events.celery_app import app
from operations.bearer import carries_metrics_token


class PlatformCollector(Collector):
    def collect(self) -> Iterator[Metric]:
        yield from self._connections()
        yield from self._refresh_outcomes()
        yield from self._refresh_budget()
        yield from self._campaign_sends()
        yield from self._backfills()
        yield from self._queue_depth()

    def _connections(self) -> Iterator[Metric]:
        gauge = GaugeMetricFamily(
            "jersey_sumup_connections", "Artist SumUp connections by status", labels=["status"]
        )
        for status, count in _count_by(ArtistProfile, "sumup_connection_status"):
            gauge.add_metric([str(status)], count)
        yield gauge

    def _refresh_outcomes(self) -> Iterator[Metric]:
        gauge = GaugeMetricFamily(
            "jersey_sumup_refresh_outcomes_pending",
            "Token refresh outcomes since the last sweep logged them",
            labels=["outcome"],
        )
        for outcome, count in refresh_outcomes.pending().items():
            gauge.add_metric([outcome], count)
        yield gauge

    def _refresh_budget(self) -> Iterator[Metric]:
        now = headroom.current()
        yield GaugeMetricFamily(
            "jersey_sumup_refresh_calls_needed_per_hour",
            "SumUp connections falling due for a refresh within the next hour",
            value=now.needed_per_hour,
        )
        yield GaugeMetricFamily(
            "jersey_sumup_refresh_calls_available_per_hour",
            "Calls an hour of the sweep's paced share of the SumUp budget allows",
            value=now.available_per_hour,
        )

    def _campaign_sends(self) -> Iterator[Metric]:
        gauge = GaugeMetricFamily(
            "jersey_campaign_recipients", "Campaign recipients by status", labels=["status"]
        )
        for status, count in _count_by(Recipient, "status"):
            gauge.add_metric([str(status)], count)
        yield gauge

    def _backfills(self) -> Iterator[Metric]:
        done = GaugeMetricFamily(
            "jersey_backfill_rows_done", "Rows done by active backfill runs", labels=["backfill"]
        )
        total = GaugeMetricFamily(
            "jersey_backfill_rows_total", "Rows to do by active backfill runs", labels=["backfill"]
        )
        for run in BackfillRun.objects.filter(status__in=ACTIVE).only(
            "backfill", "rows_done", "rows_total"
        ):
            done.add_metric([run.backfill], run.rows_done)
            total.add_metric([run.backfill], run.rows_total)
        yield done
        yield total

    def _queue_depth(self) -> Iterator[Metric]:
        gauge = GaugeMetricFamily(
            "jersey_celery_queue_depth", "Messages waiting in a Celery queue", labels=["queue"]
        )
        queue = app.conf.task_default_queue
        with app.connection_for_write() as connection:
            # The Redis transport keeps a queue as a list named after it.
            depth = connection.default_channel.client.llen(queue)  # type: ignore[attr-defined]
        gauge.add_metric([queue], int(depth))
        yield gauge


def _count_by(model: type[Model], field: str) -> list[tuple[object, int]]:
    rows = model._default_manager.values(field).annotate(n=Count("pk")).order_by()
    return [(row[field], row["n"]) for row in rows]


@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    """Prometheus text format, for a scraper sending METRICS_TOKEN as a Bearer token (the
    counts describe every artist and campaign; production refuses to start without it)."""
    if not carries_metrics_token(request):
        response = HttpResponse("metrics need the scrape token (METRICS_TOKEN)\n", status=401)
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    registry = CollectorRegistry(auto_describe=False)
    registry.register(PlatformCollector())
    return HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)
