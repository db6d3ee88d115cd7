"""Liveness (`/healthz`: the process answers) and readiness (`/readyz`: the deployment
can do its work: database, Redis, a worker, beat, migrations).

/readyz is public, so a load balancer can probe it, and says only "ok" or "fail" per
check: a failure's detail names hosts, services and errors inside the deployment, and
goes only to a caller presenting METRICS_TOKEN as a Bearer token (operations.bearer).
"""

from dataclasses import asdict

from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from operations import readiness
from operations.bearer import carries_metrics_token


@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


@never_cache
@require_GET
def readyz(request: HttpRequest) -> JsonResponse:
    """200 when every check passes, else 503; always within 2 s (see operations.readiness).
    Each check is "ok" or "fail"; with the scrape token, its detail and time as well."""
    results = readiness.run_checks(readiness.readyz_checks())
    healthy = all(result.ok for result in results.values())
    detailed = carries_metrics_token(request)
    body = {
        "status": "ok" if healthy else "fail",
        "checks": {
            name: asdict(result) if detailed else ("ok" if result.ok else "fail")
            for name, result in results.items()
        },
    }
    return JsonResponse(body, status=200 if healthy else 503)
