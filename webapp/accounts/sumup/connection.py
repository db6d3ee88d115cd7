"""The SumUp connection an artist profile carries: fields and the rules on them."""

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db import models
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from accounts.fields import EncryptedTextField
from accounts.sumup import refresh_policy


class ConnectionStatus(models.TextChoices):
    NOT_CONNECTED = "not_connected", "Not connected"
    CONNECTED = "connected", "Connected"
    # Named for what it asks of the artist: staff pass it on, and "token" tells artists nothing.
    EXPIRED = "expired", "Needs reconnecting"
    ERROR = "error", "Connection error"


# Statuses in which the artist must (re)connect before customers can pay them.
NEEDS_CONNECTION = (
    ConnectionStatus.NOT_CONNECTED,
    ConnectionStatus.EXPIRED,
    ConnectionStatus.ERROR,
)

# The columns accounts.0003_add_sumup_oauth_fields added to artists: the token SumUp
# issued, the merchant it belongs to, and the status (0006 and 0007 added the business
# name and the refresh bookkeeping). The one list: the others are drawn from it.
OAUTH_COLUMNS = (
    "sumup_access_token",
    "sumup_refresh_token",
    "sumup_token_type",
    "sumup_expires_at",
    "sumup_scope",
    "sumup_merchant_code",
    "sumup_connected_at",
    "sumup_connection_status",
)
# The token alone, a part of those: a lapsed grant loses it but keeps which merchant it
# was and since when (see cleared_connection).
TOKEN_FIELDS = tuple(
    column
    for column in OAUTH_COLUMNS
    if column not in ("sumup_merchant_code", "sumup_connected_at", "sumup_connection_status")
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


def token_changes(
    current: "SumUpConnection", token_data: Mapping[str, Any], now: datetime, *, used: bool = False
) -> dict[str, Any]:
    """The column values that store a SumUp token response on `current`, with its next
    refresh (accounts.sumup.refresh_policy); `used`: the token is about to be used (a
    connection just made), which makes the artist active."""
    access_token = token_data.get("access_token")
    if not access_token:
        raise ValueError("token_data has no access_token")
    changes: dict[str, Any] = {
        "sumup_access_token": str(access_token),
        "sumup_token_type": str(token_data.get("token_type") or "Bearer")[:20],
        "sumup_expires_at": _expiry_from(token_data, now),
        "sumup_connection_status": ConnectionStatus.CONNECTED,
        "sumup_token_version": current.sumup_token_version + 1,
        "sumup_refresh_failures": 0,
        "sumup_last_error": "",
        "sumup_lapse_notified_at": None,
    }
    refresh_token = token_data.get("refresh_token")
    if refresh_token and refresh_token != current.sumup_refresh_token:
        changes["sumup_refresh_token"] = str(refresh_token)
        changes["sumup_refresh_token_issued_at"] = now
    if token_data.get("scope"):
        changes["sumup_scope"] = str(token_data["scope"])[:255]
    # Connected since now after a break (a lapse, an expiry) or with a different merchant;
    # a refresh, or a reconnect that never broke the connection, keeps the date.
    connected_at = current.sumup_connected_at
    if current.sumup_connection_status != ConnectionStatus.CONNECTED:
        connected_at = None
    merchant_code = str(token_data.get("merchant_code") or "")[:50]
    if merchant_code and merchant_code != current.sumup_merchant_code:
        changes["sumup_merchant_code"] = merchant_code
        connected_at = None
    if "business_name" in token_data:
        changes["sumup_business_name"] = str(token_data["business_name"] or "")[:200]
    changes["sumup_connected_at"] = connected_at or now
    if used:
        changes["sumup_token_used_at"] = now
    changes.update(refresh_policy.due_changes(current, changes, now))
    return changes


def cleared_connection(current: "SumUpConnection", status: str) -> dict[str, Any]:
    """The column values of a connection whose tokens are gone (disconnected or lapsed)."""
    changes: dict[str, Any] = dict.fromkeys(TOKEN_FIELDS)
    changes.update(
        sumup_connection_status=status,
        sumup_token_version=current.sumup_token_version + 1,
        sumup_refresh_token_issued_at=None,
        sumup_refresh_claim="",
        sumup_refresh_claimed_until=None,
        sumup_refresh_enqueued_at=None,
        sumup_refresh_due_at=None,
    )
    if status == ConnectionStatus.NOT_CONNECTED:
        changes.update(
            sumup_merchant_code=None,
            sumup_business_name="",
            sumup_connected_at=None,
            sumup_refresh_failures=0,
            sumup_last_error="",
        )
    return changes


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
    # The NOT NULL columns of 0006 and 0007 keep their default in the database too, so
    # code still running on the older schema during a deploy can insert artists.
    sumup_business_name = models.CharField(max_length=200, blank=True, default="", db_default="")
    sumup_connection_status = models.CharField(
        max_length=20,
        choices=ConnectionStatus.choices,
        default=ConnectionStatus.NOT_CONNECTED,
        db_default=ConnectionStatus.NOT_CONNECTED,
    )

    # Refresh bookkeeping (0007). Plain integers, not Positive*: a CHECK constraint on a
    # new column would make PostgreSQL scan the table under its lock. The version grows
    # with every token write, so a writer that read version N can store its result only
    # if no one else wrote meanwhile.
    sumup_token_version = models.IntegerField(default=0, db_default=0)
    sumup_refresh_token_issued_at = models.DateTimeField(null=True, blank=True)
    sumup_last_refresh_at = models.DateTimeField(null=True, blank=True)
    sumup_refresh_failures = models.IntegerField(default=0, db_default=0)
    sumup_last_error = models.CharField(max_length=200, blank=True, default="", db_default="")
    sumup_refresh_claim = models.CharField(max_length=36, blank=True, default="", db_default="")
    sumup_refresh_claimed_until = models.DateTimeField(null=True, blank=True)
    sumup_refresh_enqueued_at = models.DateTimeField(null=True, blank=True)
    sumup_lapse_notified_at = models.DateTimeField(null=True, blank=True)
    # The refresh policy (0009, accounts.sumup.refresh_policy): when the sweep next
    # refreshes this grant (none: nothing to refresh), and when the platform last used
    # the access token (kept to the hour).
    sumup_refresh_due_at = models.DateTimeField(null=True, blank=True)
    sumup_token_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        abstract = True

    @property
    def sumup_status(self) -> str:
        """The status, reading a row the backfill has not reached yet as not connected."""
        return self.sumup_connection_status or ConnectionStatus.NOT_CONNECTED

    @property
    def sumup_status_label(self) -> str:
        return str(ConnectionStatus(self.sumup_status).label)

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
        """Store a token response from SumUp and mark the connection as working, and in
        use: a connection just made is about to take payments.

        Accepts `expires_in` (seconds) or `expires_at` (datetime, ISO string or epoch),
        and optionally `merchant_code` and `business_name`. A response without a refresh
        token keeps the one already held, as SumUp asks.
        """
        changes = token_changes(self, token_data, timezone.now(), used=True)
        for field, value in changes.items():
            setattr(self, field, value)
        self.save(update_fields=[*changes, *self._extra_update_fields()])

    def disconnect_sumup(self) -> None:
        """Forget the tokens and merchant; the artist must connect again."""
        changes = cleared_connection(self, ConnectionStatus.NOT_CONNECTED)
        for field, value in changes.items():
            setattr(self, field, value)
        self.save(update_fields=[*changes, *self._extra_update_fields()])

    def _extra_update_fields(self) -> list[str]:
        """Columns a concrete model updates on every save (e.g. `updated_at`)."""
        return []
