"""Strict readers for settings that come from the environment.

Every reader names the variable in its error, so a typo in a deploy's environment fails
at start-up with a message that says which line to fix instead of a confusing
behaviour later.
"""

import os
import re
from collections.abc import Mapping, Sequence
from email.utils import parseaddr
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import dj_database_url
from cryptography.fernet import Fernet
from django.core.exceptions import ImproperlyConfigured, ValidationError
from django.core.validators import validate_email
from redis.connection import parse_url

from events.rate_limits import parse_rate

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def _raw(name: str) -> str | None:
    value = os.environ.get(name)
    return None if value is None else value.strip()


def env_str(name: str, default: str = "") -> str:
    value = _raw(name)
    return default if value is None else value


def check_required(names: Sequence[str], *, because: str) -> None:
    """Stop unless every variable in `names` is set, with one line naming each one that is
    not (the first of them leads), so a deploy learns all it lacks at once."""
    missing = [name for name in names if not _raw(name)]
    if not missing:
        return
    first, *others = missing
    also = ""
    if others:
        listed = " and ".join([", ".join(others[:-1]), others[-1]] if others[1:] else others)
        also = f", as must {listed}"
    raise ImproperlyConfigured(f"{first} must be set{also}: {because}")


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


def env_choice(name: str, default: str, choices: Sequence[str]) -> str:
    """One of `choices`, matched without regard to case and returned as spelled there."""
    value = _raw(name)
    if value is None or value == "":
        return default
    for choice in choices:
        if value.lower() == choice.lower():
            return choice
    raise ImproperlyConfigured(f"{name} must be one of {', '.join(choices)}, got {value!r}")


def env_int(
    name: str,
    default: int,
    *,
    minimum: int | None = None,
    maximum: int | None = None,
    why: str = "",
) -> int:
    """A whole number within [minimum, maximum]; `why` explains a bound set by another
    setting in the error."""
    value = _raw(name)
    if value is None or value == "":
        return default
    try:
        number = int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a whole number, got {value!r}") from None
    too_small = minimum is not None and number < minimum
    too_large = maximum is not None and number > maximum
    if too_small or too_large:
        if minimum is not None and maximum is not None:
            bounds = f"from {minimum} to {maximum}"
        elif minimum is not None:
            bounds = f"at least {minimum}"
        else:
            bounds = f"at most {maximum}"
        because = f" ({why})" if why else ""
        raise ImproperlyConfigured(f"{name} must be {bounds}{because}, got {number}")
    return number


def env_list(
    name: str, default: list[str] | None = None, *, sep: str = ",", required: bool = False
) -> list[str]:
    value = _raw(name)
    items = (
        list(default or [])
        if value is None
        else [item.strip() for item in value.split(sep) if item.strip()]
    )
    if required and not items:
        raise ImproperlyConfigured(f"{name} must list at least one value, separated by {sep!r}")
    return items


def _shown(url: str) -> str:
    """`url` fit for an error message: a password in it replaced."""
    return re.sub(r"//[^/@]*@", "//***@", url)


def env_url(name: str, default: str, *, keep_trailing_slash: bool = False) -> str:
    """An http(s) URL; by default without a trailing slash (SumUp rejects URLs ending in one)."""
    value = env_str(name, default) or default
    try:
        parts = urlsplit(value)
        usable = parts.scheme in ("http", "https") and bool(parts.hostname)
        _port = parts.port  # raises on a port that is not a number from 0 to 65535
    except ValueError:
        usable = False
    if not usable or any(char.isspace() for char in value):
        raise ImproperlyConfigured(
            f"{name} must be an http(s) URL such as https://host/path, got {_shown(value)!r}"
        )
    return value if keep_trailing_slash else value.rstrip("/")


def env_origins(name: str) -> list[str]:
    """Comma-separated origins, `scheme://host[:port]` (a leading `*.` allowed in the host,
    as CSRF_TRUSTED_ORIGINS takes them), or [] when unset."""
    origins = env_list(name)
    for origin in origins:
        try:
            parts = urlsplit(origin)
            _port = parts.port  # raises on a port that is not a number from 0 to 65535
            usable = (
                parts.scheme in ("http", "https")
                and bool(parts.netloc)
                and not (parts.path or parts.query or parts.fragment or "@" in parts.netloc)
            )
        except ValueError:
            usable = False
        if not usable:
            raise ImproperlyConfigured(
                f"{name} must be comma-separated origins such as https://events.example.com "
                f"(scheme and host, no path), got {origin!r}"
            )
    return origins


# A request header's name as HTTP spells it (RFC 9110 token characters).
_HEADER_NAME = re.compile(r"[A-Za-z0-9!#$%&'*+.^_`|~-]+")


def env_header_value(name: str, default: str) -> tuple[str, str] | None:
    """`Header-Name: value` as Django's SECURE_PROXY_SSL_HEADER wants it,
    `("HTTP_HEADER_NAME", "value")`; None when set to an empty value."""
    value = env_str(name, default)
    if not value:
        return None
    header, colon, expected = (part.strip() for part in value.partition(":"))
    if not (colon and expected and _HEADER_NAME.fullmatch(header)):
        raise ImproperlyConfigured(
            f"{name} must be a header and the value that marks https, such as "
            f"'X-Forwarded-Proto: https', or empty for none, got {value!r}"
        )
    return "HTTP_" + header.upper().replace("-", "_"), expected


def env_redis_url(name: str, default: str) -> str:
    """A Redis URL that redis-py reads as written (it ignores a database that is not a
    number, and would use database 0 instead)."""
    value = env_str(name, default) or default
    accepted = (
        f"{name} must be a URL such as redis://host:6379/0 or unix:///path, got {_shown(value)!r}"
    )
    if not value.startswith(("redis://", "rediss://", "unix://")):
        raise ImproperlyConfigured(accepted)
    try:
        parsed = parse_url(value)  # type: ignore[no-untyped-call]
        parts = urlsplit(value)
    except ValueError:
        raise ImproperlyConfigured(accepted) from None
    database = parts.path.strip("/")
    if value.startswith("unix://"):
        usable = bool(parsed.get("path"))
    else:
        usable = bool(parts.hostname) and (database == "" or database.isdigit())
    if not usable:
        raise ImproperlyConfigured(accepted)
    return value


# The engines the project runs on and backs up (operations.backups).
_DATABASE_ENGINES = ("django.db.backends.postgresql", "django.db.backends.sqlite3")


def env_database(name: str, default: str, *, conn_max_age: int = 0) -> dict[str, Any]:
    value = env_str(name, default) or default
    accepted = "a postgres:// or sqlite:/// URL"
    try:
        config: dict[str, Any] = dict(
            dj_database_url.parse(value, conn_max_age=conn_max_age, conn_health_checks=True)
        )
    except Exception:  # dj-database-url raises several types for a bad URL
        config = {}
    if config.get("ENGINE") not in _DATABASE_ENGINES or not config.get("NAME"):
        raise ImproperlyConfigured(f"{name} must be {accepted}, got {_shown(value)!r}")
    return config


def env_rate(name: str, default: str) -> str:
    """A rate such as `20/s` (events.rate_limits reads it), kept as written."""
    value = env_str(name, default) or default
    parse_rate(value, setting=name)
    return value


def env_email(name: str, default: str) -> str:
    """An address, alone or as `Name <address>`."""
    value = env_str(name, default)
    if value:
        _check_address(name, value)
    return value


def env_emails(name: str) -> list[str]:
    """Comma-separated addresses, each alone or as `Name <address>`."""
    values = env_list(name)
    for value in values:
        _check_address(name, value)
    return values


def _check_address(name: str, value: str) -> None:
    _display, address = parseaddr(value)
    try:
        validate_email(address)
    except ValidationError:
        raise ImproperlyConfigured(
            f"{name} must be an email address such as a@example.com or Name <a@example.com>, "
            f"got {value!r}"
        ) from None


_DOTTED_PATH = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)+")


def env_dotted_path(name: str, default: str) -> str:
    """A class given by its dotted path. Only the form is checked: importing it here, while
    the settings themselves are loading, could import code that reads them."""
    value = env_str(name, default) or default
    if not _DOTTED_PATH.fullmatch(value):
        raise ImproperlyConfigured(
            f"{name} must be a dotted path such as package.module.Class, got {value!r}"
        )
    return value


def env_file_path(name: str) -> str:
    """A file to write, in a folder that exists (the file itself is created if need be)."""
    value = env_str(name)
    if value and not Path(value).expanduser().resolve().parent.is_dir():
        raise ImproperlyConfigured(f"{name} must be a file in an existing folder, got {value!r}")
    return value


def env_folder(name: str, default: Path) -> Path:
    """A folder to write into, given as an absolute path (`~` expanded): one that exists,
    or that can be created (its nearest existing parent is a folder this process may write
    to). A relative path is refused: it would depend on the directory a command runs in."""
    value = env_str(name)
    if not value:
        return default
    path = Path(value).expanduser()
    accepted = f"{name} must be an absolute path to a folder that exists or can be created"
    if not path.is_absolute():
        raise ImproperlyConfigured(f"{accepted}, got {value!r}, a relative path")
    path = path.resolve()
    existing = next(folder for folder in (path, *path.parents) if folder.exists())
    if not existing.is_dir():
        raise ImproperlyConfigured(f"{accepted}, got {value!r}: {existing} is a file")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ImproperlyConfigured(f"{accepted}, got {value!r}: {existing} is not writable")
    return path


# RFC 6750's b64token: what an `Authorization: Bearer` header can carry as it is.
_BEARER_TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*")


def env_token(name: str, *, min_length: int) -> str:
    """A secret sent as a bearer token, or "" when unset. The value is never repeated in
    the error, only its length."""
    value = env_str(name)
    if value and (len(value) < min_length or not _BEARER_TOKEN.fullmatch(value)):
        raise ImproperlyConfigured(
            f"{name} must be at least {min_length} characters of letters, digits and "
            f"-._~+/ (= only at the end); the value given ({len(value)} characters) is not"
        )
    return value


def env_basic_auth(name: str) -> list[str]:
    """Comma-separated `user:password` credentials, as HTTP basic auth sends them (the user
    ends at the first colon), or [] when unset. Secrets: the error names the entry by its
    position, never its text."""
    entries = env_list(name)
    for position, entry in enumerate(entries, start=1):
        user, colon, password = entry.partition(":")
        if not (user and colon and password) or any(char.isspace() for char in entry):
            raise ImproperlyConfigured(
                f"{name} must be user:password (several separated by commas), each with a "
                f"user and a password and no spaces; entry {position} is not"
            )
    return entries


def env_fernet_keys(name: str, *, required: bool) -> list[str]:
    """Comma-separated Fernet keys, newest first: checked at start-up, so a bad key stops
    the process instead of the first token it meets."""
    keys = [key.strip() for key in (_raw(name) or "").split(",") if key.strip()]
    if required and not keys:
        raise ImproperlyConfigured(
            f"{name} must be set when DEBUG is off: comma-separated Fernet keys, newest first "
            "(make one with cryptography's Fernet.generate_key())"
        )
    for position, key in enumerate(keys, start=1):
        try:
            Fernet(key.encode())
        except ValueError:
            raise ImproperlyConfigured(
                f"{name} must be comma-separated Fernet keys (32 url-safe base64 bytes); "
                f"key {position} is not one"
            ) from None
    return keys


def env_prefixed(prefix: str, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """Every `PREFIX_<NAME>` variable as `{"<NAME>": value}`."""
    source = os.environ if environ is None else environ
    return {
        key[len(prefix) :]: value
        for key, value in source.items()
        if key.startswith(prefix) and len(key) > len(prefix)
    }
