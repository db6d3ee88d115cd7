"""Liveness (`/healthz`: the process answers) and readiness (`/readyz`: the deployment
can do its work: database, Redis, a worker, beat, migrations)."""

from dataclasses import asdict

from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from operations import readiness


@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


@never_cache
@require_GET
def readyz(request: HttpRequest) -> JsonResponse:
    """200 when every check passes, else 503; always within 2 s (see operations.readiness)."""
    results = readiness.run_checks(readiness.readyz_checks())
    healthy = all(result.ok for result in results.values())
    body = {
        "status": "ok" if healthy else "fail",
        "checks": {name: asdict(result) for name, result in results.items()},
    }
    return JsonResponse(body, status=200 if healthy else 503)
