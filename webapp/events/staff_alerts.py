"""Mail to staff (ADMINS) when something breaks, and only then.

Django's own AdminEmailHandler mails each error with a full report: every setting (the
Redis URL with its password among them), the request's headers and body, all outside
the redaction every log line gets; and anyone could set one off as often as they liked
with a bad Host header or a failed webhook login. Instead:

- an alert holds the logged line, the request's method and path and the traceback, all
  redacted as every log line is (events.logging.RedactSecrets), and no setting;
- one alert per kind of error (its logger, its exception and where it was raised) per
  STAFF_ALERT_INTERVAL, counted in the cache so that every process shares the count;
  with the cache unreachable the error stays in the log and no mail goes, since an
  outage would otherwise send one per request;
- what a client's request or a health probe causes (`ExpectedConditions`) is logged as
  a warning everywhere and never mailed.
"""

import hashlib
import logging
import traceback
from datetime import UTC, datetime

import redis
from django.conf import settings
from django.core import mail
from django.core.cache import cache
from django.http import HttpRequest

from events.logging import RedactSecrets, redact

log = logging.getLogger(__name__)

STAFF_ALERT_INTERVAL = 5 * 60  # seconds: at most one mail per kind of error in this window
_KEY_PREFIX = "staff-alert:"
_SUBJECT_LENGTH = 150  # characters of the logged line in the subject


class ExpectedConditions(logging.Filter):
    """Turns into warnings the errors Django logs for conditions that are answered, not
    broken: a SuspiciousOperation (its `django.security.*` loggers: a Host outside
    ALLOWED_HOSTS, a webhook's failed login, a malformed upload; answered 400) and a 503
    that a view chose to answer (/readyz while a dependency is down). A crash is a 500
    and stays an error."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.ERROR and _is_expected(record):
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


def _is_expected(record: logging.LogRecord) -> bool:
    if record.name.startswith("django.security."):
        return True
    answered_unavailable = getattr(record, "status_code", None) == 503 and not record.exc_info
    return record.name == "django.request" and answered_unavailable


class StaffAlertHandler(logging.Handler):
    """Mails ADMINS an error record, redacted, at most once per kind per interval.

    It carries its own filters (expected conditions, then redaction), so no
    configuration can attach it without them. Nothing is mailed with DEBUG on."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.addFilter(ExpectedConditions())
        self.addFilter(RedactSecrets())

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno < logging.ERROR or settings.DEBUG or not settings.ADMINS:
            return
        try:
            if _first_of_its_kind(record):
                _mail(*_compose(record))
        except Exception:
            self.handleError(record)


def _kind(record: logging.LogRecord) -> str:
    """The logger, and the exception and the line that raised it (or, without one, the
    line that logged): the same crash on any URL is one kind, another bug is another."""
    where = f"{record.pathname}:{record.lineno}"
    if record.exc_info and record.exc_info[1] is not None:
        _type, error, trace = record.exc_info
        frames = traceback.extract_tb(trace) if trace else []
        if frames:
            where = f"{frames[-1].filename}:{frames[-1].lineno}"
        where = f"{type(error).__qualname__} at {where}"
    return f"{record.name} {where}"


def _first_of_its_kind(record: logging.LogRecord) -> bool:
    key = _KEY_PREFIX + hashlib.sha256(_kind(record).encode()).hexdigest()[:32]
    try:
        return bool(cache.add(key, 1, STAFF_ALERT_INTERVAL))
    except redis.RedisError as exc:
        log.warning(
            "No mail to staff for the error above: the alert count in the cache is "
            "unreachable (%s: %s)",
            type(exc).__name__,
            exc,
        )
        return False


def _mail(subject: str, body: str) -> None:
    try:
        mail.mail_admins(subject, body)
    except Exception as exc:  # whatever the backend raises: the error stays in the log
        log.warning(
            "The mail to staff for the error above failed (%s: %s)", type(exc).__name__, exc
        )


def _compose(record: logging.LogRecord) -> tuple[str, str]:
    message = record.getMessage()  # already redacted by the handler's filter
    first_line = next(iter(message.splitlines()), "").strip()
    subject = f"{record.levelname}: {first_line[:_SUBJECT_LENGTH] or record.name}"
    logged_at = datetime.fromtimestamp(record.created, UTC).isoformat(timespec="seconds")
    lines = [message, "", f"Logger: {record.name}", f"At: {logged_at}"]
    request = getattr(record, "request", None)
    if isinstance(request, HttpRequest):
        lines.append(f"Request: {request.method} {redact(request.path)}")
    if record.exc_text:  # the traceback, redacted by the handler's filter
        lines += ["", record.exc_text]
    minutes = STAFF_ALERT_INTERVAL // 60
    lines += ["", f"More errors of this kind in the next {minutes} minutes go to the log only."]
    return subject, "\n".join(lines)
