from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.utils import formats, timezone

from accounts.models import ArtistProfile, EmailVerificationToken, User


@admin.register(User)
class UserAdmin(DjangoUserAdmin[User]):
    list_display = ("username", "email", "user_type", "email_verified", "is_staff", "is_active")
    list_filter = ("user_type", "email_verified", "is_staff", "is_active")
    fieldsets = (
        *(DjangoUserAdmin.fieldsets or ()),
        ("Jersey Events", {"fields": ("user_type", "phone", "email_verified")}),
    )


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

    @admin.display(description="Email", ordering="user__email")
    def user_email(self, obj: ArtistProfile) -> str:
        return obj.user.email

    @admin.display(description="Next refresh due")
    def next_refresh_due(self, obj: ArtistProfile) -> str:
        due = obj.sumup_refresh_due_at
        return "—" if due is None else formats.localize(timezone.localtime(due))

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
