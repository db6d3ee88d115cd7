"""What a deploy's `migrate` commands would do to the database, read before any of them runs.

`migrate accounts 0003_...` on a database past 0003 does not do nothing: it unapplies every
later accounts migration and everything that depends on them, dropping their columns and
tables. So a deploy runs a targeted step only while the database is behind its target,
and refuses a plan with any backwards step whole.
"""

from dataclasses import dataclass, field

from django.db import DEFAULT_DB_ALIAS, connections
from django.db.migrations.executor import MigrationExecutor

Node = tuple[str, str]


@dataclass(frozen=True)
class Step:
    """One `migrate` command of the deploy and the migrations it would apply, in order."""

    title: str
    target: Node | None  # None: every app to its latest migration
    migrations: list[Node] = field(default_factory=list)
    unapplies: list[Node] = field(default_factory=list)


class BackwardsPlanError(RuntimeError):
    pass


def applied_migrations(using: str = DEFAULT_DB_ALIAS) -> set[Node]:
    executor = MigrationExecutor(connections[using])
    return set(executor.loader.applied_migrations or {})


def plan(targets: list[tuple[str, Node | None]], using: str = DEFAULT_DB_ALIAS) -> list[Step]:
    """What the `migrate` commands (title, target) would do, run one after another.

    Refuses a database whose recorded history contradicts the migration graph.
    """
    executor = MigrationExecutor(connections[using])
    executor.loader.check_consistent_history(connections[using])
    so_far: list[Node] = []
    steps = []
    for title, target in targets:
        # migration_plan walks its targets in order over one running set of applied
        # migrations, so this step's part is what follows the earlier steps' part.
        before = len(executor.migration_plan(so_far))
        so_far += [target] if target is not None else executor.loader.graph.leaf_nodes()
        part = executor.migration_plan(so_far)[before:]
        steps.append(
            Step(
                title,
                target,
                migrations=[(m.app_label, m.name) for m, backwards in part if not backwards],
                unapplies=[(m.app_label, m.name) for m, backwards in part if backwards],
            )
        )
    return steps


def refuse_backwards(steps: list[Step]) -> None:
    """Raise, naming every migration that would be unapplied, if any step goes backwards."""
    backwards = [f"{app}.{name}" for step in steps for app, name in step.unapplies]
    if backwards:
        raise BackwardsPlanError(
            "the migration plan would unapply "
            + ", ".join(backwards)
            + " and drop their columns and tables; a deploy only applies migrations"
        )
