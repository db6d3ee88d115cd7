"""The fake Brevo's HTTP side, and `FakeBrevo`, the in-process handle tests use."""

from __future__ import annotations

import json
import time
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urlsplit

from fakes.brevo.state import LIST_PATH, SEND_PATH, FakeBrevoState
from fakes.threaded_server import QuietHandler, Serving, ThreadedServer


class _Handler(QuietHandler):
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
            faults["list_omit"] = set(faults.get("list_omit", ()))
            self.server.state.reset(**faults)
            self._answer(200, {})
        else:
            self._answer(404, {"code": "not_found", "message": self.path})

    def do_GET(self) -> None:
        state = self.server.state
        url = urlsplit(self.path)
        if url.path.rstrip("/") == LIST_PATH:
            headers = {name.lower(): value for name, value in self.headers.items()}
            query = parse_qs(url.query, keep_blank_values=True)
            self._answer(*state.list_emails(headers, query, time.time()))
            return
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
        headers = {"Content-Type": "application/json"}
        if status == 429:
            headers["Retry-After"] = "1"
        self.respond(status, headers, json.dumps(answer).encode())


class _Server(ThreadedServer):
    request_queue_size = 512

    def __init__(self, address: tuple[str, int], state: FakeBrevoState) -> None:
        super().__init__(address, _Handler)
        self.state = state


class FakeBrevo:
    """The fake served from a daemon thread on 127.0.0.1 (a free port by default)."""

    BACKEND = "anymail.backends.brevo.EmailBackend"

    def __init__(self, port: int = 0, state: FakeBrevoState | None = None) -> None:
        self.state = state or FakeBrevoState()
        self._serving = Serving(_Server(("127.0.0.1", port), self.state), name="brevo-fake")

    @property
    def api_url(self) -> str:
        return f"{self._serving.server.base_url}/v3/"

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
        self._serving.start()
        return self

    def serve_forever(self) -> None:
        """Serve in the calling thread until Ctrl-C (`python -m fakes.brevo`)."""
        self._serving.serve_forever()

    def stop(self) -> None:
        self.state.release.set()  # a request held by a hang fault answers now
        self._serving.stop()

    def __enter__(self) -> FakeBrevo:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
