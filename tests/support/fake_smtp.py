"""An SMTP server on loopback that accepts every message and keeps its bytes as they
came over the wire, for Django's own SMTP backend to send to.

    with FakeSmtp() as smtp:
        EmailBackend(host="127.0.0.1", port=smtp.port).send_messages([message])
        raw = smtp.messages[0]
"""

from __future__ import annotations

import socketserver
import threading
from types import TracebackType


class _Session(socketserver.StreamRequestHandler):
    server: _Server

    def reply(self, line: str) -> None:
        self.wfile.write(line.encode("ascii") + b"\r\n")

    def handle(self) -> None:
        self.reply("220 fake-smtp ready")
        for line in self.rfile:
            command = line.decode("ascii", "replace").strip().upper()
            if command.startswith(("EHLO", "HELO")):
                self.reply("250 fake-smtp")
            elif command.startswith("DATA"):
                self.reply("354 end with <CRLF>.<CRLF>")
                self.server.messages.append(self._read_data())
                self.reply("250 accepted")
            elif command.startswith("QUIT"):
                self.reply("221 bye")
                return
            else:  # MAIL FROM, RCPT TO, RSET, NOOP
                self.reply("250 ok")

    def _read_data(self) -> bytes:
        lines = []
        for line in self.rfile:
            if line == b".\r\n":
                break
            lines.append(line[1:] if line.startswith(b"..") else line)  # dot-stuffing
        return b"".join(lines)


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Session)
        self.messages: list[bytes] = []


class FakeSmtp:
    def __init__(self) -> None:
        self._server = _Server()
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        port: int = self._server.server_address[1]
        return port

    @property
    def messages(self) -> list[bytes]:
        """Each message's DATA, in the order they arrived."""
        return self._server.messages

    def __enter__(self) -> FakeSmtp:
        self._thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
