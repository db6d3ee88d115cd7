"""Backfill runs in the admin: live progress, "Start a backfill", and pause / resume /
cancel / retry as actions. Each needs its own permission, checked here: the admin site
lets any staff member through to the custom pages. The wait between batches
(`pause_ms`) slows a run as surely as a pause, so changing it needs the pause
permission.

Starting and cancelling are confirmed first, on a page that says what they will do in
numbers (backfills.confirm). Every progress field, in the list and on a run's page, is
rendered from one payload (backfills.status), which the pages' live poll reads again."""

from collections.abc import Callable
from typing import Any

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html

from backfills import confirm, control, registry
from backfills.models import BackfillEvent, BackfillRun
from backfills.status import actions_now, status_payload

# The buttons a run's page may offer, in order, with the permission each needs; a button
# shows only while its action applies to the run (the payload's "actions").
RUN_BUTTONS = (
    ("pause", "Pause", "pause"),
    ("resume", "Resume", "start"),
    ("retry", "Retry from the cursor", "start"),
    ("cancel", "Cancel…", "cancel"),
)
# A run's page, in three parts.
PROGRESS_FIELDS = (
    "state",
    "progress_bar",
    "rate",
    "eta",
    "batch_size_now",
    "batches_done_now",
    "last_error_now",
)
RUN_FIELDS = (
    "backfill",
    "pause_ms",
    "target_batch_ms",
    "started_by",
    "created_at",
    "started_at_now",
    "finished_at_now",
)
INTERNAL_FIELDS = ("cursor_now", "generation_now", "heartbeat_at_now")
# Set by a run page's buttons: after the action, back to that run's page.
RETURN_TO_RUN = "return_to_run"


def _status(run: BackfillRun) -> dict[str, Any]:
    """The run's payload, read once for all the columns of its row."""
    payload: dict[str, Any] | None = run.__dict__.get("_status_payload")
    if payload is None:
        payload = run.__dict__["_status_payload"] = status_payload(run)
    return payload


def _live(run: BackfillRun, field: str) -> str:
    """A payload text the page's poll keeps current."""
    return format_html(
        '<span data-backfill-run="{}" data-field="{}">{}</span>', run.pk, field, _status(run)[field]
    )


def _live_column(field: str, description: str) -> Callable[[Any, BackfillRun], str]:
    """A column (of the list or of a run's page) showing one text of the run's payload
    that the page's poll keeps current."""

    @admin.display(description=description)
    def column(model_admin: Any, run: BackfillRun) -> str:
        return _live(run, field)

    return column


class BackfillEventInline(admin.TabularInline[BackfillEvent, BackfillRun]):
    model = BackfillEvent
    extra = 0
    can_delete = False
    fields = ("at", "action", "user", "detail")
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(BackfillRun)
class BackfillRunAdmin(admin.ModelAdmin[BackfillRun]):
    list_display = ("backfill", "state", "progress_bar", "rate", "eta", "started_by", "created_at")
    list_filter = ("status", "backfill")
    fieldsets = (
        ("Progress", {"fields": PROGRESS_FIELDS}),
        ("Run", {"fields": RUN_FIELDS}),
        ("Internals", {"fields": INTERNAL_FIELDS}),
    )
    # All but the wait between batches, which whoever may pause runs may change.
    readonly_fields = tuple(
        name for name in (*PROGRESS_FIELDS, *RUN_FIELDS, *INTERNAL_FIELDS) if name != "pause_ms"
    )
    inlines = [BackfillEventInline]
    actions = ["pause_runs", "resume_runs", "cancel_runs", "retry_runs"]
    change_form_template = "admin/backfills/backfillrun/change_form.html"
    change_list_template = "admin/backfills/backfillrun/change_list.html"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # runs are started with "Start a backfill", never typed in

    def has_start_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("backfills.start_backfillrun")

    def has_pause_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("backfills.pause_backfillrun")

    def has_cancel_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("backfills.cancel_backfillrun")

    def get_readonly_fields(self, request: HttpRequest, obj: BackfillRun | None = None) -> Any:
        if self.has_pause_permission(request):
            return self.readonly_fields
        return (*self.readonly_fields, "pause_ms")

    def save_model(self, request: HttpRequest, obj: BackfillRun, form: Any, change: bool) -> None:
        # Never a whole-row save: workers advance the cursor and counters meanwhile.
        if "pause_ms" in form.changed_data:
            control.set_pause(obj.pk, obj.pause_ms, user=request.user)

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        extra = {**(extra_context or {}), "may_start": self.has_start_permission(request)}
        return super().changelist_view(request, extra)

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        run = self.get_object(request, object_id)
        buttons = []
        if run is not None:
            offered = actions_now(run)
            buttons = [
                {"action": action, "label": label, "now": action in offered}
                for action, label, permission in RUN_BUTTONS
                if getattr(self, f"has_{permission}_permission")(request)
            ]
        extra = {**(extra_context or {}), "run_buttons": buttons, "return_to_run": RETURN_TO_RUN}
        return super().change_view(request, object_id, form_url, extra)

    # --- the progress fields, each from the payload ---------------------------------

    @admin.display(description="Status", ordering="status")
    def state(self, run: BackfillRun) -> str:
        # The poll follows the runs whose status it finds active here.
        return format_html(
            '<span data-backfill-run="{}" data-field="state" data-active="{}">{}</span>',
            run.pk,
            "true" if _status(run)["active"] else "false",
            _status(run)["state"],
        )

    @admin.display(description="Progress")
    def progress_bar(self, run: BackfillRun) -> str:
        now = _status(run)
        return format_html(
            '<progress data-backfill-run="{}" data-field="percent" max="100" value="{}" '
            'aria-label="Progress of run {}"></progress> {} · {}',
            run.pk,
            now["percent"],
            run.pk,
            _live(run, "percent_text"),
            _live(run, "rows_text"),
        )

    rate = _live_column("rate_text", "Rows/s")
    eta = _live_column("eta_text", "ETA")
    batch_size_now = _live_column("batch_size_text", "Batch size")
    batches_done_now = _live_column("batches_done_text", "Batches done")
    last_error_now = _live_column("last_error_text", "Last error")
    started_at_now = _live_column("started_text", "Started at")
    finished_at_now = _live_column("finished_text", "Finished at")
    cursor_now = _live_column("cursor_text", "Cursor")
    generation_now = _live_column("generation_text", "Generation")
    heartbeat_at_now = _live_column("heartbeat_text", "Heartbeat at")

    # --- pages ----------------------------------------------------------------------

    def get_urls(self) -> list[URLPattern]:
        return [
            path("start/", self.admin_site.admin_view(self.start_view), name="backfills_start"),
            path(
                "<int:run_id>/progress/",
                self.admin_site.admin_view(self.progress_view),
                name="backfills_progress",
            ),
            *super().get_urls(),
        ]

    def start_view(self, request: HttpRequest) -> HttpResponse:
        """The backfills there are (GET); what starting one will do, to confirm (GET with
        `backfill`); the start itself (POST)."""
        if not self.has_start_permission(request):
            return HttpResponse("You may not start backfills.", status=403)
        name = request.POST.get("backfill") or request.GET.get("backfill", "")
        if request.method == "POST":
            try:
                run = control.start(name, user=request.user)
            except (control.ControlError, LookupError) as exc:
                self.message_user(request, str(exc), messages.ERROR)
            else:
                self.message_user(request, f"Started {run}.", messages.SUCCESS)
                if not self.has_view_permission(request):
                    return HttpResponseRedirect(reverse("admin:backfills_start"))
                return HttpResponseRedirect(
                    reverse("admin:backfills_backfillrun_change", args=[run.pk])
                )
        elif name:
            try:
                return self._confirm_start(request, registry.get(name))
            except LookupError as exc:
                self.message_user(request, str(exc), messages.ERROR)
        rows = [
            {"backfill": backfill, "active": control.active_run(backfill.name)}
            for backfill in registry.all_backfills()
        ]
        context = {
            **self.admin_site.each_context(request),
            "title": "Start a backfill",
            "opts": self.opts,
            "has_view_permission": self.has_view_permission(request),
            "rows": rows,
        }
        return TemplateResponse(request, "admin/backfills/backfillrun/start.html", context)

    def _confirm_start(self, request: HttpRequest, backfill: registry.Backfill) -> HttpResponse:
        active = control.active_run(backfill.name)
        context = {
            **self.admin_site.each_context(request),
            "title": f"Start {backfill.name}?",
            "opts": self.opts,
            "has_view_permission": self.has_view_permission(request),
            "backfill": backfill,
            "active": active,
            "consequence": None if active else confirm.of_start(backfill),
        }
        return TemplateResponse(
            request, "admin/backfills/backfillrun/start_confirmation.html", context
        )

    def progress_view(self, request: HttpRequest, run_id: int) -> JsonResponse:
        if not self.has_view_permission(request):
            return JsonResponse({"error": "forbidden"}, status=403)
        return JsonResponse(status_payload(get_object_or_404(BackfillRun, pk=run_id)))

    # --- actions --------------------------------------------------------------------

    def _apply(
        self, request: HttpRequest, runs: QuerySet[BackfillRun], action: str
    ) -> HttpResponse | None:
        done = 0
        for run in runs:
            try:
                getattr(control, action)(run.pk, user=request.user)
                done += 1
            except control.ControlError as exc:
                self.message_user(request, str(exc), messages.WARNING)
        if done:
            self.message_user(request, f"{action.capitalize()}: {done} run(s).", messages.SUCCESS)
        return self._back_to_run(request, runs)

    def _back_to_run(
        self, request: HttpRequest, runs: QuerySet[BackfillRun]
    ) -> HttpResponse | None:
        """From a run's own page, back there; else the list (the admin's default)."""
        if request.POST.get(RETURN_TO_RUN) and len(runs) == 1:
            return HttpResponseRedirect(
                reverse("admin:backfills_backfillrun_change", args=[runs[0].pk])
            )
        return None

    def _confirm_cancel(
        self, request: HttpRequest, runs: QuerySet[BackfillRun]
    ) -> HttpResponse | None:
        cancellable = [run for run in runs if run.status in control.ALLOWED_FROM["cancel"]]
        for run in runs:
            if run not in cancellable:
                self.message_user(
                    request,
                    f"Run #{run.pk} ({run.get_status_display().lower()}) cannot be "
                    "cancelled: only a pending, running or paused run can.",
                    messages.WARNING,
                )
        if not cancellable:
            return self._back_to_run(request, runs)
        context = {
            **self.admin_site.each_context(request),
            "title": "Cancel backfill runs?" if len(cancellable) > 1 else "Cancel this run?",
            "opts": self.opts,
            "runs": [(run, confirm.of_cancel(run)) for run in cancellable],
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            "return_to_run": RETURN_TO_RUN if request.POST.get(RETURN_TO_RUN) else "",
            "back_url": (
                reverse("admin:backfills_backfillrun_change", args=[cancellable[0].pk])
                if request.POST.get(RETURN_TO_RUN)
                else reverse("admin:backfills_backfillrun_changelist")
            ),
        }
        return TemplateResponse(
            request, "admin/backfills/backfillrun/cancel_confirmation.html", context
        )

    @admin.action(description="Pause selected runs", permissions=["pause"])
    def pause_runs(self, request: HttpRequest, runs: QuerySet[BackfillRun]) -> HttpResponse | None:
        return self._apply(request, runs, "pause")

    @admin.action(description="Resume selected runs", permissions=["start"])
    def resume_runs(self, request: HttpRequest, runs: QuerySet[BackfillRun]) -> HttpResponse | None:
        return self._apply(request, runs, "resume")

    @admin.action(description="Cancel selected runs…", permissions=["cancel"])
    def cancel_runs(self, request: HttpRequest, runs: QuerySet[BackfillRun]) -> HttpResponse | None:
        if request.POST.get("post") != "yes":  # not yet confirmed
            return self._confirm_cancel(request, runs)
        return self._apply(request, runs, "cancel")

    @admin.action(description="Retry selected failed runs from their cursor", permissions=["start"])
    def retry_runs(self, request: HttpRequest, runs: QuerySet[BackfillRun]) -> HttpResponse | None:
        return self._apply(request, runs, "retry")
