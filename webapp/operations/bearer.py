"""The scrape token: what /metrics requires and what /readyz's details require.

Anyone can send any Authorization header, so the comparison must answer for every
value: `hmac.compare_digest` raises TypeError on a str that is not ASCII (a 500 for a
guessed token such as "jeton-périmé"), so both sides are compared as UTF-8 bytes.
"""

import hmac

from django.conf import settings
from django.http import HttpRequest


def presented(request: HttpRequest) -> bytes:
    """The bearer token the request carries, as bytes (b"" when it carries none)."""
    scheme, _, token = request.headers.get("Authorization", "").strip().partition(" ")
    if scheme.lower() != "bearer":
        return b""
    # WSGI hands headers over as latin-1 text; surrogatepass keeps any str encodable.
    return token.strip().encode("utf-8", "surrogatepass")


def carries_metrics_token(request: HttpRequest) -> bool:
    """True when the request presents METRICS_TOKEN; never while none is configured."""
    expected: str = settings.METRICS_TOKEN
    if not expected:
        return False
    return hmac.compare_digest(presented(request), expected.encode("utf-8"))
