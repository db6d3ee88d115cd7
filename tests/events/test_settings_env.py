import os
import subprocess
import sys
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from campaigns.models import Campaign
from events import env

if TYPE_CHECKING:
    from tests.support.worker_processes import worker_environment
else:
    from support.worker_processes import worker_environment


def test_it_reads_booleans_strictly(monkeypatch):
    monkeypatch.setenv("FLAG", "yes")
    assert env.env_bool("FLAG") is True
    monkeypatch.setenv("FLAG", "0")
    assert env.env_bool("FLAG", default=True) is False
    monkeypatch.setenv("FLAG", "maybe")
    with pytest.raises(ImproperlyConfigured, match="FLAG must be a boolean"):
        env.env_bool("FLAG")


def test_it_names_the_variable_of_a_bad_number(monkeypatch):
    monkeypatch.setenv("BATCH", "ten")
    with pytest.raises(ImproperlyConfigured, match="BATCH must be a whole number"):
        env.env_int("BATCH", 10)
    monkeypatch.setenv("BATCH", "0")
    with pytest.raises(ImproperlyConfigured, match="BATCH must be at least 1"):
        env.env_int("BATCH", 10, minimum=1)


def test_it_strips_trailing_slashes_from_api_urls_but_not_from_the_redirect_uri(monkeypatch):
    monkeypatch.setenv("API", "https://api.sumup.com/")
    assert env.env_url("API", "https://x") == "https://api.sumup.com"
    monkeypatch.setenv("CB", "https://site.test/accounts/sumup/callback/")
    assert env.env_url("CB", "https://x", keep_trailing_slash=True).endswith("/callback/")
    monkeypatch.setenv("API", "ftp://nope")
    with pytest.raises(ImproperlyConfigured, match="API must be an http"):
        env.env_url("API", "https://x")


def test_it_rejects_an_unusable_database_url(monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "nosuchdb://x")
    with pytest.raises(ImproperlyConfigured, match="DATABASE_URL"):
        env.env_database("DATABASE_URL", "sqlite:///x")


def test_it_maps_every_anymail_variable_into_the_anymail_dict():
    environ = {"ANYMAIL_MAILGUN_API_KEY": "k", "ANYMAIL_WEBHOOK_SECRET": "a:b", "OTHER": "x"}
    assert env.env_prefixed("ANYMAIL_", environ) == {
        "MAILGUN_API_KEY": "k",
        "WEBHOOK_SECRET": "a:b",
    }


def _settings_in_subprocess(extra_env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    code = (
        "import django; django.setup(); from django.conf import settings; print(settings.ANYMAIL)"
    )
    environ = {
        "PATH": "/usr/bin:/bin",
        "DJANGO_SETTINGS_MODULE": "events.settings",
        "DEBUG": "true",
        **extra_env,
    }
    return subprocess.run(
        [sys.executable, "-c", code], env=environ, capture_output=True, text=True, timeout=60
    )


def test_production_settings_refuse_to_start_without_a_secret_key():
    result = _settings_in_subprocess({"DEBUG": "false"})
    assert result.returncode != 0
    assert "SECRET_KEY must be set" in result.stderr


def test_settings_name_the_variable_that_is_malformed():
    result = _settings_in_subprocess({"DEBUG": "sometimes"})
    assert result.returncode != 0
    assert "DEBUG must be a boolean" in result.stderr


def test_settings_configure_anymail_from_the_environment_alone():
    result = _settings_in_subprocess({"ANYMAIL_POSTMARK_SERVER_TOKEN": "server-token"})
    assert result.returncode == 0, result.stderr
    assert "'POSTMARK_SERVER_TOKEN': 'server-token'" in result.stdout


def test_a_choice_is_matched_without_regard_to_case_and_returned_as_spelled(monkeypatch):
    monkeypatch.setenv("LEVEL", "warning")
    assert env.env_choice("LEVEL", "INFO", ("INFO", "WARNING")) == "WARNING"
    monkeypatch.setenv("LEVEL", "loud")
    with pytest.raises(ImproperlyConfigured, match="LEVEL must be one of INFO, WARNING"):
        env.env_choice("LEVEL", "INFO", ("INFO", "WARNING"))


def test_the_forms_the_settings_document_are_accepted(monkeypatch):
    monkeypatch.setenv("RATE", "600/min")
    assert env.env_rate("RATE", "10/s") == "600/min"
    monkeypatch.setenv("REDIS", "unix:///run/redis.sock")
    assert env.env_redis_url("REDIS", "redis://x") == "unix:///run/redis.sock"
    monkeypatch.setenv("SENDER", "Jersey Events <no-reply@jerseyevents.test>")
    assert env.env_email("SENDER", "") == "Jersey Events <no-reply@jerseyevents.test>"
    monkeypatch.setenv("LIMIT", "299")
    assert env.env_int("LIMIT", 1, minimum=1, maximum=299) == 299


@pytest.mark.parametrize(
    ("read", "value"),
    [
        (env.env_basic_auth, "tracking:hunter2-secret,hunter2-other"),
        (env.env_basic_auth, "tracking:hunter2 secret"),
        (partial(env.env_token, min_length=16), "hunter2"),
        (partial(env.env_token, min_length=16), "hunter2-a-long-token-with-é"),
    ],
)
def test_a_refused_secret_is_not_repeated(read, value, monkeypatch):
    monkeypatch.setenv("SECRET", value)
    with pytest.raises(ImproperlyConfigured, match="SECRET must be") as refused:
        read("SECRET")
    assert "hunter2" not in str(refused.value)


def test_the_webhook_secret_metrics_token_and_backup_dir_take_their_documented_forms(
    monkeypatch, tmp_path
):
    monkeypatch.setenv("SECRET", " tracking:pw-1 , rotated:pw:with:colons ")
    assert env.env_basic_auth("SECRET") == ["tracking:pw-1", "rotated:pw:with:colons"]
    monkeypatch.delenv("SECRET")
    assert env.env_basic_auth("SECRET") == []
    monkeypatch.setenv("TOKEN", "Abc-123._~+/xyz0==")
    assert env.env_token("TOKEN", min_length=16) == "Abc-123._~+/xyz0=="
    monkeypatch.setenv("TOKEN", "abcdefgh=ijklmnop")  # "=" is padding, only at the end
    with pytest.raises(ImproperlyConfigured, match="TOKEN must be at least 16"):
        env.env_token("TOKEN", min_length=16)
    monkeypatch.setenv("FOLDER", str(tmp_path / "not" / "yet"))
    assert env.env_folder("FOLDER", Path("/default")) == tmp_path / "not" / "yet"
    monkeypatch.setenv("FOLDER", "")
    assert env.env_folder("FOLDER", Path("/default")) == Path("/default")


def test_settings_give_anymail_each_webhook_credential_apart():
    result = _settings_in_subprocess({"ANYMAIL_WEBHOOK_SECRET": "tracking:pw-1,rotated:pw-2"})
    assert result.returncode == 0, result.stderr
    assert "'WEBHOOK_SECRET': ['tracking:pw-1', 'rotated:pw-2']" in result.stdout


@pytest.mark.parametrize("given", [None, "~/jersey-backups"])
def test_backup_dir_comes_from_the_environment_with_a_default_under_the_repo(given, tmp_path):
    code = "from django.conf import settings; print(settings.BACKUP_DIR)"
    environ = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "DEBUG": "true"}
    result = subprocess.run(
        [sys.executable, "-c", f"import django; django.setup(); {code}"],
        env={**environ, "DJANGO_SETTINGS_MODULE": "events.settings"}
        | ({"BACKUP_DIR": given} if given else {}),
        capture_output=True,
        text=True,
        timeout=60,
    )
    expected = tmp_path / "jersey-backups" if given else settings.PROJECT_DIR / "var" / "backups"
    assert result.stdout.strip() == str(expected), result.stderr


def test_a_password_in_a_refused_url_is_not_repeated(monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "mysql://app:hunter2secret@db/events")
    with pytest.raises(ImproperlyConfigured) as refused:
        env.env_database("DATABASE_URL", "sqlite:///x")
    assert "hunter2secret" not in str(refused.value)
    assert "mysql://***@db/events" in str(refused.value)


# One bad value per case: the variable, its value, and the start of the one line that
# must name it. Every other variable keeps its default.
BAD_SETTINGS = [
    ("DEBUG", "sometimes", "DEBUG must be a boolean"),
    ("ALLOWED_HOSTS", " , ", "ALLOWED_HOSTS must list at least one value"),
    ("SITE_URL", "jerseyevents.test", "SITE_URL must be an http(s) URL"),
    ("SUMUP_BASE_URL", "https://api.sumup.com:99999", "SUMUP_BASE_URL must be an http(s) URL"),
    ("SUMUP_REDIRECT_URI", "https:///callback/", "SUMUP_REDIRECT_URI must be an http(s) URL"),
    ("DATABASE_URL", "mysql://app@db/events", "DATABASE_URL must be a postgres:// or sqlite"),
    ("DATABASE_CONN_MAX_AGE", "-1", "DATABASE_CONN_MAX_AGE must be at least 0"),
    ("REDIS_URL", "redis://127.0.0.1:6379/zero", "REDIS_URL must be a URL such as redis://"),
    ("CELERY_BROKER_URL", "amqp://guest@rabbit//", "CELERY_BROKER_URL must be a URL such as"),
    ("CELERY_TASK_TIME_LIMIT", "5 min", "CELERY_TASK_TIME_LIMIT must be a whole number"),
    ("CELERY_TASK_SOFT_TIME_LIMIT", "300", "CELERY_TASK_SOFT_TIME_LIMIT must be from 1 to 299"),
    ("CELERY_VISIBILITY_TIMEOUT", "120", "CELERY_VISIBILITY_TIMEOUT must be at least 301"),
    ("CAMPAIGNS_RECOVER_INTERVAL", "0", "CAMPAIGNS_RECOVER_INTERVAL must be at least 1"),
    ("SUMUP_REFRESH_SWEEP_INTERVAL", "600", "SUMUP_REFRESH_SWEEP_INTERVAL must be from 10 to"),
    ("SUMUP_REFRESH_TOKEN_RENEW_AFTER", "17280000", "SUMUP_REFRESH_TOKEN_RENEW_AFTER must be"),
    ("SUMUP_REFRESH_MAX_ATTEMPTS", "0", "SUMUP_REFRESH_MAX_ATTEMPTS must be at least 1"),
    ("SUMUP_API_RATE_LIMIT", "fast", "SUMUP_API_RATE_LIMIT must look like 20/s"),
    ("SUMUP_API_RATE_LIMIT", "0/s", "SUMUP_API_RATE_LIMIT must look like 20/s"),
    ("SUMUP_TOKEN_KEYS", "not-a-fernet-key", "SUMUP_TOKEN_KEYS must be comma-separated Fernet"),
    ("BACKFILL_BATCH_SIZE", "-5", "BACKFILL_BATCH_SIZE must be from 1 to 50000"),
    ("BACKFILL_BATCH_SIZE", "1000000", "BACKFILL_BATCH_SIZE must be from 1 to 50000"),
    ("BACKFILL_PAUSE_MS", "-100", "BACKFILL_PAUSE_MS must be from 0 to 10000"),
    ("BACKFILL_PAUSE_MS", "60000", "BACKFILL_PAUSE_MS must be from 0 to 10000"),
    ("EMAIL_BACKEND", "smtp server", "EMAIL_BACKEND must be a dotted path"),
    ("DEFAULT_FROM_EMAIL", "Jersey Events", "DEFAULT_FROM_EMAIL must be an email address"),
    ("SERVER_EMAIL", "ops@", "SERVER_EMAIL must be an email address"),
    ("ADMINS", "ops@example.com,nobody", "ADMINS must be an email address"),
    ("EMAIL_RATE_LIMIT", "0/s", "EMAIL_RATE_LIMIT must look like 20/s"),
    ("EMAIL_RATE_LIMIT", "5/0s", "EMAIL_RATE_LIMIT must look like 20/s"),
    ("EMAIL_RETRY_BACKOFF", "0", "EMAIL_RETRY_BACKOFF must be at least 1"),
    ("UNSUBSCRIBE_EMAIL", "unsubscribe", "UNSUBSCRIBE_EMAIL must be an email address"),
    ("LOG_FORMAT", "xml", "LOG_FORMAT must be one of plain, json"),
    ("LOG_LEVEL", "loud", "LOG_LEVEL must be one of DEBUG, INFO"),
    ("LOG_FILE", "/nonexistent/folder/events.log", "LOG_FILE must be a file in an existing"),
    ("WORKER_CONCURRENCY", "0", "WORKER_CONCURRENCY must be at least 1, got 0"),
    ("WORKER_CONCURRENCY", "auto", "WORKER_CONCURRENCY must be a whole number"),
    ("ANYMAIL_WEBHOOK_SECRET", "s3cret", "ANYMAIL_WEBHOOK_SECRET must be user:password"),
    ("ANYMAIL_WEBHOOK_SECRET", "ops:pw1,:pw2", "ANYMAIL_WEBHOOK_SECRET must be user:password"),
    ("ANYMAIL_WEBHOOK_SECRET", "ops:", "ANYMAIL_WEBHOOK_SECRET must be user:password"),
    ("METRICS_TOKEN", "scrape-token", "METRICS_TOKEN must be at least 16 characters"),
    ("METRICS_TOKEN", "a scrape token with spaces", "METRICS_TOKEN must be at least 16"),
    ("BACKUP_DIR", "var/backups", "BACKUP_DIR must be an absolute path to a folder"),
    ("BACKUP_DIR", __file__, "BACKUP_DIR must be an absolute path to a folder"),
    ("BACKUP_DIR", f"{__file__}/backups", "BACKUP_DIR must be an absolute path to a folder"),
    ("SECURE_SSL_REDIRECT", "always", "SECURE_SSL_REDIRECT must be a boolean"),
    ("SECURE_HSTS_SECONDS", "-1", "SECURE_HSTS_SECONDS must be at least 0"),
    ("SECURE_PROXY_SSL_HEADER", "https", "SECURE_PROXY_SSL_HEADER must be a header and the"),
    ("SECURE_PROXY_SSL_HEADER", "X Forwarded: https", "SECURE_PROXY_SSL_HEADER must be a"),
    ("CSRF_TRUSTED_ORIGINS", "events.example.com", "CSRF_TRUSTED_ORIGINS must be comma-"),
    ("CSRF_TRUSTED_ORIGINS", "https://events.example.com/", "CSRF_TRUSTED_ORIGINS must be"),
    ("TRUSTED_PROXY_COUNT", "-1", "TRUSTED_PROXY_COUNT must be from 0 to 10"),
]
VENV_BIN = Path(sys.executable).parent


def _run(command: list[str], extra_env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    environ = {
        "PATH": f"{VENV_BIN}:/usr/bin:/bin",
        "HOME": os.environ["HOME"],
        "DJANGO_SETTINGS_MODULE": "events.settings",
        "DEBUG": "true",
        **extra_env,
    }
    return subprocess.run(
        command,
        cwd=settings.PROJECT_DIR,
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
    )


def _manage(*args: str, extra_env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return _run([sys.executable, str(settings.WEBAPP_DIR / "manage.py"), *args], extra_env)


@pytest.mark.parametrize(
    ("name", "value", "says"), BAD_SETTINGS, ids=[f"{n}={v}" for n, v, _ in BAD_SETTINGS]
)
def test_a_bad_setting_stops_manage_py_with_one_line_naming_it(name, value, says):
    result = _manage("check", extra_env={name: value})

    assert result.returncode == 2, result.stderr
    assert result.stderr.splitlines() == [result.stderr.strip()]
    assert result.stderr.startswith(f"error: {says}")
    assert result.stdout == ""


def test_the_same_settings_in_an_accepted_form_start():
    accepted = {
        "LOG_FORMAT": "JSON",
        "LOG_LEVEL": "warning",
        "EMAIL_RATE_LIMIT": "600/min",
        "SUMUP_API_RATE_LIMIT": "5/10s",
        "ADMINS": "Ops <ops@example.com>, dev@example.com",
        "REDIS_URL": "redis://127.0.0.1:6379/3",
    }
    result = _manage("check", extra_env=accepted)
    assert result.returncode == 0, result.stderr
    assert "System check identified no issues" in result.stdout


@pytest.mark.parametrize(
    ("missing", "present"),
    [
        ("SUMUP_CLIENT_ID", {}),
        ("SUMUP_CLIENT_SECRET", {"SUMUP_CLIENT_ID": "client"}),
        ("SUMUP_TOKEN_KEYS", {"SUMUP_CLIENT_ID": "client", "SUMUP_CLIENT_SECRET": "secret"}),
    ],
)
def test_production_names_each_required_setting_that_is_missing(missing, present):
    production = {"DEBUG": "false", "SECRET_KEY": "a-long-production-secret", **present}
    result = _manage("check", extra_env=production)

    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [result.stderr.strip()]
    assert result.stderr.startswith(f"error: {missing} must be set")


@pytest.mark.parametrize(
    "command",
    [
        ["celery", "-A", "jobs", "worker", "--without-mingle", "--without-gossip"],
        ["celery", "-A", "jobs", "beat"],
    ],
    ids=["worker", "beat"],
)
def test_a_bad_setting_stops_celery_with_one_line_naming_it(command):
    result = _run([str(VENV_BIN / command[0]), *command[1:]], {"LOG_FORMAT": "xml"})

    assert result.returncode == 2
    assert result.stderr.splitlines() == ["error: LOG_FORMAT must be one of plain, json, got 'xml'"]


def test_a_bad_setting_stops_gunicorn_with_one_line_naming_it():
    command = [str(VENV_BIN / "gunicorn"), "events.wsgi", "--bind", "127.0.0.1:0"]
    result = _run([*command, "--workers", "1"], {"SUMUP_API_RATE_LIMIT": "fast"})

    # gunicorn's "App failed to load": its master stops rather than boot the worker again.
    assert result.returncode == 4
    errors = [line for line in result.stderr.splitlines() if "error:" in line]
    assert errors == [
        "error: SUMUP_API_RATE_LIMIT must look like 20/s, 600/min or 5/10s, above zero, got 'fast'"
    ]
    assert "Traceback" not in result.stderr


@pytest.mark.django_db(transaction=True)
def test_a_bad_sumup_rate_stops_the_manual_sweep_before_it_claims_anyone(make_artist):
    due = make_artist()
    due.update_sumup_connection({"access_token": "a", "refresh_token": "r", "expires_in": 60})
    environ = {**worker_environment(), "SUMUP_API_RATE_LIMIT": "fast"}

    result = _run(
        [sys.executable, str(settings.WEBAPP_DIR / "manage.py"), "refresh_sumup_tokens"], environ
    )

    assert result.returncode == 2
    assert result.stderr.startswith("error: SUMUP_API_RATE_LIMIT must look like 20/s")
    due.refresh_from_db()
    assert due.sumup_refresh_enqueued_at is None


@pytest.mark.django_db(transaction=True)
def test_a_bad_email_rate_stops_a_campaign_before_it_is_created(make_artist):
    make_artist(is_approved=True)
    environ = {**worker_environment(), "EMAIL_RATE_LIMIT": "0/s"}

    result = _run(
        [sys.executable, str(settings.WEBAPP_DIR / "manage.py"), "notify_artists_sumup_migration"],
        environ,
    )

    assert result.returncode == 2
    assert result.stderr.startswith("error: EMAIL_RATE_LIMIT must look like 20/s")
    assert not Campaign.objects.exists()
