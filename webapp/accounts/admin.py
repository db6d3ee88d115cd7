"""Users and artist profiles in the admin. Only superusers grant privileges: a staff
member who may change users or groups could otherwise make anyone, themselves included,
superuser, or set a staff login's password and act with its permissions."""

from typing import Any

from django.contrib import admin
from django.contrib.auth.admin import GroupAdmin as DjangoGroupAdmin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.contrib.auth.models import Group
from django.http import HttpRequest
from django.utils import formats, timezone

from accounts.models import ArtistProfile, EmailVerificationToken, User

# Every admin page names the site it manages, not the framework it runs on.
admin.site.site_header = "Jersey Events admin"
admin.site.site_title = "Jersey Events admin"
admin.site.index_title = "Jersey Events admin"

# The fields that hand out what an account may do; editable by superusers only.
PRIVILEGE_FIELDS = ("is_staff", "is_superuser", "groups", "user_permissions")


def _may_manage(request: HttpRequest, account: User | None) -> bool:
    """Whether `request.user` may change or delete `account`: staff and superuser logins
    are managed by superusers only (their password is their permissions)."""
    if account is None or request.user.is_superuser:
        return True
    return not (account.is_staff or account.is_superuser)


class LabelledPickers:
    """Media for an admin with Django's two-box picker of groups or permissions: its
    search icons get a role their aria-label is allowed on."""

    js = ("accounts/admin/select_filter_labels.js",)


@admin.register(User)
class UserAdmin(DjangoUserAdmin[User]):
    Media = LabelledPickers
    list_display = ("username", "email", "user_type", "email_verified", "is_staff", "is_active")
    list_filter = ("user_type", "email_verified", "is_staff", "is_active")
    fieldsets = (
        *(DjangoUserAdmin.fieldsets or ()),
        ("Jersey Events", {"fields": ("user_type", "phone", "email_verified")}),
    )

    def get_readonly_fields(self, request: HttpRequest, obj: User | None = None) -> Any:
        fields = tuple(super().get_readonly_fields(request, obj))
        return fields if request.user.is_superuser else (*fields, *PRIVILEGE_FIELDS)

    def has_change_permission(self, request: HttpRequest, obj: User | None = None) -> bool:
        return super().has_change_permission(request, obj) and _may_manage(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: User | None = None) -> bool:
        return super().has_delete_permission(request, obj) and _may_manage(request, obj)


admin.site.unregister(Group)


@admin.register(Group)
class GroupAdmin(DjangoGroupAdmin):
    Media = LabelledPickers

    def get_readonly_fields(self, request: HttpRequest, obj: Group | None = None) -> Any:
        fields = tuple(super().get_readonly_fields(request, obj))
        return fields if request.user.is_superuser else (*fields, "permissions")


@admin.register(ArtistProfile)
class ArtistProfileAdmin(admin.ModelAdmin[ArtistProfile]):
    list_display = (
        "display_name",
        "user_email",
        "is_approved",
        "sumup_connection_status",
        "sumup_merchant_code",
        "sumup_expires_at",
        "sumup_last_refresh_at",
        "sumup_refresh_failures",
    )
    list_filter = ("sumup_connection_status", "is_approved")
    search_fields = ("display_name", "business_name", "user__email", "user__username")
    list_select_related = ("user",)
    # Tokens are never shown: only whether one is held.
    readonly_fields = (
        "sumup_connection_status",
        "sumup_merchant_code",
        "sumup_connected_at",
        "sumup_expires_at",
        "sumup_scope",
        "holds_access_token",
        "holds_refresh_token",
        "sumup_last_refresh_at",
        "next_refresh_due",
        "sumup_refresh_failures",
        "sumup_last_error",
        "created_at",
        "updated_at",
    )
    fields = ("user", "display_name", "bio", "business_name", "is_approved", *readonly_fields)
    raw_id_fields = ("user",)

    def get_readonly_fields(self, request: HttpRequest, obj: ArtistProfile | None = None) -> Any:
        # A profile stays with its login: moving it would hand its SumUp connection
        # (tokens and merchant) to another account.
        return self.readonly_fields if obj is None else ("user", *self.readonly_fields)

    @admin.display(description="Email", ordering="user__email")
    def user_email(self, obj: ArtistProfile) -> str:
        return obj.user.email

    @admin.display(description="Next refresh due")
    def next_refresh_due(self, obj: ArtistProfile) -> str:
        due = obj.sumup_refresh_due_at
        if due is None or obj.sumup_connection_status not in ("connected", "error"):
            return "—"
        return formats.localize(timezone.localtime(due))

    @admin.display(description="Access token held", boolean=True)
    def holds_access_token(self, obj: ArtistProfile) -> bool:
        return bool(obj.sumup_access_token)

    @admin.display(description="Refresh token held", boolean=True)
    def holds_refresh_token(self, obj: ArtistProfile) -> bool:
        return bool(obj.sumup_refresh_token)


@admin.register(EmailVerificationToken)
class EmailVerificationTokenAdmin(admin.ModelAdmin[EmailVerificationToken]):
    list_display = ("user", "created_at", "expires_at", "used_at")
    exclude = ("token",)
    raw_id_fields = ("user",)

    def get_readonly_fields(
        self, request: HttpRequest, obj: EmailVerificationToken | None = None
    ) -> Any:
        # Moved to another login, the link already mailed would verify that login's address.
        return () if obj is None else ("user",)
