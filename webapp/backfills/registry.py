"""Backfills are declared once, in a `backfills` module of any installed app:

    register(Backfill(
        name="sumup_connection_status",
        description="...",
        model=lambda: apps.get_model("accounts", "ArtistProfile"),
        pending=lambda rows: rows.filter(sumup_connection_status__isnull=True),
        apply=lambda rows: rows.update(sumup_connection_status="not_connected"),
    ))

`pending` must be idempotent (rows already done never match again) and `apply` must only
touch the rows it is given: the engine hands it one primary-key range at a time.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.db import models
from django.utils.module_loading import autodiscover_modules

Rows = models.QuerySet[Any]


@dataclass(frozen=True)
class Backfill:
    name: str
    description: str
    model: Callable[[], type[models.Model]]
    pending: Callable[[Rows], Rows]
    apply: Callable[[Rows], int]

    def all_rows(self) -> Rows:
        return self.model()._default_manager.all()

    def rows_to_do(self) -> Rows:
        return self.pending(self.all_rows())

    def problems(self) -> list[str]:
        """What verification finds still undone (empty: the end state holds)."""
        left = self.rows_to_do().count()
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
