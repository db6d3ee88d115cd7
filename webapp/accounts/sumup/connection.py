"""The SumUp connection an artist profile carries: fields and the rules on them."""

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db import models
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from accounts.fields import EncryptedTextField


class ConnectionStatus(models.TextChoices):
    NOT_CONNECTED = "not_connected", "Not connected"
    CONNECTED = "connected", "Connected"
    EXPIRED = "expired", "Token expired"
    ERROR = "error", "Connection error"


# Statuses in which the artist must (re)connect before customers can pay them.
NEEDS_CONNECTION = (
    ConnectionStatus.NOT_CONNECTED,
    ConnectionStatus.EXPIRED,
    ConnectionStatus.ERROR,
)

# Columns written whenever the connection changes, besides the tokens.
CONNECTION_FIELDS = (
    "sumup_merchant_code",
    "sumup_business_name",
    "sumup_connected_at",
    "sumup_connection_status",
)

TOKEN_FIELDS = (
    "sumup_access_token",
    "sumup_refresh_token",
    "sumup_token_type",
    "sumup_expires_at",
    "sumup_scope",
)


def _expiry_from(token_data: Mapping[str, Any], now: datetime) -> datetime | None:
    expires_at = token_data.get("expires_at")
    if expires_at not in (None, ""):
        if isinstance(expires_at, datetime):
            return expires_at
        if isinstance(expires_at, int | float):
            return datetime.fromtimestamp(expires_at, tz=UTC)
        parsed = parse_datetime(str(expires_at))
        if parsed is None:
            raise ValueError(f"expires_at is not a date and time: {expires_at!r}")
        return parsed
    expires_in = token_data.get("expires_in")
    if expires_in not in (None, ""):
        return now + timedelta(seconds=int(expires_in))
    return None


class SumUpConnection(models.Model):
    """Abstract: the columns added by `accounts.0003_add_sumup_oauth_fields`."""

    sumup_access_token = EncryptedTextField(null=True, blank=True)
    sumup_refresh_token = EncryptedTextField(null=True, blank=True)
    # Nullable with no default: adding them is a catalog change on a live table (see 0003).
    sumup_token_type = models.CharField(max_length=20, null=True, blank=True)  # noqa: DJ001
    sumup_expires_at = models.DateTimeField(null=True, blank=True)
    sumup_scope = models.CharField(max_length=255, null=True, blank=True)  # noqa: DJ001
    sumup_merchant_code = models.CharField(max_length=50, null=True, blank=True)  # noqa: DJ001
    sumup_connected_at = models.DateTimeField(null=True, blank=True)
    sumup_business_name = models.CharField(max_length=200, blank=True, default="")
    sumup_connection_status = models.CharField(
        max_length=20,
        choices=ConnectionStatus.choices,
        default=ConnectionStatus.NOT_CONNECTED,
        db_default=ConnectionStatus.NOT_CONNECTED,
    )

    class Meta:
        abstract = True

    @property
    def is_sumup_connected(self) -> bool:
        return self.sumup_connection_status == ConnectionStatus.CONNECTED and bool(
            self.sumup_access_token
        )

    @property
    def sumup_token_expired(self) -> bool:
        """True when an access token is held and its expiry has passed."""
        if not self.sumup_access_token or self.sumup_expires_at is None:
            return False
        return self.sumup_expires_at <= timezone.now()

    def update_sumup_connection(self, token_data: Mapping[str, Any]) -> None:
        """Store a token response from SumUp and mark the connection as working.

        Accepts `expires_in` (seconds) or `expires_at` (datetime, ISO string or epoch),
        and optionally `merchant_code` and `business_name`. A response without a refresh
        token keeps the one already held, as SumUp asks.
        """
        access_token = token_data.get("access_token")
        if not access_token:
            raise ValueError("token_data has no access_token")
        now = timezone.now()
        self.sumup_access_token = str(access_token)
        if token_data.get("refresh_token"):
            self.sumup_refresh_token = str(token_data["refresh_token"])
        self.sumup_token_type = str(token_data.get("token_type") or "Bearer")[:20]
        self.sumup_expires_at = _expiry_from(token_data, now)
        if token_data.get("scope"):
            self.sumup_scope = str(token_data["scope"])[:255]
        merchant_code = str(token_data.get("merchant_code") or "")[:50]
        if merchant_code and merchant_code != self.sumup_merchant_code:
            self.sumup_merchant_code = merchant_code
            self.sumup_connected_at = None  # a different merchant: connected since now
        if "business_name" in token_data:
            self.sumup_business_name = str(token_data["business_name"] or "")[:200]
        if self.sumup_connected_at is None:
            self.sumup_connected_at = now
        self.sumup_connection_status = ConnectionStatus.CONNECTED
        self.save(update_fields=[*TOKEN_FIELDS, *CONNECTION_FIELDS, *self._extra_update_fields()])

    def disconnect_sumup(self) -> None:
        """Forget the tokens and merchant; the artist must connect again."""
        for field in (*TOKEN_FIELDS, "sumup_merchant_code", "sumup_connected_at"):
            setattr(self, field, None)
        self.sumup_business_name = ""
        self.sumup_connection_status = ConnectionStatus.NOT_CONNECTED
        self.save(update_fields=[*TOKEN_FIELDS, *CONNECTION_FIELDS, *self._extra_update_fields()])

    def _extra_update_fields(self) -> list[str]:
        """Columns a concrete model updates on every save (e.g. `updated_at`)."""
        return []
