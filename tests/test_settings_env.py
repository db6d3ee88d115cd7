import subprocess
import sys

import pytest
from django.core.exceptions import ImproperlyConfigured

from events import env


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
