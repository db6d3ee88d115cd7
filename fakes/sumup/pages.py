"""HTML for the fake's consent page and its authorize error page."""

from __future__ import annotations

from html import escape

from fakes.sumup.models import DEFAULT_SCOPES
from fakes.sumup.oauth import AuthorizeRequest

_STYLE = """
body{font-family:system-ui,sans-serif;max-width:32rem;margin:3rem auto;padding:0 1rem;color:#1a1a1a}
.card{border:1px solid #ddd;border-radius:8px;padding:1.5rem}
button{font-size:1rem;padding:.5rem 1.25rem;margin-right:.5rem;border-radius:6px;
  border:1px solid #999}
#allow{background:#1a56db;color:#fff;border-color:#1a56db}
.fake{font-size:.8rem;color:#a00}
"""


def _page(title: str, body: str) -> str:
    return (
        "<!doctype html>\n<html lang=en><head><meta charset=utf-8>"
        f"<title>{escape(title)}</title><style>{_STYLE}</style></head>"
        f"<body><p class=fake>Fake SumUp (local development and tests)</p>{body}</body></html>"
    )


def consent_page(request: AuthorizeRequest, users: list[str]) -> str:
    """The login + consent screen: the app, its scopes, a user picker, Allow and Deny."""
    hidden = "".join(
        f'<input type=hidden name="{escape(name)}" value="{escape(value)}">'
        for name, value in request.hidden_fields().items()
    )
    options = "".join(
        f'<option value="{escape(email)}"{" selected" if i == 0 else ""}>{escape(email)}</option>'
        for i, email in enumerate(users)
    )
    scope_items = "".join(
        f"<li><code>{escape(scope)}</code>{' (default)' if scope in DEFAULT_SCOPES else ''}</li>"
        for scope in request.scopes
    )
    body = (
        "<div class=card><h1>Authorize app</h1>"
        f"<p>The app <strong id=client-id>{escape(request.client_id)}</strong> "
        "wants to access your SumUp account with these permissions:</p>"
        f"<ul id=scopes>{scope_items}</ul>"
        '<form method=post action="/authorize">'
        f"{hidden}"
        "<p><label for=user>Signed in as</label> "
        f"<select id=user name=user>{options}</select></p>"
        "<button type=submit id=allow name=decision value=allow>Allow</button>"
        "<button type=submit id=deny name=decision value=deny>Deny</button>"
        "</form></div>"
    )
    return _page("Authorize app - SumUp", body)


def error_page(message: str) -> str:
    """Shown (status 400) when the request can't safely be redirected back."""
    body = (
        "<div class=card><h1>Invalid request</h1>"
        f"<p id=error>{escape(message)}</p>"
        "<p>The application sent an invalid authorization request.</p></div>"
    )
    return _page("Error - SumUp", body)
