"""The HTTP server both fakes run on, and the daemon thread that serves it in-process."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

POLL_INTERVAL = 0.05  # seconds between serve_forever's checks for shutdown()
STOP_JOIN_TIMEOUT = 5.0  # seconds stop() waits for the serving thread


class ThreadedServer(ThreadingHTTPServer):
    """A thread per connection, so a request a test holds (a hang fault) holds only its
    own; daemon threads, so a held request never keeps the process alive; the port free
    again at once, so a fake can be restarted on it."""

    daemon_threads = True
    allow_reuse_address = True
    verbose = False  # log every request to stderr

    @property
    def base_url(self) -> str:
        host, port = self.server_address[:2]
        host = str(host)
        return f"http://{f'[{host}]' if ':' in host else host}:{port}"


class QuietHandler(BaseHTTPRequestHandler):
    """Keep-alive, as the providers' clients expect; each answer sent at once (no Nagle
    delay); silent unless the server is verbose."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def respond(self, status: int, headers: Mapping[str, str], body: bytes) -> None:
        try:
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the caller gave up (its timeout fired) or died

    def log_message(self, format: str, *args: Any) -> None:
        if getattr(self.server, "verbose", False):
            super().log_message(format, *args)


class Serving:
    """A server and, once started, the daemon thread that serves it."""

    def __init__(self, server: ThreadedServer, name: str) -> None:
        self.server = server
        self.name = name
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self.server.serve_forever,
                kwargs={"poll_interval": POLL_INTERVAL},
                name=self.name,
                daemon=True,
            )
            self._thread.start()

    def serve_forever(self) -> None:
        """Serve in the calling thread until `stop()` (from another thread) or Ctrl-C."""
        self.server.serve_forever(poll_interval=POLL_INTERVAL)

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=STOP_JOIN_TIMEOUT)
            self._thread = None
