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
caller takes its slots of the rate (campaigns.sending) in `send`'s `before_request` hook,
right before the request is written, and a hook that refuses (over the rate, or the
limiter failed) stops it: `HELD`, no request made, never mistaken for one.

A retry carries the same idempotency key (Brevo's `idempotencyKey`, the only one anymail
passes through), so a provider that did act on a 5xx drops the repeat.

With Brevo (`can_batch`), one request carries up to `MAX_BATCH` messages (its batch API,
`messageVersions`); the table's outcome is then the whole request's, and an accepted
request answers for each recipient (`recipient_answers`): `SENT` with its own message
id, or `FAILED` for one the provider refused. Any other backend sends one message a
request.

`look_up` asks the provider's log whether it accepted a message to an address, with a
tag, since an instant: campaign recovery settles a send whose worker died mid-call with
it (campaigns.reconcile). Only Brevo is asked (`GET /v3/smtp/emails`, with the API URL
and key anymail's Brevo backend reads, and the send's timeout); any other backend, any
error, timeout or unreadable answer is `CANNOT_TELL`. It never raises and never puts the
API key or the address into a log line or an error.
"""

from __future__ import annotations

import enum
import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Any, cast

import requests
from anymail.exceptions import AnymailAPIError, AnymailError
from anymail.utils import get_anymail_setting
from django.conf import settings
from django.core.mail import EmailMessage, get_connection
from django.core.mail.backends.base import BaseEmailBackend
from django.utils import timezone
from django.utils.module_loading import import_string
from urllib3.exceptions import NewConnectionError

log = logging.getLogger(__name__)

PROVIDER_TIMEOUT = 10.0  # seconds per request; well under the send task's soft time limit
_RETRYABLE_STATUS = {408, 429}
_SES_THROTTLING = {"Throttling", "ThrottlingException", "TooManyRequestsException"}
# Backends whose API takes an idempotency key that anymail passes through as a header,
# and whose log of accepted messages `look_up` can ask: Brevo's.
_IDEMPOTENT_BACKENDS = ("anymail.backends.brevo.", "anymail.backends.sendinblue.")
BREVO_API_URL = "https://api.brevo.com/v3/"  # anymail's default BREVO_API_URL
# The newest messages to one address `look_up` reads: an artist gets a handful a month.
LOOKUP_PAGE = 100
MAX_BATCH = 1000  # Brevo's most message versions in one request
# How anymail reports a recipient the provider refused within an accepted request.
_REFUSED = {"rejected", "invalid", "failed"}


class Outcome(enum.StrEnum):
    HELD = "held"  # the caller's `before_request` stopped it: no request was made
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


class Verdict(enum.StrEnum):
    ACCEPTED = "accepted"
    ABSENT = "absent"
    CANNOT_TELL = "cannot tell"


@dataclass(frozen=True)
class Lookup:
    verdict: Verdict
    message_id: str = ""
    accepted_at: datetime | None = None
    error: str = ""  # why the provider cannot tell; never the address or the key


_local = threading.local()


def _timeout() -> float:
    # Checked at start-up (settings: ANYMAIL_REQUESTS_TIMEOUT); a test may set its own.
    return float(cast(float, settings.ANYMAIL.get("REQUESTS_TIMEOUT", PROVIDER_TIMEOUT)))


def _connection() -> BaseEmailBackend:
    # Settings can change under tests; a worker's never do, so this opens once.
    key = hash((settings.EMAIL_BACKEND, repr(sorted(settings.ANYMAIL.items()))))
    cached: tuple[int, BaseEmailBackend] | None = getattr(_local, "connection", None)
    if cached is not None and cached[0] == key:
        return cached[1]
    if cached is not None:
        close()
    connection = get_connection(timeout=_timeout())
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


def _is_brevo() -> bool:
    return settings.EMAIL_BACKEND.startswith(_IDEMPOTENT_BACKENDS)


def idempotency_headers(key: str) -> dict[str, str]:
    """Headers that make the configured provider drop a repeat of this message."""
    return {"idempotencyKey": key} if _is_brevo() else {}


def can_batch() -> bool:
    """Whether the configured provider takes many messages in one request (`MAX_BATCH`)."""
    return _is_brevo()


def can_look_up() -> bool:
    """Whether the configured provider has a log `look_up` can ask."""
    return _is_brevo()


class Held(Exception):
    """Raised by a `send`'s `before_request` hook: the request must not be made now."""


def send(message: EmailMessage, before_request: Callable[[], None] | None = None) -> Answer:
    """Hand one message to the provider; never raises (see the module's table).

    `before_request` runs once the request is built, right before it is written (before
    the backend is called, for a backend that makes no HTTP request through a session):
    the rate's slots are taken there, so that little lies between them and the request.
    If it raises `Held`, no request is made and the answer is `HELD`."""
    try:
        connection = _connection()
    except Exception as exc:  # e.g. a missing ANYMAIL_* setting: nothing left
        log.error("the email backend could not be set up: %s", type(exc).__name__)
        return Answer(Outcome.RETRY, error=f"email backend not usable: {type(exc).__name__}")
    try:
        with _gated(connection, before_request):
            connection.send_messages([message])
    except Held:
        return Answer(Outcome.HELD, error="held before the request: nothing sent")
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


@contextmanager
def _gated(connection: BaseEmailBackend, hook: Callable[[], None] | None) -> Iterator[None]:
    """Run `hook` right before the connection's HTTP request (anymail's requests-based
    backends post through `connection.session`), or before the backend is called."""
    session = getattr(connection, "session", None)
    if hook is None:
        yield
        return
    if not isinstance(session, requests.Session):
        hook()
        yield
        return
    original = session.request

    def request(*args: Any, **kwargs: Any) -> requests.Response:
        hook()
        return original(*args, **kwargs)

    session.request = request  # type: ignore[method-assign]
    try:
        yield
    finally:
        del session.request  # the class's own method again


def recipient_answers(message: EmailMessage, answer: Answer) -> dict[str, Answer]:
    """What became of each recipient of a message `send` answered: the request's own
    answer for all unless it was accepted; then each recipient's status and message id
    as the provider reported them."""
    addresses = list(message.to)
    if answer.outcome is not Outcome.SENT:
        return dict.fromkeys(addresses, answer)
    status = getattr(message, "anymail_status", None)
    reported = getattr(status, "recipients", None) or {}
    answers = {}
    for address in addresses:
        one = reported.get(address) or reported.get(address.lower())
        if one is None:
            answers[address] = answer
        elif one.status in _REFUSED:
            answers[address] = Answer(Outcome.FAILED, error=f"provider {one.status} the address")
        else:
            answers[address] = Answer(Outcome.SENT, message_id=str(one.message_id or ""))
    return answers


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


def look_up(email: str, tag: str, since: datetime) -> Lookup:
    """Whether the provider accepted a message to `email` tagged `tag` at or after
    `since`: `ACCEPTED` with its id and time (the earliest such), `ABSENT`, or
    `CANNOT_TELL`. A provider or network failure never raises."""
    if not can_look_up():
        return Lookup(Verdict.CANNOT_TELL, error="the email backend keeps no log to ask")
    try:
        api_url, api_key = _brevo_api()
    except Exception as exc:  # e.g. no API key configured
        return Lookup(Verdict.CANNOT_TELL, error=f"provider not configured: {type(exc).__name__}")
    try:
        response = requests.get(
            f"{api_url}smtp/emails",
            params={"email": email, "sort": "desc", "limit": str(LOOKUP_PAGE)},
            headers={"api-key": api_key, "accept": "application/json"},
            timeout=_timeout(),
        )
    except requests.RequestException as exc:  # its text holds the URL, so the address
        return Lookup(
            Verdict.CANNOT_TELL, error=f"no answer from the provider: {type(exc).__name__}"
        )
    if response.status_code != 200:
        return Lookup(Verdict.CANNOT_TELL, error=f"provider answered {response.status_code}")
    try:
        return _verdict(response.json(), email, tag, since)
    except (KeyError, ValueError, TypeError, AttributeError) as exc:
        return Lookup(
            Verdict.CANNOT_TELL, error=f"unreadable provider answer: {type(exc).__name__}"
        )


def _brevo_api() -> tuple[str, str]:
    """The API URL and key the configured Brevo backend sends with, read by anymail's own
    settings helper (`ANYMAIL["BREVO_API_KEY"]`, `ANYMAIL_BREVO_API_KEY` or
    `BREVO_API_KEY`; `SENDINBLUE_*` for the backend's old name)."""
    esp_name = getattr(import_string(settings.EMAIL_BACKEND), "esp_name", "Brevo")
    api_key = get_anymail_setting("api_key", esp_name=esp_name, allow_bare=True)
    api_url = get_anymail_setting("api_url", esp_name=esp_name, default=BREVO_API_URL)
    return f"{str(api_url).rstrip('/')}/", str(api_key)


def _verdict(answer: Any, email: str, tag: str, since: datetime) -> Lookup:
    """Read Brevo's list, newest first: `{"count": n, "transactionalEmails": [...]}`
    (the list is left out when empty)."""
    listed = answer.get("transactionalEmails", [])
    total = answer.get("count", len(listed))
    if not isinstance(listed, list) or not isinstance(total, int):
        raise TypeError("not a list of emails")
    found: list[tuple[datetime, str]] = []
    oldest: datetime | None = None
    for entry in listed:
        at = datetime.fromisoformat(str(entry["date"]))
        if at.tzinfo is None:
            raise ValueError("a date without its offset")
        oldest = at if oldest is None else min(oldest, at)
        tags = entry.get("tags") or []
        if at >= since and str(entry.get("email", "")).lower() == email.lower() and tag in tags:
            found.append((at, str(entry.get("messageId") or "")))
    if found:
        at, message_id = min(found)
        if not message_id:
            raise ValueError("an accepted message without its id")
        return Lookup(Verdict.ACCEPTED, message_id=message_id, accepted_at=at)
    if total > len(listed) and (oldest is None or oldest >= since):
        # Older messages than this page may still be recent enough.
        return Lookup(Verdict.CANNOT_TELL, error="more messages to the address than one page")
    return Lookup(Verdict.ABSENT)
