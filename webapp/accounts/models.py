from django.contrib.auth.models import AbstractUser
from django.db import models

from accounts.sumup.connection import ConnectionStatus, SumUpConnection

__all__ = ["ArtistProfile", "ConnectionStatus", "EmailVerificationToken", "User"]


class User(AbstractUser):
    class UserType(models.TextChoices):
        ARTIST = "artist", "Artist"
        CUSTOMER = "customer", "Customer"

    user_type = models.CharField(max_length=20, choices=UserType.choices, default=UserType.CUSTOMER)
    phone = models.CharField(max_length=30, blank=True)
    email_verified = models.BooleanField(default=False)

    @property
    def is_artist(self) -> bool:
        return self.user_type == self.UserType.ARTIST


class ArtistProfile(SumUpConnection):
    user = models.OneToOneField(User, on_delete=models.CASCADE, related_name="artist_profile")
    display_name = models.CharField(max_length=200)
    bio = models.TextField(blank=True)
    business_name = models.CharField(max_length=200, blank=True)
    is_approved = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            # One SumUp merchant pays one artist.
            models.UniqueConstraint(
                fields=["sumup_merchant_code"],
                condition=models.Q(sumup_merchant_code__isnull=False),
                name="artistprofile_unique_sumup_merchant",
            )
        ]
        indexes = [
            # The refresh sweep's question until 0009, which working connections expire
            # soonest: kept while the release before may still run its sweep.
            models.Index(
                fields=["sumup_expires_at"],
                condition=models.Q(sumup_connection_status__in=["connected", "error"]),
                name="artistprofile_sumup_due_idx",
            ),
            # The sweep's question since 0009: whose next refresh has come? Only working
            # connections with a next refresh are in it (accounts.sumup.refresh_policy),
            # so the sweep's conditions are the index's and nothing else is read.
            models.Index(
                fields=["sumup_refresh_due_at"],
                condition=models.Q(
                    sumup_connection_status__in=["connected", "error"],
                    sumup_refresh_due_at__isnull=False,
                    sumup_refresh_token__isnull=False,
                ),
                name="artistprofile_sumup_next_idx",
            ),
            # Refreshable rows written without a next refresh (code that predates it):
            # normally none, so the sweep's look for them costs nothing.
            models.Index(
                fields=["id"],
                condition=models.Q(
                    sumup_refresh_due_at__isnull=True,
                    sumup_connection_status__in=["connected", "error"],
                    sumup_refresh_token__isnull=False,
                ),
                name="artistprofile_unscheduled_idx",
            ),
        ]

    def __str__(self) -> str:
        return self.display_name or f"Artist {self.pk}"

    def _extra_update_fields(self) -> list[str]:
        return ["updated_at"]


def _spell_sumup_in_labels(model: type[models.Model]) -> None:
    """The SumUp columns come from an abstract model that names no labels, so Django
    derives each from the column ("sumup merchant code"); staff read the brand as SumUp
    spells it. Only the label changes: the schema and the migrations stay as they are."""
    for field in model._meta.fields:
        if field.name.startswith("sumup_") and field.verbose_name == field.name.replace("_", " "):
            field.verbose_name = "SumUp " + field.name.removeprefix("sumup_").replace("_", " ")


_spell_sumup_in_labels(ArtistProfile)


class EmailVerificationToken(models.Model):
    user = models.ForeignKey(
        User, on_delete=models.CASCADE, related_name="email_verification_tokens"
    )
    token = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"Email verification for user {self.user_id}"
