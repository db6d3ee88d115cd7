import pytest

from campaigns.checks import LONGEST_TASK_SECONDS
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


def test_every_task_has_a_soft_time_limit_within_its_hard_one():
    app.loader.import_default_modules()
    ours = {name: task for name, task in app.tasks.items() if name.startswith("jobs.")}
    assert "jobs.backfills.run_slice" in ours and "jobs.token_refresh.refresh_artist" in ours
    for name, task in ours.items():
        hard = task.time_limit or app.conf.task_time_limit
        soft = task.soft_time_limit or app.conf.task_soft_time_limit
        assert soft <= hard, f"{name}: soft limit {soft} s exceeds hard limit {hard} s"


def test_the_visibility_timeout_check_knows_the_longest_campaign_task():
    app.loader.import_default_modules()
    campaign_tasks = [task for name, task in app.tasks.items() if name.startswith("jobs.campaigns")]

    assert len(campaign_tasks) >= 3
    assert max(task.time_limit or 0 for task in campaign_tasks) == LONGEST_TASK_SECONDS
