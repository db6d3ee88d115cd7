from argparse import ArgumentParser
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth.hashers import check_password
from django.core.management.base import CommandError
from django.db import DatabaseError

from accounts.models import ArtistProfile, User
from events.commands import ProjectCommand

DEMO_ARTIST = ("demo-artist", "demo-artist@example.com", "jersey-demo-2026")
DEMO_STAFF = ("admin", "admin@example.com", "jersey-admin-2026")
NOT_SEEDED = "No demo logins yet: `make run` creates them."


def _login(role: str, username: str, password: str) -> str:
    """One login as the banner shows it, or what became of it since it was seeded."""
    user = User.objects.filter(username=username).first()
    if user is None:
        return f"{role} login: {username} is missing (`make run` creates it)"
    # The hasher's own check, without User.check_password's setter: reading the password
    # must not rewrite its hash.
    if not check_password(password, user.password):
        return f"{role} login: {username} (its password was changed since it was seeded)"
    return f"{role} login: {username} / {password}"


def logins() -> str:
    return (
        f"{_login('Artist', DEMO_ARTIST[0], DEMO_ARTIST[2])}    "
        f"{_login('Staff', DEMO_STAFF[0], DEMO_STAFF[2])}"
    )


def _database_missing() -> bool:
    """A local run's SQLite file not created yet (opening it would create an empty one)."""
    database = settings.DATABASES["default"]
    return database["ENGINE"].endswith("sqlite3") and not Path(database["NAME"]).exists()


class Command(ProjectCommand):
    help = (
        "Create a demo artist and a staff user for local runs (DEBUG only; idempotent) and "
        "print their logins. --show prints the logins only, changing nothing."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument(
            "--show", action="store_true", help="print the logins only; create nothing"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if not settings.DEBUG:
            raise CommandError(
                "seed_demo creates well-known passwords: it runs only with DEBUG on."
            )
        if options["show"]:
            self.stdout.write(self._shown())
            return
        username, email, password = DEMO_ARTIST
        artist, created = User.objects.get_or_create(
            username=username, defaults={"email": email, "user_type": User.UserType.ARTIST}
        )
        if created:
            artist.set_password(password)
            artist.save(update_fields=["password"])
        ArtistProfile.objects.get_or_create(
            user=artist, defaults={"display_name": "Demo Artist", "is_approved": True}
        )
        username, email, password = DEMO_STAFF
        if not User.objects.filter(username=username).exists():
            User.objects.create_superuser(username, email, password)
        self.stdout.write(logins())

    def _shown(self) -> str:
        if _database_missing():
            return NOT_SEEDED
        try:
            return logins()
        except DatabaseError:  # no tables yet: never migrated
            return NOT_SEEDED
