"""The checks of the deployment runbook's Step 4, as data a command can print or gate on."""

from dataclasses import dataclass

from django.db import connection
from django.db.models import Count, Q

from accounts.models import ArtistProfile
from accounts.sumup.connection import OAUTH_COLUMNS, ConnectionStatus


@dataclass(frozen=True)
class CheckResult:
    name: str
    ok: bool
    detail: str


def status_counts() -> dict[str | None, int]:
    rows = (
        ArtistProfile.objects.values("sumup_connection_status")
        .annotate(n=Count("id"))
        .order_by("sumup_connection_status")
    )
    return {row["sumup_connection_status"]: row["n"] for row in rows}


def _columns_present() -> CheckResult:
    with connection.cursor() as cursor:
        description = connection.introspection.get_table_description(
            cursor, ArtistProfile._meta.db_table
        )
    present = {column.name for column in description}
    missing = [name for name in OAUTH_COLUMNS if name not in present]
    if missing:
        return CheckResult("SumUp columns exist", False, f"missing: {', '.join(missing)}")
    return CheckResult("SumUp columns exist", True, f"all {len(OAUTH_COLUMNS)} present")


def _no_null_status() -> CheckResult:
    nulls = ArtistProfile.objects.filter(sumup_connection_status__isnull=True).count()
    detail = "none" if nulls == 0 else f"{nulls} artist(s) with NULL connection status"
    return CheckResult("No NULL connection status", nulls == 0, detail)


def _no_invalid_status() -> CheckResult:
    invalid = (
        ArtistProfile.objects.exclude(sumup_connection_status__in=ConnectionStatus.values)
        .exclude(sumup_connection_status__isnull=True)
        .count()
    )
    detail = "none" if invalid == 0 else f"{invalid} artist(s) with an unknown status"
    return CheckResult("No invalid connection status", invalid == 0, detail)


def _not_connected_hold_no_token() -> CheckResult:
    holding = (
        ArtistProfile.objects.filter(sumup_connection_status=ConnectionStatus.NOT_CONNECTED)
        .filter(Q(sumup_access_token__isnull=False) | Q(sumup_refresh_token__isnull=False))
        .count()
    )
    detail = "none" if holding == 0 else f"{holding} not-connected artist(s) still hold a token"
    return CheckResult("Not-connected artists hold no token", holding == 0, detail)


def _connected_hold_a_token() -> CheckResult:
    missing = ArtistProfile.objects.filter(
        sumup_connection_status=ConnectionStatus.CONNECTED, sumup_access_token__isnull=True
    ).count()
    detail = "all do" if missing == 0 else f"{missing} connected artist(s) hold no access token"
    return CheckResult("Connected artists hold an access token", missing == 0, detail)


def _model_methods_work() -> CheckResult:
    try:
        artist = ArtistProfile.objects.order_by("pk").first()
        if artist is None:
            return CheckResult("Model methods work", True, "no artists to try them on")
        connected = artist.is_sumup_connected
        expired = artist.sumup_token_expired
    except Exception as exc:  # the point is to report any failure, whatever its type
        return CheckResult("Model methods work", False, f"{type(exc).__name__}: {exc}")
    return CheckResult(
        "Model methods work",
        True,
        f"artist {artist.pk}: is_sumup_connected={connected}, sumup_token_expired={expired}",
    )


def _backfill_finished() -> CheckResult:
    from backfills.models import BackfillRun, RunStatus

    run = BackfillRun.objects.filter(backfill="sumup_connection_status").order_by("-pk").first()
    if run is None:
        return CheckResult("Status backfill finished", True, "ran inline in the migration")
    detail = (
        f"run #{run.pk} {run.status}: {run.rows_done:,} of {run.rows_total:,} rows "
        f"({run.progress:.0%})"
    )
    return CheckResult("Status backfill finished", run.status == RunStatus.SUCCEEDED, detail)


def run_checks() -> list[CheckResult]:
    columns = _columns_present()
    if not columns.ok:
        return [columns]
    return [
        columns,
        _backfill_finished(),
        _no_null_status(),
        _no_invalid_status(),
        _not_connected_hold_no_token(),
        _connected_hold_a_token(),
        _model_methods_work(),
    ]
