"""A bad setting stops a process with one line naming it, not a traceback.

manage.py, gunicorn (through events.wsgi), the web process (events.serve) and celery
(through jobs.celery) load the settings here first. events.env raises ImproperlyConfigured
naming the variable and the form it accepts; that message, and only it, is what the
operator needs to see.
"""

import sys
from collections.abc import Iterator
from contextlib import contextmanager

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

# argparse's status for a usage error, which a bad setting is too.
BAD_CONFIGURATION = 2


@contextmanager
def exit_on_bad_configuration(status: int = BAD_CONFIGURATION) -> Iterator[None]:
    """Turn an ImproperlyConfigured raised inside into `error: <why>` and exit `status`."""
    try:
        yield
    except ImproperlyConfigured as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(status) from None


def settings_or_exit(status: int = BAD_CONFIGURATION) -> None:
    """Load the settings; if one is wrong, print `error: <why>` and exit with `status`."""
    with exit_on_bad_configuration(status):
        settings.INSTALLED_APPS  # noqa: B018  (reading any setting loads them all)
