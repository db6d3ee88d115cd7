"""A bad setting stops a process with one line naming it, not a traceback.

manage.py, gunicorn (through events.wsgi) and celery (through jobs.celery) load the
settings here first. events.env raises ImproperlyConfigured naming the variable and the
form it accepts; that message, and only it, is what the operator needs to see.
"""

import sys

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

# argparse's status for a usage error, which a bad setting is too.
BAD_CONFIGURATION = 2


def settings_or_exit(status: int = BAD_CONFIGURATION) -> None:
    """Load the settings; if one is wrong, print `error: <why>` and exit with `status`."""
    try:
        settings.INSTALLED_APPS  # noqa: B018  (reading any setting loads them all)
    except ImproperlyConfigured as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(status) from None
