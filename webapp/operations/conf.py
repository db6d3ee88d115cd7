"""Settings of the operations tooling, read from the environment when used.

They live here rather than in events.settings because only the operator's commands read
them; reading at call time lets one shell export a different BACKUP_DIR per run.
"""

from pathlib import Path

from django.conf import settings

from events.env import env_str


def backup_dir() -> Path:
    """Where backup_db writes: BACKUP_DIR, by default `<repo>/var/backups`."""
    default = settings.PROJECT_DIR / "var" / "backups"
    return Path(env_str("BACKUP_DIR", str(default)) or default).expanduser().resolve()
