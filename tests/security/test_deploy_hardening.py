"""A production start is hardened by default: `check --deploy` finds nothing, https is
enforced behind the proxy (redirect, HSTS, secure cookies) with the probes left on
plain http, the image runs as an unprivileged user, the log file is not world-readable,
and the dependencies' floors sit above their known security releases."""

import logging
import os
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from importlib.metadata import version
from logging.config import BaseConfigurator
from pathlib import Path
from typing import Any

import pytest
from django.test import Client
from packaging.requirements import Requirement
from packaging.version import Version

from events.logging import LOG_FILE_MODE, build_logging

PROJECT_DIR = Path(__file__).resolve().parents[2]
PRODUCTION = {
    "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin",
    "HOME": os.environ["HOME"],
    "DJANGO_SETTINGS_MODULE": "events.settings",
    # check --deploy wants 50 characters or more, of more than 5 kinds
    "SECRET_KEY": "x7Qp-2vLr9_Kd0sWf3Ty8uZb4NcMh6Ej1Ag5Io-Ru0Xe7Yw2Bn9",
    "SUMUP_CLIENT_ID": "client",
    "SUMUP_CLIENT_SECRET": "secret",
    "SUMUP_TOKEN_KEYS": "aBRe9bTSlE-pZ5N5tH1XWwFJ2UvQ5o5mQjv2Bq8Q6Ac=",
    "METRICS_TOKEN": "scrape-token-0123456789",
}


def _production(
    *code_or_args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *code_or_args],
        cwd=PROJECT_DIR / "webapp",
        env={**PRODUCTION, **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
    )


def _production_settings(*names: str, env: dict[str, str] | None = None) -> list[str]:
    shown = ", ".join(f"repr(settings.{name})" for name in names)
    code = (
        "import django; django.setup(); from django.conf import settings; "
        f"print({shown}, sep='\\n')"
    )
    result = _production("-c", code, env=env)
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()


def test_check_deploy_finds_nothing_in_production():
    result = _production("manage.py", "check", "--deploy", "--fail-level", "WARNING")

    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


def test_https_is_on_by_default_in_production():
    assert _production_settings(
        "SECURE_SSL_REDIRECT",
        "SECURE_PROXY_SSL_HEADER",
        "SECURE_HSTS_SECONDS",
        "SECURE_HSTS_INCLUDE_SUBDOMAINS",
        "SESSION_COOKIE_SECURE",
        "CSRF_COOKIE_SECURE",
        "CSRF_TRUSTED_ORIGINS",
    ) == [
        "True",
        "('HTTP_X_FORWARDED_PROTO', 'https')",
        "31536000",
        "True",
        "True",
        "True",
        "[]",
    ]


def test_the_https_settings_are_read_from_the_environment():
    chosen = {
        "SECURE_PROXY_SSL_HEADER": "X-Forwarded-Scheme: https",
        "CSRF_TRUSTED_ORIGINS": "https://events.example.com, https://*.jersey.example",
        "SECURE_HSTS_SECONDS": "600",
        "SECURE_SSL_REDIRECT": "false",
    }
    assert _production_settings(
        "SECURE_PROXY_SSL_HEADER",
        "CSRF_TRUSTED_ORIGINS",
        "SECURE_HSTS_SECONDS",
        "SECURE_SSL_REDIRECT",
        env=chosen,
    ) == [
        "('HTTP_X_FORWARDED_SCHEME', 'https')",
        "['https://events.example.com', 'https://*.jersey.example']",
        "600",
        "False",
    ]
    assert _production_settings("SECURE_PROXY_SSL_HEADER", env={"SECURE_PROXY_SSL_HEADER": ""}) == [
        "None"
    ]


@pytest.fixture
def https_enforced(settings: Any) -> None:
    """The production values, in this (development) process."""
    settings.SECURE_SSL_REDIRECT = True
    settings.SECURE_HSTS_SECONDS = 31_536_000
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")


@pytest.mark.django_db
def test_plain_http_is_sent_to_https_and_https_gets_hsts(client: Client, https_enforced: None):
    plain = client.get("/accounts/login/")
    assert plain.status_code == 301
    assert plain["Location"] == "https://testserver/accounts/login/"

    behind_proxy = client.get("/accounts/login/", HTTP_X_FORWARDED_PROTO="https")
    assert behind_proxy.status_code == 200
    assert behind_proxy["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains"


@pytest.mark.django_db
@pytest.mark.parametrize("probe", ["/healthz", "/readyz", "/metrics"])
def test_probes_and_the_scraper_are_answered_on_plain_http(
    client: Client, https_enforced: None, probe: str
):
    assert client.get(probe).status_code in (200, 401, 503)


def test_the_image_runs_as_an_unprivileged_user():
    lines = (PROJECT_DIR / "Dockerfile").read_text().splitlines()
    users = [line.split()[1] for line in lines if line.startswith("USER ")]
    instructions = [line.split()[0] for line in lines if line and line[0].isupper()]

    assert users and users[-1].split(":")[0] not in ("root", "0")
    assert "useradd --system" in "\n".join(lines)
    # Nothing after the switch runs as root again.
    assert "RUN" not in instructions[instructions.index("USER") :]


@pytest.fixture
def umask_022() -> Iterator[None]:
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def test_the_log_file_is_created_readable_by_owner_and_group_only(tmp_path, umask_022):
    path = tmp_path / "events.log"
    configured = build_logging(level="INFO", json_format=False, log_file=str(path))
    handler_class = BaseConfigurator({}).resolve(configured["handlers"]["file"]["class"])
    handler = handler_class(path, maxBytes=64, backupCount=2)
    try:
        for n in range(4):  # past maxBytes: rotated, and the file made again
            handler.emit(logging.makeLogRecord({"msg": f"line {n} " + "x" * 60}))
    finally:
        handler.close()

    assert LOG_FILE_MODE == 0o640
    assert oct(path.stat().st_mode & 0o777) == "0o640"
    assert oct((tmp_path / "events.log.1").stat().st_mode & 0o777) == "0o640"


# Each floor sits at or above the release that fixed a known vulnerability.
FLOORS = {
    "django": "6.0.10",
    "requests": "2.32.4",  # CVE-2024-47081
    "cryptography": "44.0.1",  # CVE-2024-12797
    "gunicorn": "23.0.0",  # CVE-2024-1135, CVE-2024-6827
    "python-json-logger": "3.3.0",  # CVE-2025-27607
    "authlib": "1.6.6",
}


def test_dependency_floors_sit_above_known_security_releases():
    project = tomllib.loads((PROJECT_DIR / "pyproject.toml").read_text())
    requirements = {
        Requirement(line).name.lower(): Requirement(line)
        for line in project["project"]["dependencies"]
    }

    for name, fixed in FLOORS.items():
        floors = [Version(s.version) for s in requirements[name].specifier if s.operator == ">="]
        assert floors and min(floors) >= Version(fixed), (name, requirements[name])
        assert Version(version(name)) in requirements[name].specifier, name
