"""Logging that never carries a secret, optionally as JSON, optionally to a rotating file.

`RedactSecrets` is a filter on every handler: it renders the message, then replaces
anything that looks like a credential (bearer tokens, OAuth parameters and JSON fields,
Fernet ciphertext, the configured client secret and keys) with `[REDACTED]`. Code should
not log secrets in the first place; this is the net under that rule. The errors Django
logs also go to staff by mail (events.staff_alerts), through the same filter.
"""

import logging
import logging.handlers
import os
import re
from typing import Any

REDACTED = "[REDACTED]"
# Names of fields that hold secrets (not secrets themselves).
_SECRET_FIELDS = "|".join(
    (
        *("access_token", "refresh_token", "id_token", "client_secret", "code_verifier"),
        *("code", "password", "authorization", "api_key", "secret", "token"),
    )
)
_PATTERNS = (
    re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}"),
    # key=value in query strings and form bodies
    re.compile(rf"(?i)\b({_SECRET_FIELDS})=([^&\s\"']+)"),
    # "key": "value" in JSON and reprs of dicts
    re.compile(rf"(?i)([\"']({_SECRET_FIELDS})[\"']\s*:\s*[\"'])([^\"']+)"),
    # Fernet ciphertext (our tokens at rest)
    re.compile(r"\bgAAAAA[A-Za-z0-9_-]{40,}={0,2}"),
)
# The password in a URL's user part (redis://:password@host, postgres://user:password@host)
_URL_PASSWORD = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^\s/:@]*:)[^\s/@]+@")
_SECRET_KEY = re.compile(rf"(?i)({_SECRET_FIELDS})")  # a field name in structured extras
_CONFIGURED_SECRETS = ("SUMUP_CLIENT_SECRET", "SECRET_KEY", "SUMUP_TOKEN_KEYS")


def _configured_values() -> list[str]:
    values = []
    for name in _CONFIGURED_SECRETS:
        for value in os.environ.get(name, "").split(","):
            if len(value.strip()) >= 8:
                values.append(value.strip())
    return values


def redact(text: str) -> str:
    for value in _configured_values():
        text = text.replace(value, REDACTED)
    text = _PATTERNS[0].sub(lambda m: f"{m.group(1)} {REDACTED}", text)
    text = _PATTERNS[1].sub(lambda m: f"{m.group(1)}={REDACTED}", text)
    text = _PATTERNS[2].sub(lambda m: f"{m.group(1)}{REDACTED}", text)
    text = _URL_PASSWORD.sub(lambda m: f"{m.group(1)}{REDACTED}@", text)
    return _PATTERNS[3].sub(REDACTED, text)


# What every LogRecord carries; anything else on a record came through `extra=`.
_RECORD_FIELDS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {
    "message",
    "asctime",
}


def _redact_value(value: object) -> object:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {
            key: REDACTED if _SECRET_KEY.fullmatch(str(key)) else _redact_value(item)
            for key, item in value.items()
        }
    if isinstance(value, list | tuple):
        return [_redact_value(item) for item in value]
    return value


class RedactSecrets(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed format string: keep the raw message, redacted
            message = str(record.msg)
        record.msg = redact(message)
        record.args = ()
        # The JSON format writes extra fields too: Celery's task lines carry a task's
        # arguments and return value in `data`.
        for name, value in list(vars(record).items()):
            if name not in _RECORD_FIELDS:
                setattr(record, name, _redact_value(value))
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


LOG_FILE_MODE = 0o640  # owner writes, its group (log shippers) reads, nobody else


class PrivateRotatingFileHandler(logging.handlers.RotatingFileHandler):
    """A rotating log file created owner read-write, group read, whatever the umask:
    redacted or not, a log tells what the platform did, to whom and when."""

    def _open(self) -> Any:
        # os.open's mode applies only when it creates the file; the umask may take bits
        # away, never add them (022 leaves 0640 as it is).
        flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if "a" in self.mode else os.O_TRUNC)
        descriptor = os.open(self.baseFilename, flags, LOG_FILE_MODE)
        return open(descriptor, self.mode, encoding=self.encoding, errors=self.errors)


# The values LOG_LEVEL and LOG_FORMAT accept (settings refuse any other at start-up).
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
LOG_FORMATS = ("plain", "json")


def build_logging(*, level: str, json_format: bool, log_file: str) -> dict[str, Any]:
    """The LOGGING setting: console always, plus a rotating file when `log_file` is set."""
    formatter: dict[str, Any] = (
        {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s",
            "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
        }
        if json_format
        else {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}
    )
    handlers: dict[str, Any] = {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "main",
            "filters": ["expected", "redact"],
        }
    }
    if log_file:
        handlers["file"] = {
            "class": "events.logging.PrivateRotatingFileHandler",
            "filename": log_file,
            "maxBytes": 20 * 1024 * 1024,
            "backupCount": 5,
            "formatter": "main",
            "filters": ["expected", "redact"],
        }
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {
            "redact": {"()": "events.logging.RedactSecrets"},
            "expected": {"()": "events.staff_alerts.ExpectedConditions"},
        },
        "formatters": {"main": formatter},
        "handlers": {
            **handlers,
            # Mail to ADMINS for Django's errors (a crash in a view), redacted and
            # counted, in place of Django's AdminEmailHandler (events/staff_alerts.py).
            "staff_alerts": {"class": "events.staff_alerts.StaffAlertHandler"},
        },
        "root": {"handlers": list(handlers), "level": level},
        "loggers": {
            # Django's own handlers go (an unfiltered console; AdminEmailHandler and its
            # dump of every setting); its lines still reach the root's handlers.
            "django": {"handlers": ["staff_alerts"]},
            # Django's request logger repeats tracebacks that the root already shows.
            "django.request": {"level": "ERROR" if level != "DEBUG" else "DEBUG"},
            # Login throttling says INFO on every login; its failures and lockouts are
            # warnings.
            "axes": {"level": "WARNING" if level != "DEBUG" else "DEBUG"},
            # At DEBUG urllib3 writes every request line, query string and all: an
            # artist's address in the email provider's log lookup (campaigns.reconcile).
            # Never below INFO, whatever LOG_LEVEL says.
            "urllib3": {"level": "INFO" if level == "DEBUG" else level},
        },
    }
