"""Migration operations that keep PostgreSQL's locks short on a large live table."""

import itertools
from collections.abc import Sequence
from typing import Any

from django.db import migrations, models, transaction
from django.db.backends.base.schema import BaseDatabaseSchemaEditor
from django.db.migrations.state import ProjectState

LOCK_TIMEOUT_MS = 5000  # give up on a DDL lock rather than stall every query queued behind it


def _is_postgres(schema_editor: BaseDatabaseSchemaEditor) -> bool:
    return schema_editor.connection.vendor == "postgresql"


class SetLockTimeout(migrations.RunSQL):
    """`SET LOCAL lock_timeout` for the rest of an atomic migration (PostgreSQL only)."""

    def __init__(self, milliseconds: int = LOCK_TIMEOUT_MS) -> None:
        sql = f"SET LOCAL lock_timeout = {int(milliseconds)}"
        super().__init__(sql, reverse_sql=sql, elidable=True)

    def database_forwards(
        self,
        app_label: str,
        schema_editor: BaseDatabaseSchemaEditor,
        from_state: ProjectState,
        to_state: ProjectState,
    ) -> None:
        if _is_postgres(schema_editor):
            super().database_forwards(app_label, schema_editor, from_state, to_state)

    def database_backwards(
        self,
        app_label: str,
        schema_editor: BaseDatabaseSchemaEditor,
        from_state: ProjectState,
        to_state: ProjectState,
    ) -> None:
        if _is_postgres(schema_editor):
            super().database_backwards(app_label, schema_editor, from_state, to_state)


class AddIndexConcurrentlyOnPostgres(migrations.AddIndex):
    """`CREATE INDEX CONCURRENTLY` on PostgreSQL, so writes go on while it builds; a
    plain AddIndex elsewhere. The migration using it must set `atomic = False`."""

    def database_forwards(
        self,
        app_label: str,
        schema_editor: BaseDatabaseSchemaEditor,
        from_state: ProjectState,
        to_state: ProjectState,
    ) -> None:
        if not _is_postgres(schema_editor):
            super().database_forwards(app_label, schema_editor, from_state, to_state)
            return
        model = to_state.apps.get_model(app_label, self.model_name)
        if self.allow_migrate_model(schema_editor.connection.alias, model):
            schema_editor.add_index(model, self.index, concurrently=True)  # type: ignore[call-arg]

    def database_backwards(
        self,
        app_label: str,
        schema_editor: BaseDatabaseSchemaEditor,
        from_state: ProjectState,
        to_state: ProjectState,
    ) -> None:
        if not _is_postgres(schema_editor):
            super().database_backwards(app_label, schema_editor, from_state, to_state)
            return
        model = from_state.apps.get_model(app_label, self.model_name)
        if self.allow_migrate_model(schema_editor.connection.alias, model):
            schema_editor.remove_index(model, self.index, concurrently=True)  # type: ignore[call-arg]


class AddUniqueConstraintConcurrentlyOnPostgres(migrations.AddConstraint):
    """A partial `UniqueConstraint` built with `CREATE UNIQUE INDEX CONCURRENTLY` on
    PostgreSQL, so writes go on while it builds; a plain AddConstraint elsewhere.

    PostgreSQL backs a partial unique constraint with a unique index of the constraint's
    name, which is what Django itself creates, so the migration state is the ordinary
    constraint. The migration using it must set `atomic = False`.
    """

    def __init__(self, model_name: str, constraint: models.UniqueConstraint) -> None:
        if constraint.condition is None or constraint.expressions or not constraint.fields:
            raise ValueError("only a partial unique constraint over fields is an index")
        super().__init__(model_name, constraint)
        self.index = models.Index(
            fields=list(constraint.fields), condition=constraint.condition, name=constraint.name
        )

    def database_forwards(
        self,
        app_label: str,
        schema_editor: BaseDatabaseSchemaEditor,
        from_state: ProjectState,
        to_state: ProjectState,
    ) -> None:
        if not _is_postgres(schema_editor):
            super().database_forwards(app_label, schema_editor, from_state, to_state)
            return
        model = to_state.apps.get_model(app_label, self.model_name)
        if self.allow_migrate_model(schema_editor.connection.alias, model):
            statement = self.index.create_sql(model, schema_editor, concurrently=True)
            statement.template = statement.template.replace(
                "CREATE INDEX CONCURRENTLY", "CREATE UNIQUE INDEX CONCURRENTLY", 1
            )
            schema_editor.execute(statement, params=None)

    def database_backwards(
        self,
        app_label: str,
        schema_editor: BaseDatabaseSchemaEditor,
        from_state: ProjectState,
        to_state: ProjectState,
    ) -> None:
        if not _is_postgres(schema_editor):
            super().database_backwards(app_label, schema_editor, from_state, to_state)
            return
        model = from_state.apps.get_model(app_label, self.model_name)
        if self.allow_migrate_model(schema_editor.connection.alias, model):
            schema_editor.execute(self.index.remove_sql(model, schema_editor, concurrently=True))


class NullsRemainError(RuntimeError):
    pass


class FinalizeNotNull(migrations.AlterField):
    """Make a backfilled column NOT NULL with a default, without a long lock.

    On PostgreSQL a plain `SET NOT NULL` scans the whole table under ACCESS EXCLUSIVE.
    Instead: add `CHECK (col IS NOT NULL) NOT VALID` (instant), `VALIDATE` it (scans
    under a lock that lets reads and writes go on), then `SET NOT NULL`, which PostgreSQL
    12+ proves from the valid constraint without scanning. Each step is its own
    transaction, so the migration using this must set `atomic = False`.
    Other databases get Django's ordinary AlterField.

    Refuses, changing nothing, while any row still holds NULL.
    """

    def __init__(self, *args: Any, remedy: str = "", **kwargs: Any) -> None:
        self.remedy = remedy
        super().__init__(*args, **kwargs)

    def deconstruct(self) -> tuple[str, Sequence[Any], dict[str, Any]]:
        name, args, kwargs = super().deconstruct()
        if self.remedy:
            kwargs["remedy"] = self.remedy
        return name, args, kwargs

    def database_forwards(
        self,
        app_label: str,
        schema_editor: BaseDatabaseSchemaEditor,
        from_state: ProjectState,
        to_state: ProjectState,
    ) -> None:
        model = from_state.apps.get_model(app_label, self.model_name)
        alias = schema_editor.connection.alias
        if not schema_editor.collect_sql:  # `sqlmigrate` and the linter only read the SQL
            self._refuse_while_nulls_remain(app_label, model, alias)
        if not _is_postgres(schema_editor):
            super().database_forwards(app_label, schema_editor, from_state, to_state)
            return
        table = schema_editor.quote_name(model._meta.db_table)
        column_name = model._meta.get_field(self.name).column
        column = schema_editor.quote_name(column_name)
        check = schema_editor.quote_name(f"{model._meta.db_table}_{column_name}_not_null")
        db_default = self.field.db_default
        default = schema_editor.quote_value(getattr(db_default, "value", db_default))
        lock_timeout = f"SET LOCAL lock_timeout = {LOCK_TIMEOUT_MS}"
        transactions = [
            [
                lock_timeout,
                f"ALTER TABLE {table} DROP CONSTRAINT IF EXISTS {check}",
                f"ALTER TABLE {table} ALTER COLUMN {column} SET DEFAULT {default}",
                f"ALTER TABLE {table} ADD CONSTRAINT {check} "
                f"CHECK ({column} IS NOT NULL) NOT VALID",
            ],
            [f"ALTER TABLE {table} VALIDATE CONSTRAINT {check}"],
            [
                lock_timeout,
                f"ALTER TABLE {table} ALTER COLUMN {column} SET NOT NULL",
                f"ALTER TABLE {table} DROP CONSTRAINT {check}",
            ],
        ]
        if schema_editor.collect_sql:
            for statement in itertools.chain.from_iterable(transactions):
                schema_editor.execute(statement)
            return
        with schema_editor.connection.cursor() as cursor:
            for statements in transactions:
                with transaction.atomic(using=alias):
                    for statement in statements:
                        cursor.execute(statement)

    def _refuse_while_nulls_remain(self, app_label: str, model: Any, alias: str) -> None:
        nulls = model._default_manager.using(alias).filter(**{f"{self.name}__isnull": True}).count()
        if nulls:
            raise NullsRemainError(
                f"{app_label}.{model.__name__}.{self.name} still holds NULL in {nulls} row(s); "
                f"refusing to make it NOT NULL. {self.remedy}".strip()
            )

    def database_backwards(
        self,
        app_label: str,
        schema_editor: BaseDatabaseSchemaEditor,
        from_state: ProjectState,
        to_state: ProjectState,
    ) -> None:
        if not _is_postgres(schema_editor):
            super().database_backwards(app_label, schema_editor, from_state, to_state)
            return
        model = from_state.apps.get_model(app_label, self.model_name)
        table = schema_editor.quote_name(model._meta.db_table)
        column = schema_editor.quote_name(model._meta.get_field(self.name).column)
        statements = [
            f"SET LOCAL lock_timeout = {LOCK_TIMEOUT_MS}",
            f"ALTER TABLE {table} ALTER COLUMN {column} DROP NOT NULL, "
            f"ALTER COLUMN {column} DROP DEFAULT",
        ]
        if schema_editor.collect_sql:
            for statement in statements:
                schema_editor.execute(statement)
            return
        with (
            transaction.atomic(using=schema_editor.connection.alias),
            schema_editor.connection.cursor() as cursor,
        ):
            for statement in statements:
                cursor.execute(statement)
