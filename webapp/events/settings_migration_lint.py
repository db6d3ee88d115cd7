"""The project's settings plus django-migration-linter, for `scripts/lint-migrations` only.

The linter is a development dependency: production never installs it, so its app is
added here rather than in the settings every process loads. A development tool, it runs
in development mode (events.settings_development).
"""

from events.settings_development import *  # noqa: F403
from events.settings_development import INSTALLED_APPS

INSTALLED_APPS = [*INSTALLED_APPS, "django_migration_linter"]
