"""The email provider, reached through django-anymail (`EMAIL_BACKEND`, `ANYMAIL_*`).

One connection per worker thread, kept open so its HTTP session is reused, with a fixed
timeout; `send` never raises, it answers what became of the message:

| provider answer                                          | outcome   | then           |
|----------------------------------------------------------|-----------|----------------|
| accepted                                                 | `SENT`    | recorded       |
| 429, 408, 5xx, SES throttling; connection refused or     | `RETRY`   | not sent: try  |
| connect timeout (the request never left); the backend    |           | again, backoff |
| could not be set up                                      |           |                |
| read timeout, connection dropped mid-request, the task's | `UNKNOWN` | may have gone: |
| time limit, anything unexpected inside the call          |           | staff decide   |
| any other 4xx, every recipient refused, a bad address    | `FAILED`  | recorded       |

`UNKNOWN` is only ever the answer to a request that may have reached the provider: the
caller takes its slot of the rate (campaigns.sending) before calling `send`, so a limiter
that fails has made no request and is never mistaken for one.

A retry carries the same idempotency key (Brevo's `idempotencyKey`, the only one anymail
passes through), so a provider that did act on a 5xx drops the repeat.
"""

from __future__ import annotations

import enum
import logging
import threading
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any, cast

import requests
from anymail.exceptions import AnymailAPIError, AnymailError
from django.conf import settings
from django.core.mail import EmailMessage, get_connection
from django.core.mail.backends.base import BaseEmailBackend
from django.utils import timezone
from urllib3.exceptions import NewConnectionError

log = logging.getLogger(__name__)

PROVIDER_TIMEOUT = 10.0  # seconds per request; well under the send task's soft time limit
_RETRYABLE_STATUS = {408, 429}
_SES_THROTTLING = {"Throttling", "ThrottlingException", "TooManyRequestsException"}
# Backends whose API takes an idempotency key that anymail passes through as a header.
_IDEMPOTENT_BACKENDS = ("anymail.backends.brevo.", "anymail.backends.sendinblue.")


class Outcome(enum.StrEnum):
    SENT = "sent"
    RETRY = "retry"
    UNKNOWN = "unknown"
    FAILED = "failed"


@dataclass(frozen=True)
class Answer:
    outcome: Outcome
    message_id: str = ""
    error: str = ""
    retry_after: float | None = None


_local = threading.local()


def _connection() -> BaseEmailBackend:
    # Settings can change under tests; a worker's never do, so this opens once.
    key = hash((settings.EMAIL_BACKEND, repr(sorted(settings.ANYMAIL.items()))))
    cached: tuple[int, BaseEmailBackend] | None = getattr(_local, "connection", None)
    if cached is not None and cached[0] == key:
        return cached[1]
    if cached is not None:
        close()
    # Checked at start-up (settings: ANYMAIL_REQUESTS_TIMEOUT); a test may set its own.
    timeout = float(cast(float, settings.ANYMAIL.get("REQUESTS_TIMEOUT", PROVIDER_TIMEOUT)))
    connection = get_connection(timeout=timeout)
    connection.open()
    _local.connection = (key, connection)
    return connection


def close() -> None:
    cached = getattr(_local, "connection", None)
    _local.connection = None
    if cached is not None:
        try:
            cached[1].close()
        except Exception:  # a broken session is discarded either way
            log.debug("closing the email provider connection failed", exc_info=True)


def idempotency_headers(key: str) -> dict[str, str]:
    """Headers that make the configured provider drop a repeat of this message."""
    if settings.EMAIL_BACKEND.startswith(_IDEMPOTENT_BACKENDS):
        return {"idempotencyKey": key}
    return {}


def send(message: EmailMessage) -> Answer:
    """Hand one message to the provider; never raises (see the module's table)."""
    try:
        connection = _connection()
    except Exception as exc:  # e.g. a missing ANYMAIL_* setting: nothing left
        log.error("the email backend could not be set up: %s", type(exc).__name__)
        return Answer(Outcome.RETRY, error=f"email backend not usable: {type(exc).__name__}")
    try:
        connection.send_messages([message])
    except AnymailAPIError as exc:
        return _classify(exc)
    except (AnymailError, ValueError) as exc:  # refused recipients, bad address, bad data
        return Answer(Outcome.FAILED, error=_first_line(exc))
    except Exception as exc:  # includes the soft time limit: the call may have gone out
        log.warning("email provider call ended without an answer: %s", type(exc).__name__)
        close()
        return Answer(Outcome.UNKNOWN, error=f"no answer: {type(exc).__name__}")
    status = getattr(message, "anymail_status", None)
    message_id = status.message_id if status is not None else None
    if isinstance(message_id, set):
        message_id = ",".join(sorted(str(one) for one in message_id))
    return Answer(Outcome.SENT, message_id=str(message_id or ""))


def _classify(exc: AnymailAPIError) -> Answer:
    cause = exc.__cause__
    if isinstance(cause, requests.ConnectTimeout) or _never_connected(cause):
        return Answer(Outcome.RETRY, error="could not reach the provider")
    if isinstance(cause, requests.RequestException):
        close()
        return Answer(Outcome.UNKNOWN, error=f"no answer from the provider: {type(cause).__name__}")
    status = exc.status_code
    if status is None:
        code = _ses_error_code(exc.response)
        if code in _SES_THROTTLING:
            return Answer(Outcome.RETRY, error=f"provider throttled: {code}")
        return Answer(Outcome.UNKNOWN, error=_first_line(exc))
    error = f"provider answered {status}"
    if status in _RETRYABLE_STATUS or status >= 500:
        return Answer(Outcome.RETRY, error=error, retry_after=_retry_after(exc.response))
    if 200 <= status < 300:  # accepted, but the answer could not be read
        return Answer(Outcome.UNKNOWN, error=f"{error} with an unreadable body")
    return Answer(Outcome.FAILED, error=f"{error}: {_body(exc.response)}")


def _never_connected(cause: BaseException | None) -> bool:
    if not isinstance(cause, requests.ConnectionError) or not cause.args:
        return False
    return isinstance(getattr(cause.args[0], "reason", None), NewConnectionError)


def _ses_error_code(response: Any) -> str:
    if isinstance(response, dict):
        return str(response.get("Error", {}).get("Code", ""))
    return ""


def _retry_after(response: Any) -> float | None:
    value = getattr(response, "headers", {}).get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, (parsedate_to_datetime(value) - timezone.now()).total_seconds())
    except (TypeError, ValueError):
        return None


def _body(response: Any) -> str:
    return " ".join(str(getattr(response, "text", "")).split())[:200]


def _first_line(exc: BaseException) -> str:
    return (str(exc).splitlines() or [type(exc).__name__])[0][:300]
