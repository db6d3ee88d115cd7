"""No Docker engine runs here, so the compose file and Procfile are checked by reading:
valid structure, a healthcheck per service, and every command names something that exists."""

import importlib
import importlib.util
import shlex
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from django.core.management import get_commands

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = REPO / ".venv" / "bin"
IMAGE_TOOLS = {"pg_isready", "redis-cli", "redis-server", "sh"}  # shipped by the service images


def _executable_exists(name: str) -> bool:
    return name in IMAGE_TOOLS or (VENV_BIN / name).exists() or shutil.which(name) is not None


def _check_command(argv: list[str]) -> None:
    """Fail unless the program, and the project module or subcommand it names, exist."""
    if argv[0] == "exec":  # the shell replaces itself with the program
        argv = argv[1:]
    assert _executable_exists(argv[0]), f"no such program: {argv[0]}"
    if argv[0] == "sh":
        for part in " ".join(argv[2:]).split("&&"):
            _check_command(shlex.split(part))
    elif argv[0] == "gunicorn":
        module, _, attribute = argv[1].partition(":")
        assert hasattr(importlib.import_module(module), attribute or "application")
    elif argv[0] == "celery":
        assert argv[1] == "-A"
        assert importlib.import_module(argv[2]).app.main == "jobs"
        assert argv[3] in {"worker", "beat", "inspect"}
        if "--scheduler" in argv:
            module, _, attribute = argv[argv.index("--scheduler") + 1].partition(":")
            assert hasattr(importlib.import_module(module), attribute)
    elif argv[0] == "python" and argv[1] == "-m":
        assert importlib.util.find_spec(argv[2]) is not None, f"no module {argv[2]}"
    elif argv[0] == "python" and argv[1].endswith("manage.py"):
        assert (REPO / argv[1]).exists()
        assert argv[2] in get_commands(), f"no manage.py command {argv[2]}"


def _compose() -> dict[str, Any]:
    loaded = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    assert isinstance(loaded, dict)
    return loaded


def test_compose_defines_every_process_with_a_healthcheck():
    services = _compose()["services"]
    assert set(services) == {"postgres", "redis", "release", "web", "worker", "beat"}
    for name, service in services.items():
        if name != "release":  # a one-off: it runs, exits 0, and web starts after it
            assert service["healthcheck"]["test"], f"{name} has no healthcheck"
    assert services["web"]["depends_on"]["release"] == {
        "condition": "service_completed_successfully"
    }


@pytest.mark.parametrize("service", ["release", "web", "worker", "beat", "postgres", "redis"])
def test_every_compose_command_exists_in_the_project(service):
    definition = _compose()["services"][service]
    if "command" in definition:
        _check_command(definition["command"])
    if "healthcheck" not in definition:
        return
    test = definition["healthcheck"]["test"]
    if test[0] == "CMD":
        _check_command(test[1:])
    else:
        assert test[0] == "CMD-SHELL"
        _check_command(shlex.split(test[1].replace("$$", "$")))


def _procfile() -> dict[str, str]:
    return dict(
        line.split(": ", 1) for line in (REPO / "Procfile").read_text().splitlines() if line
    )


def test_the_procfile_runs_web_worker_beat_and_migrates_on_release():
    processes = _procfile()
    assert set(processes) == {"release", "web", "worker", "beat"}
    for command in processes.values():
        _check_command(shlex.split(command))
    assert processes["release"] == "python webapp/manage.py migrate --noinput"


def test_compose_runs_the_procfiles_own_commands():
    """The two ways to deploy run the same processes: each compose service runs its
    Procfile line as written, through a shell (compose writes the shell's $ as $$)."""
    procfile = _procfile()
    services = _compose()["services"]
    for name, command in procfile.items():
        shell, flag, script = services[name]["command"]
        assert (shell, flag) == ("sh", "-c"), name
        assert script.replace("$$", "$") == f"exec {command}", name
    for name in ("web", "worker", "beat"):
        assert services[name]["restart"] == "unless-stopped", name


def test_compose_restarts_every_service_and_keeps_redis_on_disk():
    services = _compose()["services"]
    for name, service in services.items():
        expected = "no" if name == "release" else "unless-stopped"
        assert service["restart"] == expected, name
    redis = services["redis"]
    command = redis["command"]
    assert command[command.index("--appendonly") + 1] == "yes"
    assert command[command.index("--appendfsync") + 1] == "everysec"
    assert any(volume.endswith(":/data") for volume in redis["volumes"])
