import pytest
from prometheus_client.parser import text_string_to_metric_families

from accounts.models import ConnectionStatus
from backfills import control


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


@pytest.mark.django_db
def test_it_reports_connections_backfills_and_queue_depth(scraper, make_artist, legacy_artists):
    make_artist()
    make_artist(sumup_connection_status=ConnectionStatus.EXPIRED)
    legacy_artists(3)
    control.start("sumup_connection_status", enqueue=False)

    response = scraper.get("/metrics")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    values = samples(response.text)
    assert values[("jersey_sumup_connections", (("status", "not_connected"),))] == 1
    assert values[("jersey_sumup_connections", (("status", "expired"),))] == 1
    assert values[("jersey_sumup_connections", (("status", "None"),))] == 3
    assert values[("jersey_backfill_rows_total", (("backfill", "sumup_connection_status"),))] == 3
    assert values[("jersey_backfill_rows_done", (("backfill", "sumup_connection_status"),))] == 0
    assert ("jersey_celery_queue_depth", (("queue", "celery"),)) in values


@pytest.mark.django_db
def test_with_a_token_configured_a_scraper_must_present_it(client, settings):
    settings.METRICS_TOKEN = "scrape-token-0123456789"
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
    ok = client.get("/metrics", headers={"Authorization": "Bearer scrape-token-0123456789"})
    assert ok.status_code == 200 and "jersey_sumup_connections" in ok.text
