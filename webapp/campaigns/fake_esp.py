"""A fake Brevo transactional email API on loopback, for tests, benchmarks and local runs.

It speaks the part of Brevo's v3 API that anymail's real Brevo backend uses (`POST
/v3/smtp/email` with an `api-key` header, answering `201 {"messageId": ...}`), records
every request and every message it accepts, and honours `idempotencyKey` as Brevo does:
a repeat of a key gets the first answer and sends nothing. Faults, for tests: a share of
answers 429 or 5xx (optionally after accepting the message, as a real provider may),
and addresses whose request hangs (to kill a worker inside the call) or is refused.

    with FakeBrevo() as esp:
        settings.EMAIL_BACKEND = FakeBrevo.BACKEND
        settings.ANYMAIL = esp.anymail_settings()
        ...
        assert esp.accepted_for("artist@example.com") == 1

Run it alone (a local site, a benchmark): `python -m campaigns.fake_esp --port 8766`;
then `GET /_fake/arrivals` and `GET /_fake/accepted` list what it saw (JSON), and
`POST /_fake/reset` (a JSON object of `Faults` fields) starts it afresh.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import random
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

API_KEY = "fake-brevo-api-key"
SEND_PATH = "/v3/smtp/email"


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


@dataclass
class Faults:
    error_rate: float = 0.0  # share of requests answered with one of `error_statuses`
    error_statuses: tuple[int, ...] = (429, 500, 503)
    accepted_error_rate: float = 0.0  # share that is sent, then answered 500 anyway
    max_errors_per_address: int | None = None  # then an address always gets through
    hang: set[str] = field(default_factory=set)  # addresses whose request never returns
    refuse: dict[str, int] = field(default_factory=dict)  # address -> 4xx status
    seed: int | None = None


class FakeBrevoState:
    def __init__(self, api_key: str = API_KEY) -> None:
        self.api_key = api_key
        self._lock = threading.Lock()
        self.faults = Faults()
        self._random = random.Random()  # noqa: S311 (fault injection, not security)
        self.arrivals: list[Arrival] = []
        self.accepted: list[Accepted] = []
        self.hung: list[str] = []
        self._by_key: dict[str, str] = {}
        self._errors: dict[str, int] = {}
        self.release = threading.Event()

    def reset(self, **faults: Any) -> None:
        with self._lock:
            self.faults = Faults(**faults)
            self._random.seed(self.faults.seed)
            self.arrivals, self.accepted, self.hung = [], [], []
            self._by_key, self._errors = {}, {}
            self.release.set()
            self.release = threading.Event()

    def accepted_for(self, email: str) -> int:
        with self._lock:
            return sum(1 for message in self.accepted if message.to == email.lower())

    def handle(self, headers: dict[str, str], body: bytes, at: float) -> tuple[int, dict[str, Any]]:
        """Answer one send request that arrived at `at` (time.time()): (status, JSON body)."""
        if headers.get("api-key") != self.api_key:
            return 401, {"code": "unauthorized", "message": "Key not found"}
        try:
            data = json.loads(body)
            to = str(data["to"][0]["email"]).lower()
        except (ValueError, KeyError, IndexError, TypeError):
            return 400, {"code": "invalid_parameter", "message": "bad request body"}
        mail_headers = {str(k): str(v) for k, v in (data.get("headers") or {}).items()}
        key = mail_headers.pop("idempotencyKey", "")
        with self._lock:
            if to in self.faults.hang:
                self.arrivals.append(Arrival(at, to, 0))
                self.hung.append(to)
                release = self.release
            else:
                status, answer = self._decide(to, key, data, mail_headers)
                self.arrivals.append(Arrival(at, to, status))
                return status, answer
        release.wait()  # until reset() or stop(); by then the caller has usually died
        return 504, {"code": "timeout", "message": "fake hang released"}

    def _decide(
        self, to: str, key: str, data: dict[str, Any], headers: dict[str, str]
    ) -> tuple[int, dict[str, Any]]:
        if to in self.faults.refuse:
            return self.faults.refuse[to], {"code": "invalid_parameter", "message": "refused"}
        if key and key in self._by_key:  # Brevo: a repeated key is not sent again
            return 201, {"messageId": self._by_key[key]}
        roll = self._random.random()
        cap = self.faults.max_errors_per_address
        if cap is not None and self._errors.get(to, 0) >= cap:
            roll = 1.0
        elif roll < self.faults.error_rate + self.faults.accepted_error_rate:
            self._errors[to] = self._errors.get(to, 0) + 1
        if roll < self.faults.error_rate:
            status = self._random.choice(self.faults.error_statuses)
            return status, {"code": "error", "message": f"fake fault {status}"}
        message_id = f"<{uuid.uuid4().hex}@fake-brevo.local>"
        try:
            metadata = json.loads(headers.get("X-Mailin-custom", "{}"))
        except ValueError:
            metadata = {}
        self.accepted.append(
            Accepted(
                message_id=message_id,
                to=to,
                subject=str(data.get("subject", "")),
                text=str(data.get("textContent", "")),
                html=str(data.get("htmlContent", "")),
                headers=headers,
                metadata=metadata if isinstance(metadata, dict) else {},
                idempotency_key=key,
                at=time.time(),
            )
        )
        if key:
            self._by_key[key] = message_id
        if roll < self.faults.error_rate + self.faults.accepted_error_rate:
            return 500, {"code": "error", "message": "fake fault after sending"}
        return 201, {"messageId": message_id}


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


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: _Server

    def do_POST(self) -> None:
        at = time.time()  # as the request line arrived: the moment the rate is judged by
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        path = self.path.rstrip("/")
        if path == SEND_PATH:
            headers = {name.lower(): value for name, value in self.headers.items()}
            self._answer(*self.server.state.handle(headers, body, at))
        elif path == "/_fake/reset":
            faults = json.loads(body or b"{}")
            faults["hang"] = set(faults.get("hang", ()))
            self.server.state.reset(**faults)
            self._answer(200, {})
        else:
            self._answer(404, {"code": "not_found", "message": self.path})

    def do_GET(self) -> None:
        state = self.server.state
        with state._lock:
            lists = {
                "/_fake/arrivals": [[a.at, a.to, a.status] for a in state.arrivals],
                "/_fake/accepted": [[m.at, m.to, m.message_id] for m in state.accepted],
            }
        found = lists.get(self.path.rstrip("/"))
        if found is None:
            self._answer(404, {"code": "not_found", "message": self.path})
        else:
            self._answer(200, found)

    def _answer(self, status: int, answer: Any) -> None:
        payload = json.dumps(answer).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            if status == 429:
                self.send_header("Retry-After", "1")
            self.end_headers()
            self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the caller gave up or died

    def log_message(self, format: str, *args: Any) -> None:
        return


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 512

    def __init__(self, address: tuple[str, int], state: FakeBrevoState) -> None:
        super().__init__(address, _Handler)
        self.state = state


class FakeBrevo:
    """The fake served from a daemon thread on 127.0.0.1 (a free port by default)."""

    BACKEND = "anymail.backends.brevo.EmailBackend"

    def __init__(self, port: int = 0, state: FakeBrevoState | None = None) -> None:
        self.state = state or FakeBrevoState()
        self._server = _Server(("127.0.0.1", port), self.state)
        self._thread: threading.Thread | None = None

    @property
    def api_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/v3/"

    def anymail_settings(self) -> dict[str, str]:
        """ANYMAIL for the real Brevo backend to reach this fake."""
        return {"BREVO_API_KEY": self.state.api_key, "BREVO_API_URL": self.api_url}

    def environ(self) -> dict[str, str]:
        """The same, as the environment of a worker process (events.settings reads it)."""
        return {
            "EMAIL_BACKEND": self.BACKEND,
            **{f"ANYMAIL_{name}": value for name, value in self.anymail_settings().items()},
        }

    def start(self) -> FakeBrevo:
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self.state.release.set()
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> FakeBrevo:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description="A fake Brevo email API on 127.0.0.1.")
    parser.add_argument("--port", type=int, default=8766)
    port = parser.parse_args().port
    fake = FakeBrevo(port)
    print(f"Fake Brevo on {fake.api_url}; run the site and workers with:")
    for name, value in fake.environ().items():
        print(f"  export {name}={value}")
    with contextlib.suppress(KeyboardInterrupt):
        fake._server.serve_forever()


if __name__ == "__main__":
    main()
