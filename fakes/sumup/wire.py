"""Transport-neutral request and response records used between the HTTP server and the
handlers, so handlers stay testable without sockets."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs

PROBLEM = "https://developer.sumup.com/problem/"


@dataclass
class Request:
    """One HTTP request. Header names are lower-case."""

    method: str
    path: str
    query: dict[str, list[str]] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    def form(self) -> dict[str, list[str]]:
        return parse_qs(self.body.decode("utf-8", "replace"), keep_blank_values=True)

    def json(self) -> Any:
        return json.loads(self.body.decode() or "{}")


@dataclass
class Response:
    """One HTTP answer; `drop` closes the connection without answering."""

    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    drop: bool = False

    @classmethod
    def json(
        cls,
        status: int,
        data: Any,
        headers: dict[str, str] | None = None,
        content_type: str = "application/json",
    ) -> Response:
        return cls(
            status, json.dumps(data).encode(), {"Content-Type": content_type, **(headers or {})}
        )

    @classmethod
    def html(cls, status: int, page: str) -> Response:
        return cls(status, page.encode(), {"Content-Type": "text/html; charset=utf-8"})

    @classmethod
    def text(cls, status: int, text: str, headers: dict[str, str] | None = None) -> Response:
        return cls(
            status, text.encode(), {"Content-Type": "text/plain; charset=utf-8", **(headers or {})}
        )

    @classmethod
    def redirect(cls, location: str) -> Response:
        return cls(302, b"", {"Location": location, "Cache-Control": "no-store"})

    def json_body(self) -> Any:
        return json.loads(self.body)


def reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def problem(status: int, detail: str, kind: str | None = None) -> Response:
    """An RFC 9457 problem answer, as SumUp's newer endpoints send."""
    slug = kind or reason(status).lower().replace(" ", "-")
    body = {"type": PROBLEM + slug, "title": reason(status), "status": status, "detail": detail}
    return Response.json(status, body, content_type="application/problem+json")
