import pytest

from jobs import app
from jobs.health import ping


@pytest.mark.django_db(transaction=True)
def test_a_real_worker_runs_a_task_against_the_database(project_worker, make_artist):
    make_artist()
    make_artist()

    result = ping.delay().get(timeout=20)

    assert result == {"database": "postgresql", "artists": 2}


def test_tasks_speak_json_only_and_have_time_limits():
    assert app.conf.task_serializer == "json"
    assert app.conf.accept_content == ["json"]
    assert app.conf.task_time_limit and app.conf.task_soft_time_limit
    assert app.conf.task_soft_time_limit < app.conf.task_time_limit
    assert app.conf.broker_url.startswith("redis://")
