"""Backfill runs in the admin: live progress, "Start a backfill", and pause / resume /
cancel / retry as actions. Each needs its own permission, checked here: the admin site
lets any staff member through to the custom pages. The wait between batches
(`pause_ms`) slows a run as surely as a pause, so changing it needs the pause
permission."""

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html

from backfills import control, registry
from backfills.models import BackfillEvent, BackfillRun


def _progress(run: BackfillRun) -> dict[str, Any]:
    stalled = run.stalled_for()
    return {
        "status": run.status,
        "state": run.state(),
        "stalled": stalled is not None,
        "no_progress_seconds": None if stalled is None else int(stalled.total_seconds()),
        "rows_done": run.rows_done,
        "rows_total": run.rows_total,
        "percent": round(run.progress * 100, 1),
        "rows_per_second": round(run.rows_per_second),
        "eta_seconds": None if run.eta_seconds is None else round(run.eta_seconds),
        "batch_size": run.batch_size,
        "last_error": run.last_error,
    }


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
    list_display = ("backfill", "state", "progress_bar", "throughput", "started_by", "created_at")
    list_filter = ("status", "backfill")
    readonly_fields = (
        "backfill",
        "state",
        "progress_bar",
        "throughput",
        "cursor",
        "rows_done",
        "rows_total",
        "batches_done",
        "batch_size",
        "target_batch_ms",
        "generation",
        "heartbeat_at",
        "last_error",
        "started_by",
        "created_at",
        "started_at",
        "finished_at",
    )
    fields = (*readonly_fields[:2], "progress_bar", "throughput", "pause_ms", *readonly_fields[4:])
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

    @admin.display(description="Status", ordering="status")
    def state(self, run: BackfillRun) -> str:
        return format_html(
            '<span class="backfill-state" data-run="{}">{}</span>', run.pk, run.state()
        )

    @admin.display(description="Progress")
    def progress_bar(self, run: BackfillRun) -> str:
        return format_html(
            '<progress class="backfill-progress" data-run="{}" max="100" value="{}"></progress> '
            '<span class="backfill-percent">{}%</span> ({} / {} rows)',
            run.pk,
            f"{run.progress * 100:.1f}",
            f"{run.progress * 100:.1f}",
            f"{run.rows_done:,}",
            f"{run.rows_total:,}",
        )

    @admin.display(description="Rows/s, ETA")
    def throughput(self, run: BackfillRun) -> str:
        eta = run.eta_seconds
        return f"{run.rows_per_second:,.0f} rows/s" + (
            f", ETA {eta:,.0f}s" if eta is not None else ""
        )

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
        if not self.has_start_permission(request):
            return HttpResponse("You may not start backfills.", status=403)
        if request.method == "POST":
            try:
                run = control.start(request.POST.get("backfill", ""), user=request.user)
            except (control.ControlError, LookupError) as exc:
                self.message_user(request, str(exc), messages.ERROR)
            else:
                self.message_user(request, f"Started {run}.", messages.SUCCESS)
                return HttpResponseRedirect(
                    reverse("admin:backfills_backfillrun_change", args=[run.pk])
                )
        rows = [
            {"backfill": backfill, "active": control.active_run(backfill.name)}
            for backfill in registry.all_backfills()
        ]
        context = {
            **self.admin_site.each_context(request),
            "title": "Start a backfill",
            "rows": rows,
        }
        return TemplateResponse(request, "admin/backfills/backfillrun/start.html", context)

    def progress_view(self, request: HttpRequest, run_id: int) -> JsonResponse:
        if not self.has_view_permission(request):
            return JsonResponse({"error": "forbidden"}, status=403)
        return JsonResponse(_progress(get_object_or_404(BackfillRun, pk=run_id)))

    def _apply(self, request: HttpRequest, runs: QuerySet[BackfillRun], action: str) -> None:
        done = 0
        for run in runs:
            try:
                getattr(control, action)(run.pk, user=request.user)
                done += 1
            except control.ControlError as exc:
                self.message_user(request, str(exc), messages.WARNING)
        if done:
            self.message_user(request, f"{action.capitalize()}: {done} run(s).", messages.SUCCESS)

    @admin.action(description="Pause selected runs", permissions=["pause"])
    def pause_runs(self, request: HttpRequest, runs: QuerySet[BackfillRun]) -> None:
        self._apply(request, runs, "pause")

    @admin.action(description="Resume selected runs", permissions=["start"])
    def resume_runs(self, request: HttpRequest, runs: QuerySet[BackfillRun]) -> None:
        self._apply(request, runs, "resume")

    @admin.action(description="Cancel selected runs", permissions=["cancel"])
    def cancel_runs(self, request: HttpRequest, runs: QuerySet[BackfillRun]) -> None:
        self._apply(request, runs, "cancel")

    @admin.action(description="Retry selected failed runs from their cursor", permissions=["start"])
    def retry_runs(self, request: HttpRequest, runs: QuerySet[BackfillRun]) -> None:
        self._apply(request, runs, "retry")
