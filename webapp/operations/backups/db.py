"""Connections of the backup tooling's own, apart from the request/command connection."""

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.db import connections
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.utils import load_backend

ALIAS = "default"


def database_settings() -> dict[str, Any]:
    """The configured database's settings, with Django's defaults filled in."""
    return dict(connections[ALIAS].settings_dict)


def vendor() -> str:
    return connections[ALIAS].vendor


@contextmanager
def open_connection(settings_dict: dict[str, Any], alias: str) -> Iterator[BaseDatabaseWrapper]:
    """A separate connection, closed on exit, for raw SQL and introspection only (the ORM
    finds connections by alias, and this one is not registered): a backup's snapshot
    transaction must not mix with the caller's, and a SQLite copy is read the same way."""
    backend = load_backend(settings_dict["ENGINE"])
    wrapper: BaseDatabaseWrapper = backend.DatabaseWrapper(dict(settings_dict), alias)
    try:
        yield wrapper
    finally:
        wrapper.close()
