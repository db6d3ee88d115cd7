"""The web process: `python -m events.serve [gunicorn options]` (the Procfile's `web`).

It checks PORT, WEB_CONCURRENCY and every setting, then becomes gunicorn's master serving
events.wsgi on 0.0.0.0:PORT with WEB_CONCURRENCY workers; the options it is given go to
gunicorn after those (the Procfile's --timeout). A bad value stops it with one line naming
the variable, status 2, before gunicorn is even imported: gunicorn reads WEB_CONCURRENCY
as it loads, and fails on a word with a traceback, starts no worker at all on 0, and
learns of a port it cannot bind only when it binds.
"""

import os
import sys

from events.env import env_int
from events.startup import exit_on_bad_configuration, settings_or_exit

APPLICATION = "events.wsgi"
DEFAULT_PORT = 8000
DEFAULT_WORKERS = 2  # gunicorn processes, each serving one request at a time


def gunicorn_argv(options: list[str]) -> list[str]:
    """gunicorn's command line for the environment's PORT and WEB_CONCURRENCY."""
    port = env_int("PORT", DEFAULT_PORT, minimum=1, maximum=65535)
    workers = env_int("WEB_CONCURRENCY", DEFAULT_WORKERS, minimum=1)
    bind = f"0.0.0.0:{port}"
    return ["gunicorn", APPLICATION, "--bind", bind, "--workers", str(workers), *options]


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "events.settings")
    with exit_on_bad_configuration():
        argv = gunicorn_argv(sys.argv[1:])
    settings_or_exit()
    # Only now: importing gunicorn reads WEB_CONCURRENCY.
    from gunicorn.app.wsgiapp import run  # type: ignore[import-untyped]

    sys.argv = argv
    run()


if __name__ == "__main__":
    main()
