"""Backfills are declared once, in a `backfills` module of any installed app:

    register(Backfill(
        name="sumup_connection_status",
        description="...",
        model="accounts.ArtistProfile",
        pending=lambda rows: rows.filter(sumup_connection_status__isnull=True),
        apply=lambda rows: rows.update(sumup_connection_status="not_connected"),
    ))

`pending` must be idempotent (rows already done never match again) and `apply` must only
touch the rows it is given: the engine hands it one primary-key range at a time. Both get
querysets of the model as a data migration sees it too (its historical models), so they
name fields and call no model method.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.apps import apps as installed_apps
from django.apps.registry import Apps
from django.db import connections, models, transaction
from django.utils.module_loading import autodiscover_modules

Rows = models.QuerySet[Any]


@dataclass(frozen=True)
class Backfill:
    name: str
    description: str
    model: str  # "app_label.ModelName"
    pending: Callable[[Rows], Rows]
    apply: Callable[[Rows], int]

    def all_rows(self, apps: Apps = installed_apps, using: str | None = None) -> Rows:
        """The model's rows; a data migration passes its historical `apps` and its
        database alias."""
        rows: Rows = apps.get_model(self.model)._default_manager.db_manager(using).all()
        return rows

    def rows_to_do(self, apps: Apps = installed_apps, using: str | None = None) -> Rows:
        return self.pending(self.all_rows(apps, using))

    def count_to_do(self, apps: Apps = installed_apps, using: str | None = None) -> int:
        """How many rows still need work: a scan of the table, run on one core.

        PostgreSQL would share a large count between parallel workers, taking every core
        of a small database server for its length; a backfill is background work, and
        the site's own queries must not wait behind its bookkeeping."""
        rows = self.rows_to_do(apps, using)
        if connections[rows.db].vendor != "postgresql":
            return rows.count()
        # Inside a caller's transaction (a migration's), the setting is put back after.
        with transaction.atomic(using=rows.db), connections[rows.db].cursor() as cursor:
            cursor.execute("SHOW max_parallel_workers_per_gather")
            (before,) = cursor.fetchone()
            cursor.execute("SET LOCAL max_parallel_workers_per_gather = 0")
            left = rows.count()
            cursor.execute(
                "SELECT set_config('max_parallel_workers_per_gather', %s, true)", [before]
            )
            return left

    def problems(self) -> list[str]:
        """What verification finds still undone (empty: the end state holds)."""
        left = self.count_to_do()
        return [f"{left} row(s) still need work"] if left else []


_REGISTRY: dict[str, Backfill] = {}


def register(backfill: Backfill) -> Backfill:
    _REGISTRY[backfill.name] = backfill
    return backfill


def get(name: str) -> Backfill:
    try:
        return _REGISTRY[name]
    except KeyError:
        known = ", ".join(sorted(_REGISTRY)) or "none"
        raise LookupError(f"no backfill named {name!r} (known: {known})") from None


def all_backfills() -> list[Backfill]:
    return [_REGISTRY[name] for name in sorted(_REGISTRY)]


def autodiscover() -> None:
    autodiscover_modules("backfills")
