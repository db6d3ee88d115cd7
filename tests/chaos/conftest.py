"""The chaos suite's fixtures: one PostgreSQL cluster for the module, one stage per fault
(see stage.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from .stage import TEMPLATE, Stage, base_env

if TYPE_CHECKING:
    from tests.support.chaos import PrivatePostgres
    from tests.support.rehearsal import manage, output
else:
    from support.chaos import PrivatePostgres
    from support.rehearsal import manage, output


@pytest.fixture(scope="module")
def postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivatePostgres]:
    """A cluster of the suite's own, with a database migrated once: the template of each
    fault's database."""
    with PrivatePostgres() as cluster:
        env = {**base_env(tmp_path_factory.mktemp("home")), "DATABASE_URL": cluster.url(TEMPLATE)}
        cluster.create_database(TEMPLATE)
        result = manage(env, "migrate", "--noinput")
        assert result.returncode == 0, output(result)
        yield cluster


@pytest.fixture
def stage(
    postgres: PrivatePostgres, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Stage]:
    # The suite's own broker settings must not reach this process's Celery clients.
    for name in ("CELERY_BROKER_URL", "CELERY_RESULT_BACKEND"):
        monkeypatch.delenv(name, raising=False)
    stage = Stage(postgres, tmp_path)
    try:
        yield stage.open()
    finally:
        stage.close()
