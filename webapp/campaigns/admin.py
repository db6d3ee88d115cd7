"""Staff's view of campaigns: create one, see its audience, preview the email for any
artist (with the permission to view artists), start / pause / resume / cancel it, watch
it progress, and resend where the outcome is unknown. Each change needs its permission
and is recorded with the user."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html

from campaigns import admin_views, audience, services
from campaigns.models import Campaign, CampaignAction, Recipient, Suppression
from campaigns.progress import NO_FIGURE, Progress, progress, status_words


def _progress(campaign: Campaign) -> Progress:
    """The campaign's progress, measured once for all the columns of its row: the same
    Progress the progress page renders."""
    measured: Progress | None = campaign.__dict__.get("_progress")
    if measured is None:
        measured = campaign.__dict__["_progress"] = progress(campaign)
    return measured


class StatusFilter(admin.SimpleListFilter):
    """The statuses in the words the status column uses."""

    title = "status"
    parameter_name = "status"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [(value, status_words(value)) for value in Campaign.Status.values]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Campaign]) -> QuerySet[Campaign]:
        return queryset.filter(status=self.value()) if self.value() else queryset


class CampaignActionInline(admin.TabularInline[CampaignAction, Campaign]):
    model = CampaignAction
    fields = ("at", "action", "actor", "detail")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Campaign)
class CampaignAdmin(admin.ModelAdmin[Campaign]):
    list_display = (
        "name",
        "state",
        "progress_summary",
        "rate_limit",
        "approved_only",
        "created_by",
        "started_at",
    )
    list_filter = (StatusFilter, "kind", "automatic")
    fields = (
        "name",
        "kind",
        "template",
        "approved_only",
        "include_notified",
        "rate_limit",
        "state",
        "audience_now",
        "created_by",
        "created_at",
        "started_by",
        "started_at",
        "finished_at",
    )
    inlines = [CampaignActionInline]
    change_form_template = "campaigns/admin/campaign_change_form.html"

    def get_readonly_fields(self, request: HttpRequest, obj: Campaign | None = None) -> Any:
        always = (
            "state",
            "audience_now",
            "created_by",
            "created_at",
            "started_by",
            "started_at",
            "finished_at",
        )
        if obj is not None and obj.status != Campaign.Status.DRAFT:
            return self.fields
        return always

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        extra = {**(extra_context or {}), "can_preview": admin_views.may_preview(request)}
        return super().change_view(request, object_id, form_url, extra)

    def get_fields(self, request: HttpRequest, obj: Campaign | None = None) -> Any:
        if obj is None:
            return ("name", "kind", "template", "approved_only", "include_notified", "rate_limit")
        return self.fields

    def has_delete_permission(self, request: HttpRequest, obj: Campaign | None = None) -> bool:
        # A campaign that ran is the record of who got what: it is never deleted.
        allowed = super().has_delete_permission(request, obj)
        return allowed and (obj is None or obj.status == Campaign.Status.DRAFT)

    def save_model(self, request: HttpRequest, obj: Campaign, form: Any, change: bool) -> None:
        if change:
            super().save_model(request, obj, form, change)
        else:
            services.create(obj, user=request.user)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Campaign]) -> None:
        queryset.filter(status=Campaign.Status.DRAFT).delete()

    @admin.display(description="audience")
    def audience_now(self, obj: Campaign) -> str:
        if obj.status != Campaign.Status.DRAFT:
            return f"{obj.recipients.count()} recipient(s) recorded at the start"
        found = audience.count(
            approved_only=obj.approved_only, include_notified=obj.include_notified
        )
        return (
            f"{found.eligible} artist(s) would be emailed now; {found.suppressed} suppressed "
            f"and {found.already_notified} already notified would be skipped"
        )

    @admin.display(description="status", ordering="status")
    def state(self, obj: Campaign) -> str:
        return _progress(obj).state

    @admin.display(description="progress")
    def progress_summary(self, obj: Campaign) -> str:
        now = _progress(obj)
        if now.would_email is not None:  # a draft: nothing to count yet
            return NO_FIGURE
        url = reverse("admin:campaigns_campaign_progress", args=[obj.pk])
        return format_html(
            '<a href="{}">{}{} sent, {} failed, {} unknown, {} remaining</a>',
            url,
            f"{now.bar_text} · " if now.bar_text else "",
            now.sent,
            now.failed,
            now.unknown,
            now.remaining,
        )

    def get_urls(self) -> list[URLPattern]:
        def route(suffix: str, view: Any, name: str) -> URLPattern:
            pattern: URLPattern = path(
                f"<int:pk>/{suffix}/",
                self.admin_site.admin_view(view),
                name=f"campaigns_campaign_{name}",
            )
            return pattern

        return [
            route("progress", admin_views.progress_page, "progress"),
            route("progress.json", admin_views.progress_json, "progress_json"),
            route("preview", admin_views.preview, "preview"),
            route("preview.html", admin_views.preview_html, "preview_html"),
            route("start", admin_views.confirm_then_change, "start"),
            route("pause", admin_views.change_status, "pause"),
            route("resume", admin_views.change_status, "resume"),
            route("cancel", admin_views.confirm_then_change, "cancel"),
            *super().get_urls(),
        ]


@admin.register(Recipient)
class RecipientAdmin(admin.ModelAdmin[Recipient]):
    list_display = (
        "email",
        "campaign",
        "status",
        "attempts",
        "message_id",
        "last_error",
        "sent_at",
        "event_at",
    )
    list_filter = ("status", "campaign")
    search_fields = ("email", "message_id")
    list_select_related = ("campaign",)
    actions = ["resend"]
    readonly_fields = [field.name for field in Recipient._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_resend_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("campaigns.resend_recipient")

    @admin.action(
        description="Resend to the selected recipients whose outcome is unknown",
        permissions=["resend"],
    )
    def resend(self, request: HttpRequest, queryset: QuerySet[Recipient]) -> None:
        ids = list(queryset.values_list("pk", flat=True))
        count = services.resend(ids, user=request.user)
        skipped = len(ids) - count
        self.message_user(request, f"{count} recipient(s) queued to be sent again.")
        if skipped:
            self.message_user(
                request,
                f"{skipped} selected recipient(s) were not unknown and were left alone.",
                messages.WARNING,
            )


@admin.register(Suppression)
class SuppressionAdmin(admin.ModelAdmin[Suppression]):
    list_display = ("email", "reason", "created_at")
    list_filter = ("reason",)
    search_fields = ("email",)
    fields = ("email", "reason")

    def save_model(self, request: HttpRequest, obj: Suppression, form: Any, change: bool) -> None:
        obj.email = obj.email.strip().lower()
        super().save_model(request, obj, form, change)
