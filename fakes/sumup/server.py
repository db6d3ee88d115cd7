"""The threaded HTTP server and `FakeSumUp`, the in-process handle tests use."""

from __future__ import annotations

import contextlib
import socket
import sys
import threading
import traceback
from collections.abc import Iterable, Mapping
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urlsplit

from fakes.sumup.app import App
from fakes.sumup.control import parse_fault
from fakes.sumup.models import (
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    DEFAULT_REDIRECT_URI,
    DEFAULT_USER_EMAIL,
    Config,
    Rotation,
)
from fakes.sumup.oauth import PageError, RedirectError, decide, validate_authorize
from fakes.sumup.state import FakeState
from fakes.sumup.wire import Request, Response
from fakes.threaded_server import QuietHandler, Serving, ThreadedServer


class _Server(ThreadedServer):
    request_queue_size = 256

    def __init__(self, address: tuple[str, int], app: App, verbose: bool) -> None:
        super().__init__(address, _Handler)
        self.app = app
        self.verbose = verbose


class _Handler(QuietHandler):
    server: _Server

    def _read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline().strip():
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _serve(self) -> None:
        try:
            body = self._read_body()
        except ValueError:
            self._send(Response.json(400, {"error": "bad request body"}))
            self.close_connection = True
            return
        split = urlsplit(self.path)
        request = Request(
            method=self.command,
            path=split.path,
            query=parse_qs(split.query, keep_blank_values=True),
            headers={name.lower(): value for name, value in self.headers.items()},
            body=body,
        )
        try:
            response = self.server.app.handle(request)
        except Exception:
            traceback.print_exc(file=sys.stderr)
            response = Response.json(500, {"error": "fake SumUp crashed; see its stderr"})
        if response.drop:
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        self._send(response)

    def _send(self, response: Response) -> None:
        self.respond(response.status, response.headers, response.body)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _serve


class FakeSumUp:
    """A fake SumUp (OAuth authorize/token + REST API + `/_fake/` control API) served over
    HTTP from a background thread.

    >>> with FakeSumUp() as fake:            # binds 127.0.0.1 on a free port
    ...     fake.base_url                    # SUMUP_BASE_URL; fake.api_url = SUMUP_API_URL

    `state` is the live `FakeState`; the helper methods below are shortcuts to it.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        client_id: str = DEFAULT_CLIENT_ID,
        client_secret: str = DEFAULT_CLIENT_SECRET,
        redirect_uris: Iterable[str] = (DEFAULT_REDIRECT_URI,),
        rotation: Rotation = "sumup",
        reject_reuse: bool = False,
        expires_in: int = 3599,
        latency_ms: int = 0,
        seed_users: int = 0,
        verbose: bool = False,
        state: FakeState | None = None,
    ) -> None:
        config = Config(
            rotation=rotation,
            reject_reuse=reject_reuse,
            expires_in=expires_in,
            latency_ms=latency_ms,
        )
        self.state = state or FakeState(
            client_id=client_id,
            client_secret=client_secret,
            redirect_uris=redirect_uris,
            config=config,
            seed_users=seed_users,
        )
        self.client_id, self.client_secret = client_id, client_secret
        self.redirect_uris = list(redirect_uris)
        self._address = (host, port)
        self._verbose = verbose
        self._stopping = threading.Event()
        self.app = App(self.state, sleep=self._stopping.wait)
        self._serving: Serving | None = None

    # -- lifecycle ---------------------------------------------------------------------
    def _bound(self) -> Serving:
        if self._serving is None:
            self._stopping.clear()
            server = _Server(self._address, self.app, self._verbose)
            self._serving = Serving(server, name="sumup-fake")
        return self._serving

    def bind(self) -> str:
        """Open the listening socket (without serving yet); returns the base URL."""
        self._bound()
        return self.base_url

    def start(self) -> str:
        """Serve from a daemon thread; returns the base URL (e.g. http://127.0.0.1:54321)."""
        self._bound().start()
        return self.base_url

    def serve_forever(self) -> None:
        """Serve in the calling thread until `stop()` (from another thread) or Ctrl-C."""
        self._bound().serve_forever()

    def stop(self) -> None:
        """Stop serving, wake any request that sleeps on latency or a hang fault, close."""
        self._stopping.set()
        if self._serving is not None:
            self._serving.stop()
        self._serving = None

    def __enter__(self) -> FakeSumUp:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- addresses ---------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        """SUMUP_BASE_URL for the app (authorize and token live under it)."""
        if self._serving is None:
            raise RuntimeError("FakeSumUp is not started")
        return self._serving.server.base_url

    @property
    def api_url(self) -> str:
        """SUMUP_API_URL for the app: base_url + "/v0.1"."""
        return self.base_url + "/v0.1"

    @property
    def authorize_url(self) -> str:
        return self.base_url + "/authorize"

    @property
    def token_url(self) -> str:
        return self.base_url + "/token"

    # -- shortcuts to the state ----------------------------------------------------------
    def reset(self) -> None:
        self.state.reset()

    def configure(self, **changes: Any) -> Config:
        return self.state.configure(**changes)

    def add_fault(self, endpoint: str, status: int | None = 503, **options: Any) -> None:
        """Queue a forced answer; options: count, retry_after, delay_seconds, body, drop."""
        self.state.add_fault(*parse_fault({"endpoint": endpoint, "status": status, **options}))

    def add_user(self, email: str, merchants: Iterable[Mapping[str, Any]] = ()) -> None:
        self.state.add_user(email, merchants)

    def revoke_user(self, email: str) -> int:
        return self.state.revoke_user(email)

    def advance(self, seconds: float) -> float:
        return self.state.clock.advance(seconds)

    def stats(self) -> dict[str, Any]:
        return self.state.stats()

    def mint_grant(self, email: str = DEFAULT_USER_EMAIL, **options: Any) -> dict[str, Any]:
        return self.state.mint_grant(email, **options)

    def approve(self, authorize_url: str, user: str | None = None, allow: bool = True) -> str:
        """Answer the consent screen for an authorize URL without a browser: returns the
        callback URL SumUp would redirect to (with code, state and merchant_code, or with
        an error). Raises ValueError where SumUp would show its 400 error page."""
        params = parse_qs(urlsplit(authorize_url).query, keep_blank_values=True)
        try:
            request = validate_authorize(self.state, params)
            return decide(self.state, request, user or self.state.user_emails()[0], allow)
        except RedirectError as exc:
            return exc.url
        except PageError as exc:
            raise ValueError(str(exc)) from None
