"""Every page of the admin, not only those the walks pass through: each registered
model's list, its add form where adding is allowed, and the change page of one row,
plus the admin's index and the overview, at a desktop's width and a phone's. axe-core
finds nothing serious or critical, each has a level-one heading, none is wider than
the window and none breaks the Content-Security-Policy (tests/support/walk.py)."""

from collections.abc import Iterator
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import pytest
from django.contrib import admin
from django.test import RequestFactory
from django.urls import reverse
from django.utils import timezone
from django_celery_beat.models import IntervalSchedule, PeriodicTask
from playwright.sync_api import Browser

from accounts.models import ConnectionStatus, User
from backfills.models import BackfillRun
from campaigns import services
from campaigns.models import Campaign, Recipient, Suppression
from operations.overview import connections

if TYPE_CHECKING:
    from tests.support.walk import PASSWORD, Visit
else:
    from support.walk import PASSWORD, Visit

pytestmark = pytest.mark.django_db(transaction=True)


def _admin_pages(superuser: User) -> list[tuple[str, str]]:
    """(name, path) of every admin page `superuser` can open, for the rows there are."""
    request = RequestFactory().get(reverse("admin:index"))
    request.user = superuser
    pages = [("index", reverse("admin:index")), ("overview", reverse("overview:page"))]
    for model, model_admin in admin.site._registry.items():
        meta = model._meta
        route = f"admin:{meta.app_label}_{meta.model_name}"
        name = f"{meta.app_label}-{meta.model_name}"
        pages.append((f"{name}-list", reverse(f"{route}_changelist")))
        if model_admin.has_add_permission(request):
            pages.append((f"{name}-add", reverse(f"{route}_add")))
        row = model._default_manager.order_by("pk").first()
        if row is not None:
            pages.append((f"{name}-change", reverse(f"{route}_change", args=[row.pk])))
    return pages


@pytest.fixture
def pages(live_server: Any, make_artist: Any) -> list[tuple[str, str]]:
    """A row behind every model's change page, made before the browser starts
    (Playwright's event loop then owns this thread, where Django refuses ORM calls)."""
    root = User.objects.create_superuser("root", "root@example.com", PASSWORD)
    make_artist(is_approved=True, display_name="Nina Blue")
    make_artist(
        is_approved=True,
        display_name="Harbour Lights Community Choir",
        sumup_connection_status=ConnectionStatus.EXPIRED,
        sumup_merchant_code="MH4H92C7",
        sumup_expires_at=timezone.now() - timedelta(days=3),
        sumup_refresh_failures=12,
    )
    campaign = services.create(Campaign(name="Autumn reconnect", rate_limit="5/s"), actor="test")
    services.start(campaign.pk, actor="test")
    services.pause(campaign.pk, actor="test")  # stays as it is, whatever worker runs
    Recipient.objects.filter(campaign=campaign).update(status=Recipient.Status.UNKNOWN)
    Suppression.objects.create(email="gone@example.com", reason=Suppression.Reason.MANUAL)
    BackfillRun.objects.create(backfill="sumup_connection_status", status="running")
    every_minute = IntervalSchedule.objects.create(every=60, period=IntervalSchedule.SECONDS)
    PeriodicTask.objects.create(name="an entry", task="jobs.health.ping", interval=every_minute)
    connections.record_day()
    return _admin_pages(root)


@pytest.fixture
def visit(live_server: Any, browser: Browser, width: str) -> Iterator[Visit]:
    with Visit(browser, live_server.url, width, prefix="every-admin-") as opened:
        yield opened


def test_every_admin_page_is_accessible_and_fits_the_window(
    pages: list[tuple[str, str]], visit: Visit
):
    visit.log_in("/admin/login/", "root")
    for name, path in pages:
        response = visit.page.goto(path)
        assert response is not None and response.ok, f"{name}: {path} answered {response}"
        visit.check(name)
    assert len(pages) > 20, pages
    visit.assert_no_faults()
