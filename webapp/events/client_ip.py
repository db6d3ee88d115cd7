"""The address a request came from, as far as this deployment can trust it.

Behind a proxy (a PaaS router, nginx, a load balancer) REMOTE_ADDR is the proxy's, and
every client would share one login throttle. Each proxy appends the address it received
the request from to X-Forwarded-For, so with TRUSTED_PROXY_COUNT proxies in front of the
web, the client is that many entries from the right; anything further left was written
by the client and proves nothing. With 0 (clients reach gunicorn directly) the header is
ignored altogether.
"""

from django.conf import settings
from django.http import HttpRequest


def client_ip(request: HttpRequest) -> str | None:
    """The client's address (django-axes' AXES_CLIENT_IP_CALLABLE)."""
    direct = request.META.get("REMOTE_ADDR")
    direct = str(direct) if direct else None
    hops: int = settings.TRUSTED_PROXY_COUNT
    if hops == 0:
        return direct
    forwarded = str(request.META.get("HTTP_X_FORWARDED_FOR", ""))
    chain = [address.strip() for address in forwarded.split(",") if address.strip()]
    if len(chain) < hops:
        # Fewer entries than proxies: the request skipped a proxy (a probe from inside);
        # only the connection itself is known.
        return direct
    return chain[-hops]
