"""The cache holds JSON, never pickles: a pickle written into its Redis under a key the
project reads is not run by the process that reads it, and a value JSON cannot carry is
refused when stored, so nothing in the project depends on pickling."""

import json
import pickle  # to build the payload that someone able to write to Redis could write
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import redis
from django.conf import settings
from django.core.cache import cache

from accounts.sumup import refresh_alerts


class CreatesAFile:
    """Unpickling this calls open(path, "w"): any code could run in its place."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return open, (self.path, "w")


@pytest.fixture
def raw_redis() -> Iterator[redis.Redis]:
    """The cache's Redis as anyone with its address sees it, with the flag cleared after."""
    client = redis.Redis.from_url(settings.REDIS_URL)
    yield client
    client.delete(cache.make_key(refresh_alerts.HALT_KEY))
    client.close()


def test_a_pickle_written_under_the_refresh_halt_flag_is_never_run(tmp_path, raw_redis, caplog):
    marker = tmp_path / "written-by-the-payload"
    raw_redis.set(cache.make_key(refresh_alerts.HALT_KEY), pickle.dumps(CreatesAFile(marker)))

    halted = refresh_alerts.is_halted()

    assert not marker.exists()
    assert halted is False  # read as absent
    assert any(
        record.name == "events.cache"
        and record.levelname == "ERROR"
        and "A cache value that is not JSON was read as absent" in record.getMessage()
        for record in caplog.records
    )


def test_the_refresh_halt_flag_is_stored_as_json(raw_redis):
    refresh_alerts.halt("invalid_client")

    stored = json.loads(raw_redis.get(cache.make_key(refresh_alerts.HALT_KEY)))
    assert stored["reason"] == "invalid_client"
    assert isinstance(stored["since"], float)
    assert refresh_alerts.is_halted() is True


def test_a_value_json_cannot_carry_is_refused_when_stored():
    with pytest.raises(TypeError):
        cache.set("security:not-json", datetime.now(UTC))
    with pytest.raises(TypeError):
        cache.set("security:not-json", CreatesAFile(Path("never-written")))
    assert cache.get("security:not-json") is None


def test_counters_and_plain_values_come_back_as_stored():
    values = {"n": 1, "flag": True, "text": "12", "items": [1, "a", None], "map": {"k": 1.5}}
    for key, value in values.items():
        cache.set(f"security:{key}", value)

    assert {key: cache.get(f"security:{key}") for key in values} == values
    assert cache.incr("security:n") == 2
    cache.delete_many([f"security:{key}" for key in values])
