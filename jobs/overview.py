"""The staff overview's history, kept by beat: each hour, today's count of SumUp
connections by status (operations.overview.connections)."""

from celery import shared_task

from events import task_limits
from jobs import options
from operations.overview import connections


@shared_task(
    name="jobs.overview.record_connections",
    **options.at_most_once(task_limits.CONNECTION_HISTORY),
)
def record_connections() -> dict[str, int]:
    """Keep today's count of connections by status, replacing today's earlier one (an
    upsert: safe to run twice). A copy lost with its worker is made good by the next hour's."""
    return connections.record_day()
