"""Beat's schedule in the admin: django-celery-beat's own pages, with each of its bulk
actions (enable, disable, toggle, run now) needing the permission to change the
schedule. As shipped they are offered to anyone who may only view the list."""

from collections.abc import Callable
from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django_celery_beat.admin import PeriodicTaskAdmin as BeatPeriodicTaskAdmin
from django_celery_beat.models import PeriodicTask

Action = Callable[[Any, HttpRequest, QuerySet[Any]], None]

SCHEDULE_ACTIONS = ("enable_tasks", "disable_tasks", "toggle_tasks", "run_tasks")


def _changing(name: str) -> Action:
    """django-celery-beat's action `name`, offered only with the change permission."""
    inherited: Any = getattr(BeatPeriodicTaskAdmin, name)

    @admin.action(description=inherited.short_description, permissions=["change"])
    def action(model_admin: Any, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        inherited(model_admin, request, queryset)

    action.__name__ = name
    return action


class PeriodicTaskAdmin(BeatPeriodicTaskAdmin):  # type: ignore[misc]
    actions = SCHEDULE_ACTIONS
    # As shipped, with the nonce the Content-Security-Policy asks of its inline script.
    change_form_template = "admin/operations/periodictask_change_form.html"
    enable_tasks = _changing("enable_tasks")
    disable_tasks = _changing("disable_tasks")
    toggle_tasks = _changing("toggle_tasks")
    run_tasks = _changing("run_tasks")


admin.site.unregister(PeriodicTask)
admin.site.register(PeriodicTask, PeriodicTaskAdmin)

# The admin's home page, with the way to the staff overview (operations.overview) on top.
admin.site.index_template = "operations/overview/admin_index.html"
