"""Strict readers for settings that come from the environment.

Every reader names the variable in its error, so a typo in a deploy's environment fails
at start-up with a message that says which line to fix instead of a confusing
behaviour later.
"""

import os
from collections.abc import Mapping
from typing import Any

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def _raw(name: str) -> str | None:
    value = os.environ.get(name)
    return None if value is None else value.strip()


def env_str(name: str, default: str = "") -> str:
    value = _raw(name)
    return default if value is None else value


def env_required(name: str, why: str) -> str:
    value = _raw(name)
    if not value:
        raise ImproperlyConfigured(f"{name} must be set: {why}")
    return value


def env_bool(name: str, default: bool = False) -> bool:
    value = _raw(name)
    if value is None:
        return default
    lowered = value.lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name} must be a boolean (1/0, true/false, yes/no), got {value!r}")


def env_int(name: str, default: int, *, minimum: int | None = None) -> int:
    value = _raw(name)
    if value is None or value == "":
        return default
    try:
        number = int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a whole number, got {value!r}") from None
    if minimum is not None and number < minimum:
        raise ImproperlyConfigured(f"{name} must be at least {minimum}, got {number}")
    return number


def env_list(name: str, default: list[str] | None = None, *, sep: str = ",") -> list[str]:
    value = _raw(name)
    if value is None:
        return list(default or [])
    return [item.strip() for item in value.split(sep) if item.strip()]


def env_url(name: str, default: str, *, keep_trailing_slash: bool = False) -> str:
    """An http(s) URL; by default without a trailing slash (SumUp rejects URLs ending in one)."""
    value = env_str(name, default) or default
    if not value.startswith(("http://", "https://")) or value[-3:] == "://":
        raise ImproperlyConfigured(f"{name} must be an http(s) URL, got {value!r}")
    return value if keep_trailing_slash else value.rstrip("/")


def env_redis_url(name: str, default: str) -> str:
    value = env_str(name, default) or default
    if not value.startswith(("redis://", "rediss://", "unix://")):
        raise ImproperlyConfigured(f"{name} must be a redis:// URL, got {value!r}")
    return value


def env_database(name: str, default: str, *, conn_max_age: int = 0) -> dict[str, Any]:
    value = env_str(name, default) or default
    try:
        config: dict[str, Any] = dict(
            dj_database_url.parse(value, conn_max_age=conn_max_age, conn_health_checks=True)
        )
    except Exception as exc:  # dj-database-url raises several types for a bad URL
        raise ImproperlyConfigured(f"{name} is not a usable database URL: {exc}") from None
    if not config.get("ENGINE"):
        raise ImproperlyConfigured(f"{name} names no database engine: {value!r}")
    return config


def env_prefixed(prefix: str, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """Every `PREFIX_<NAME>` variable as `{"<NAME>": value}`."""
    source = os.environ if environ is None else environ
    return {
        key[len(prefix) :]: value
        for key, value in source.items()
        if key.startswith(prefix) and len(key) > len(prefix)
    }
