"""Dependencies point one way: the Celery app (`jobs/`) imports the domain, never the
reverse; accounts sits below campaigns; no two top-level packages import each other,
however indirectly. Read from the source's syntax tree, so an import inside a function
(the lazy kind that hides a cycle) counts as much as one at the top of a module."""

import ast
import importlib
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

PROJECT = Path(settings.PROJECT_DIR)
# Each top-level package, and the folder its modules live in.
PACKAGES = {
    "accounts": PROJECT / "webapp" / "accounts",
    "backfills": PROJECT / "webapp" / "backfills",
    "campaigns": PROJECT / "webapp" / "campaigns",
    "events": PROJECT / "webapp" / "events",
    "operations": PROJECT / "webapp" / "operations",
    "jobs": PROJECT / "jobs",
    "fakes": PROJECT / "fakes",
}
TASK_NAME = re.compile(r"jobs(\.[a-z_]+){2}")


@dataclass(frozen=True)
class Import:
    source: Path
    line: int
    module: str  # as written: "jobs.token_refresh", "campaigns"

    @property
    def package(self) -> str:
        return self.module.split(".")[0]

    def __str__(self) -> str:
        return f"{self.source.relative_to(PROJECT)}:{self.line} imports {self.module}"


def imports_in(path: Path) -> Iterator[Import]:
    """Every absolute import in the module, wherever it stands: at the top, inside a
    function, under `if TYPE_CHECKING`. A relative import stays in its own package."""
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Import(path, node.lineno, alias.name)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield Import(path, node.lineno, node.module)


def imports_under(folder: Path) -> list[Import]:
    return [found for path in sorted(folder.rglob("*.py")) for found in imports_in(path)]


def package_graph(packages: dict[str, Path]) -> dict[tuple[str, str], list[Import]]:
    """(importer, imported) -> the imports behind that arrow, between distinct packages."""
    arrows: dict[tuple[str, str], list[Import]] = {}
    for name, folder in packages.items():
        for found in imports_under(folder):
            if found.package in packages and found.package != name:
                arrows.setdefault((name, found.package), []).append(found)
    return arrows


def cycles(nodes: Iterable[str], arrows: Iterable[tuple[str, str]]) -> list[list[str]]:
    """The groups of packages that reach each other (strongly connected, more than one)."""
    following: dict[str, set[str]] = {node: set() for node in nodes}
    for source, target in arrows:
        following[source].add(target)

    def reach(start: str) -> set[str]:
        seen, todo = {start}, [start]
        while todo:
            for nxt in following[todo.pop()] - seen:
                seen.add(nxt)
                todo.append(nxt)
        return seen

    reached = {node: reach(node) for node in following}
    groups = {
        tuple(sorted(other for other in reached[node] if node in reached[other]))
        for node in following
    }
    return sorted(list(group) for group in groups if len(group) > 1)


def test_no_module_of_the_web_side_imports_jobs():
    found = [str(i) for i in imports_under(PROJECT / "webapp") if i.package == "jobs"]
    assert found == [], "the web side enqueues by task name (events.queue):\n" + "\n".join(found)


def test_accounts_never_imports_campaigns():
    found = [str(i) for i in imports_under(PACKAGES["accounts"]) if i.package == "campaigns"]
    assert found == [], "accounts announces events campaigns listens to:\n" + "\n".join(found)


def test_no_two_packages_import_each_other_even_through_others():
    arrows = package_graph(PACKAGES)
    found = cycles(PACKAGES, arrows)
    detail = [
        f"{' <-> '.join(group)}: "
        + "; ".join(str(arrows[pair][0]) for pair in arrows if set(pair) <= set(group))
        for group in found
    ]
    assert found == [], "import cycles between packages:\n" + "\n".join(detail)


def test_the_check_sees_lazy_imports_and_cycles_through_a_third_package(tmp_path):
    """The walk itself: an import inside a function is an arrow, and a cycle through a
    third package is found, while packages that only point one way are not a cycle."""
    sources = {
        "low/__init__.py": "",
        "low/models.py": "def later():\n    from top.tasks import run\n    return run\n",
        "middle/__init__.py": "from low import models\n",
        "top/__init__.py": "",
        "top/tasks.py": "import middle\n\ndef run():\n    pass\n",
        "apart/__init__.py": "import low.models\n",
    }
    for name, text in sources.items():
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text(text)
    packages = {name: tmp_path / name for name in ("low", "middle", "top", "apart")}

    arrows = package_graph(packages)

    assert sorted(arrows) == [
        ("apart", "low"),
        ("low", "top"),
        ("middle", "low"),
        ("top", "middle"),
    ]
    assert arrows[("low", "top")][0].line == 2, "the import inside the function"
    assert cycles(packages, arrows) == [["low", "middle", "top"]]


def _task_names_in(path: Path) -> Iterator[tuple[str, int]]:
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Constant) and TASK_NAME.fullmatch(str(node.value)):
            yield str(node.value), node.lineno


def test_every_task_the_web_side_names_is_one_the_workers_run():
    """Queued by name, a task that does not exist would wait in Redis for ever: every
    task name written out in the web side (its callers, beat's schedule) is registered
    by the modules a worker loads."""
    from jobs import app

    for module in app.conf.include:
        importlib.import_module(module)
    named = [
        (name, f"{path.relative_to(PROJECT)}:{line}")
        for path in sorted((PROJECT / "webapp").rglob("*.py"))
        for name, line in _task_names_in(path)
    ]
    unknown = [f"{where} names {name}" for name, where in named if name not in app.tasks]
    assert named, "the walk found no task names at all"
    assert unknown == [], "\n".join(unknown)
