"""The project's settings in development mode, for the tools that load them outside any
deploy: the type checker and the test run (pyproject.toml names this module for both).

Only here does DEBUG default to on; a deploy loads events.settings, where an unset DEBUG
means production. The default goes into the environment rather than this module alone,
so the processes a test starts (workers, the Procfile's lines) run in the same mode.
"""

import os

os.environ.setdefault("DEBUG", "true")

from events.settings import *  # noqa: F403
