"""Production is the default: a process started with nothing set refuses to run, in one
line naming what production needs; development mode is asked for by name; and the
deploy files ask for the same secrets."""

import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import yaml
from django.core.exceptions import ImproperlyConfigured

from accounts.sumup import crypto

if TYPE_CHECKING:
    from tests.support.procfile import read_procfile, shell_argv
else:
    from support.procfile import read_procfile, shell_argv

PROJECT_DIR = Path(__file__).resolve().parents[2]
# Nothing but a PATH that finds the project's python, gunicorn and celery.
NOTHING_SET = {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin"}
PRODUCTION_NEEDS = [
    "SECRET_KEY",
    "SUMUP_CLIENT_ID",
    "SUMUP_CLIENT_SECRET",
    "SUMUP_TOKEN_KEYS",
    "METRICS_TOKEN",
]
REFUSAL = (
    "error: SECRET_KEY must be set, as must SUMUP_CLIENT_ID, SUMUP_CLIENT_SECRET, "
    "SUMUP_TOKEN_KEYS and METRICS_TOKEN: DEBUG is off (production, the default); "
    "DEBUG=true runs in development mode"
)


def _run(argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv, cwd=PROJECT_DIR, env=env, capture_output=True, text=True, timeout=60
    )


@pytest.mark.parametrize("process", ["release", "web", "worker", "beat"])
def test_each_procfile_process_started_with_nothing_set_refuses_in_one_line(process):
    result = _run(shell_argv(read_procfile()[process]), NOTHING_SET)

    assert result.returncode == 2, result.stderr
    assert result.stderr.splitlines() == [REFUSAL]
    assert result.stdout == ""


def test_a_missing_secret_is_named_even_when_the_others_are_set():
    production = {name: "set-for-this-test" for name in PRODUCTION_NEEDS[:-1]}

    result = _run([sys.executable, "webapp/manage.py", "check"], {**NOTHING_SET, **production})

    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "error: METRICS_TOKEN must be set: DEBUG is off (production, the default); "
        "DEBUG=true runs in development mode"
    ]


def test_development_mode_is_asked_for_by_name_and_then_needs_no_secret():
    result = _run([sys.executable, "webapp/manage.py", "check"], {**NOTHING_SET, "DEBUG": "true"})

    assert result.returncode == 0, result.stderr
    assert "System check identified no issues" in result.stdout


def test_no_token_key_is_derived_from_secret_key_with_debug_off(settings):
    configured = settings.SUMUP_TOKEN_KEYS
    settings.DEBUG = False
    settings.SUMUP_TOKEN_KEYS = []
    crypto.reset_keys()
    try:
        with pytest.raises(ImproperlyConfigured, match="SUMUP_TOKEN_KEYS must be set"):
            crypto.encrypt("an access token")
        with pytest.raises(ImproperlyConfigured, match="SUMUP_TOKEN_KEYS must be set"):
            crypto.key_fingerprints()
    finally:
        settings.SUMUP_TOKEN_KEYS = configured
        crypto.reset_keys()


def test_compose_refuses_to_start_without_the_production_secrets():
    compose = yaml.safe_load((PROJECT_DIR / "docker-compose.yml").read_text())
    environment = compose["x-app"]["environment"]

    assert environment["DEBUG"] == "false"
    for name in PRODUCTION_NEEDS:
        # Compose's "${NAME:?message}": it stops with the message when NAME is unset or empty.
        assert str(environment[name]).startswith(f"${{{name}:?set {name} in .env"), name
    assert compose["x-app"]["env_file"] == [".env"]
