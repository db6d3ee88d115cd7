from typing import Any

from django.conf import settings
from django.core.management.base import CommandError

from accounts.models import ArtistProfile, User
from events.commands import ProjectCommand

DEMO_ARTIST = ("demo-artist", "demo-artist@example.com", "jersey-demo-2026")
DEMO_STAFF = ("admin", "admin@example.com", "jersey-admin-2026")


class Command(ProjectCommand):
    help = "Create a demo artist and a staff user for local runs (DEBUG only; idempotent)."

    def handle(self, *args: Any, **options: Any) -> None:
        if not settings.DEBUG:
            raise CommandError(
                "seed_demo creates well-known passwords: it runs only with DEBUG on."
            )
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
        self.stdout.write(
            f"Artist login: {DEMO_ARTIST[0]} / {DEMO_ARTIST[2]}    "
            f"Staff login: {DEMO_STAFF[0]} / {DEMO_STAFF[2]}"
        )
