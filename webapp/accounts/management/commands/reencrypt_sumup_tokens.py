from typing import Any

from django.core.management.base import CommandParser
from django.db import connection, transaction

from accounts.models import ArtistProfile
from accounts.sumup import crypto
from events.commands import ProjectCommand
from events.options import whole_number

ENCRYPTED_COLUMNS = ("sumup_access_token", "sumup_refresh_token")
BATCH_SIZE = 1_000  # rows per transaction
MAX_BATCH_SIZE = 10_000  # rows locked in one transaction at most


class Command(ProjectCommand):
    help = (
        "Re-encrypt every stored SumUp token with the newest key in SUMUP_TOKEN_KEYS, so an "
        "older key can then be removed."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--batch-size",
            type=whole_number(1, MAX_BATCH_SIZE),
            default=BATCH_SIZE,
            help=f"Rows per transaction, 1 to {MAX_BATCH_SIZE:,} (default {BATCH_SIZE:,}).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        crypto.reset_keys()
        table = connection.ops.quote_name(ArtistProfile._meta.db_table)
        lock = " FOR UPDATE" if connection.features.has_select_for_update else ""
        select = (
            f"SELECT id, {', '.join(ENCRYPTED_COLUMNS)} FROM {table} "  # noqa: S608
            "WHERE id > %s AND (sumup_access_token IS NOT NULL "
            f"OR sumup_refresh_token IS NOT NULL) ORDER BY id LIMIT %s{lock}"
        )
        rewritten = 0
        last_pk = 0
        while True:
            with transaction.atomic(), connection.cursor() as cursor:
                # Raw rows: the ciphertext itself is rotated, never decrypted into a model.
                cursor.execute(select, [last_pk, options["batch_size"]])
                rows = cursor.fetchall()
                for pk, *values in rows:
                    rotated = [None if value is None else crypto.rotate(value) for value in values]
                    cursor.execute(
                        f"UPDATE {table} SET sumup_access_token = %s, "  # noqa: S608
                        "sumup_refresh_token = %s WHERE id = %s",
                        [*rotated, pk],
                    )
            if not rows:
                break
            rewritten += len(rows)
            last_pk = rows[-1][0]
        fingerprint = crypto.key_fingerprints()[0]
        self.stdout.write(
            self.style.SUCCESS(
                f"Re-encrypted the tokens of {rewritten} artist(s) with key {fingerprint}."
            )
        )
