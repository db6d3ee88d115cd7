"""The staff overview page, and the live state of the token refresh sweep that it polls.

Any member of staff may open the page (admin.site.admin_view); each section shows only
to those the admin lets view its model: artists for connections and refreshes,
campaigns for campaigns, backfill runs for backfills. The page counts today's
connections when nobody has yet (beat counts them every hour).
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.db.models import Model
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.template.response import TemplateResponse

from accounts.models import ArtistProfile
from backfills.models import ACTIVE, BackfillRun
from campaigns.models import Campaign
from operations.overview import campaign_charts, campaign_figures, charts, connections, refreshes

TITLE = "Overview: connections, refreshes, campaigns"
POLL_SECONDS = 5  # between the page's reads of the sweep's live state


def _may_view(request: HttpRequest, model: type[Model]) -> bool:
    """As the admin decides for the model's own pages: its view or change permission."""
    return admin.site.get_model_admin(model).has_view_permission(request)


def page(request: HttpRequest) -> HttpResponse:
    context: dict[str, Any] = {
        **admin.site.each_context(request),
        "title": TITLE,
        "poll_seconds": POLL_SECONDS,
    }
    if _may_view(request, ArtistProfile):
        connections.record_day_if_missing()
        context.update(
            show_artists=True,
            connections_now=charts.connections_now(connections.counts_now()),
            connections_history=charts.connections_history(connections.history()),
            refresh_hours=charts.refresh_hours(refreshes.hourly()),
            refresh_status=refreshes.status(),
        )
    if _may_view(request, Campaign):
        rates = campaign_figures.send_rates()
        found = campaign_figures.conversions()
        context.update(
            show_campaigns=True,
            campaign_rates=campaign_charts.send_rates(rates) if rates else None,
            conversions=campaign_charts.conversions(found) if found else None,
        )
    if _may_view(request, BackfillRun):
        runs = list(BackfillRun.objects.filter(status__in=ACTIVE).order_by("created_at"))
        context.update(
            show_backfills=True, backfills=campaign_charts.backfills(runs) if runs else None
        )
    return TemplateResponse(request, "operations/overview/page.html", context)


def refresh_json(request: HttpRequest) -> JsonResponse:
    """The sweep's live state, the payload the page first showed (`refreshes.status`)."""
    if not _may_view(request, ArtistProfile):
        raise PermissionDenied
    return JsonResponse(refreshes.status())
