"""What the fake Brevo knows (every request, every message it accepted, its faults) and
how it answers a send or a list request."""

from __future__ import annotations

import json
import random
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from fakes.brevo.email_list import BadQuery, ListQuery, listed
from fakes.brevo.templating import fill

API_KEY = "fake-brevo-api-key"
SEND_PATH = "/v3/smtp/email"
LIST_PATH = "/v3/smtp/emails"
IDEMPOTENCY_TTL = 1800.0  # seconds Brevo remembers an idempotencyKey
MAX_VERSIONS = 1000  # message versions Brevo takes in one request


@dataclass(frozen=True)
class Arrival:
    """One send request as it reached the provider, whatever the answer."""

    at: float  # time.time() on arrival
    to: str
    status: int


@dataclass(frozen=True)
class Accepted:
    message_id: str
    to: str
    subject: str
    text: str
    html: str
    headers: dict[str, str]
    metadata: dict[str, Any]
    idempotency_key: str
    at: float
    sender: str = ""
    tags: tuple[str, ...] = ()
    template_id: int | None = None
    params: dict[str, Any] = field(default_factory=dict)
    uuid: str = field(default_factory=lambda: str(uuid.uuid4()))


@dataclass
class Faults:
    error_rate: float = 0.0  # share of requests answered with one of `error_statuses`
    error_statuses: tuple[int, ...] = (429, 500, 503)
    accepted_error_rate: float = 0.0  # share that is sent, then answered 500 anyway
    max_errors_per_address: int | None = None  # then an address always gets through
    hang: set[str] = field(default_factory=set)  # addresses whose request never returns
    refuse: dict[str, int] = field(default_factory=dict)  # address -> 4xx status
    seed: int | None = None
    list_status: int | None = None  # every list request is answered with it (e.g. 503)
    list_lag: float = 0.0  # seconds before an accepted message shows in the list
    list_omit: set[str] = field(default_factory=set)  # addresses the list never shows


class FakeBrevoState:
    """What the fake knows; `idempotency_ttl` (seconds) can be shortened for a test,
    here or by `reset`, which otherwise restores the one given here."""

    def __init__(self, api_key: str = API_KEY, idempotency_ttl: float = IDEMPOTENCY_TTL) -> None:
        self.api_key = api_key
        self._lock = threading.Lock()
        self.faults = Faults()
        self._default_ttl = self.idempotency_ttl = idempotency_ttl
        self._random = random.Random()  # noqa: S311 (fault injection, not security)
        self.arrivals: list[Arrival] = []
        self.accepted: list[Accepted] = []
        self.hung: list[str] = []
        self.requests: list[tuple[str, ...]] = []  # the addresses each send request carried
        self.lookups: list[dict[str, str]] = []  # the query of every list request
        # key -> (the message id given to each address, first use)
        self._by_key: dict[str, tuple[dict[str, str], float]] = {}
        self._errors: dict[str, int] = {}
        self.release = threading.Event()

    def reset(self, *, idempotency_ttl: float | None = None, **faults: Any) -> None:
        with self._lock:
            self.faults = Faults(**faults)
            self.idempotency_ttl = self._default_ttl if idempotency_ttl is None else idempotency_ttl
            self._random.seed(self.faults.seed)
            self.arrivals, self.accepted, self.hung, self.lookups = [], [], [], []
            self.requests = []
            self._by_key, self._errors = {}, {}
            self.release.set()
            self.release = threading.Event()

    def accepted_for(self, email: str) -> int:
        with self._lock:
            return sum(1 for message in self.accepted if message.to == email.lower())

    def handle(self, headers: dict[str, str], body: bytes, at: float) -> tuple[int, dict[str, Any]]:
        """Answer one send request that arrived at `at` (time.time()): (status, JSON body).

        A request with `messageVersions` (Brevo's batch send, at most `MAX_VERSIONS`) is
        one message a version, each to the version's first `to`, with its own `params`
        and `headers` over the request's; it is taken or refused whole, one answer
        `{"messageIds": [...]}`, an id a version."""
        if headers.get("api-key") != self.api_key:
            return 401, {"code": "unauthorized", "message": "Key not found"}
        try:
            data = json.loads(body)
            versions = _versions(data)
        except (ValueError, KeyError, IndexError, TypeError):
            return 400, {"code": "invalid_parameter", "message": "bad request body"}
        mail_headers = {str(k): str(v) for k, v in (data.get("headers") or {}).items()}
        key = mail_headers.pop("idempotencyKey", "")
        addresses = [to for to, _ in versions]
        with self._lock:
            self.requests.append(tuple(addresses))
            if self.faults.hang.intersection(addresses):
                self.arrivals += [Arrival(at, to, 0) for to in addresses]
                self.hung += addresses
                release = self.release
            else:
                status, answer = self._decide(versions, key, data, mail_headers, at)
                self.arrivals += [Arrival(at, to, status) for to in addresses]
                return status, answer
        release.wait()  # until reset() or stop(); by then the caller has usually died
        return 504, {"code": "timeout", "message": "fake hang released"}

    def _decide(
        self,
        versions: list[tuple[str, dict[str, Any]]],
        key: str,
        data: dict[str, Any],
        headers: dict[str, str],
        at: float,
    ) -> tuple[int, dict[str, Any]]:
        batch = "messageVersions" in data
        addresses = [to for to, _ in versions]
        for to in addresses:
            if to in self.faults.refuse:  # one bad recipient refuses the request whole
                return self.faults.refuse[to], {"code": "invalid_parameter", "message": "refused"}
        first = self._by_key.get(key) if key else None
        if first is not None and at - first[1] < self.idempotency_ttl:
            # Brevo: a repeated key is not sent again; the first answer's ids.
            ids = [first[0].get(to, "") for to in addresses]
            return 201, {"messageIds": ids} if batch else {"messageId": ids[0]}
        roll = self._random.random()
        cap = self.faults.max_errors_per_address
        if cap is not None and all(self._errors.get(to, 0) >= cap for to in addresses):
            roll = 1.0
        elif roll < self.faults.error_rate + self.faults.accepted_error_rate:
            for to in addresses:
                self._errors[to] = self._errors.get(to, 0) + 1
        if roll < self.faults.error_rate:
            status = self._random.choice(self.faults.error_statuses)
            return status, {"code": "error", "message": f"fake fault {status}"}
        now = time.time()
        ids = [self._accept(to, version, key, data, headers, now) for to, version in versions]
        if key:
            self._by_key[key] = (dict(zip(addresses, ids, strict=True)), at)
        if roll < self.faults.error_rate + self.faults.accepted_error_rate:
            return 500, {"code": "error", "message": "fake fault after sending"}
        return 201, {"messageIds": ids} if batch else {"messageId": ids[0]}

    def _accept(
        self,
        to: str,
        version: dict[str, Any],
        key: str,
        data: dict[str, Any],
        headers: dict[str, str],
        now: float,
    ) -> str:
        """Record one message (a version of the request, or the request itself)."""
        message_id = f"<{uuid.uuid4().hex}@fake-brevo.local>"
        own = {str(k): str(v) for k, v in (version.get("headers") or {}).items()}
        merged = {**headers, **own}
        params = {**(data.get("params") or {}), **(version.get("params") or {})}
        try:
            metadata = json.loads(merged.get("X-Mailin-custom", "{}"))
        except ValueError:
            metadata = {}
        sender = data.get("sender")
        template_id = data.get("templateId")
        content = {name: version.get(name, data.get(name, "")) for name in _CONTENT}
        self.accepted.append(
            Accepted(
                message_id=message_id,
                to=to,
                subject=fill(str(content["subject"]), params),
                text=fill(str(content["textContent"]), params),
                html=fill(str(content["htmlContent"]), params),
                headers=merged,
                metadata=metadata if isinstance(metadata, dict) else {},
                idempotency_key=key,
                at=now,
                sender=str(sender.get("email", "")) if isinstance(sender, dict) else "",
                tags=tuple(str(tag) for tag in data.get("tags") or ()),
                template_id=template_id if isinstance(template_id, int) else None,
                params=params,
            )
        )
        return message_id

    def list_emails(
        self, headers: dict[str, str], query: dict[str, list[str]], now: float
    ) -> tuple[int, dict[str, Any]]:
        """Answer `GET /v3/smtp/emails` (Brevo's "get transactional emails list"): the
        accepted messages matching the filters, newest first unless `sort=asc`."""
        if headers.get("api-key") != self.api_key:
            return 401, {"code": "unauthorized", "message": "Key not found"}
        with self._lock:
            self.lookups.append({name: values[-1] for name, values in query.items()})
            status, lag = self.faults.list_status, self.faults.list_lag
            omitted = self.faults.list_omit
            accepted = [m for m in self.accepted if m.to not in omitted]
        if status is not None:
            return status, {"code": "error", "message": f"fake fault {status}"}
        try:
            wanted = ListQuery.parse(query, now)
        except BadQuery as exc:
            return 400, {"code": exc.code, "message": str(exc)}
        found = [m for m in accepted if m.at + lag <= now and wanted.matches(m)]
        found.sort(key=lambda message: message.at, reverse=wanted.newest_first)
        page = found[wanted.offset : wanted.offset + wanted.limit]
        return 200, {"count": len(found), "transactionalEmails": [listed(m) for m in page]}


_CONTENT = ("subject", "textContent", "htmlContent")


def _versions(data: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(address, version) of each message a send request makes: one a message version,
    or the request itself without versions."""
    versions = data.get("messageVersions")
    if versions is None:
        return [(str(data["to"][0]["email"]).lower(), {})]
    if not isinstance(versions, list) or not 1 <= len(versions) <= MAX_VERSIONS:
        raise ValueError("between 1 and 1000 message versions")
    return [(str(version["to"][0]["email"]).lower(), version) for version in versions]


def tracking_payload(message: Accepted, event: str) -> dict[str, Any]:
    """What Brevo posts to the tracking webhook (`delivered`, `hard_bounce`, `spam`, ...)."""
    return {
        "event": event,
        "email": message.to,
        "message-id": message.message_id,
        "ts_epoch": int(time.time() * 1000),
        "subject": message.subject,
        "X-Mailin-custom": json.dumps(message.metadata),
    }
