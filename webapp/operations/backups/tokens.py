"""Whether the SumUp tokens inside a backup open with the configured keys, checked on the
archive itself before a restore touches the live database.

The manifest's key fingerprints say which keys were configured when the backup was
taken, not which ones its tokens need: an old key may still be listed after every token
was re-encrypted, and a key may be missing from an older manifest. So each token is
decrypted, which is what the application will do with it after the restore.
"""

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from accounts.sumup import crypto
from operations.backups import postgres, sqlite
from operations.backups.base import Finding
from operations.backups.db import database_settings
from operations.backups.manifest import Manifest

PROFILE_TABLE = "accounts_artistprofile"
TOKEN_COLUMNS = ("sumup_access_token", "sumup_refresh_token")

RowReader = Callable[[dict[str, Any], Path, str, tuple[str, ...]], Iterator[tuple[str | None, ...]]]
READERS: dict[str, RowReader] = {"sqlite": sqlite.table_rows, "postgresql": postgres.table_rows}


@dataclass(frozen=True)
class TokenCheck:
    artists: int  # artists holding at least one token in the backup
    unreadable: int  # of those, how many have a token no configured key opens
    missing_keys: list[str]  # fingerprints of the backup's keys that are not configured

    @property
    def ok(self) -> bool:
        return self.unreadable == 0

    def problem(self) -> str:
        """One line naming what is wrong, for a refusal or a warning."""
        keys = (
            f"; the backup was taken with key(s) {', '.join(self.missing_keys)}, not configured"
            if self.missing_keys
            else ""
        )
        return (
            f"{self.unreadable} of {self.artists} artist(s) in the backup hold SumUp tokens "
            f"that no key in {crypto.KEYS_VARIABLE} decrypts{keys}"
        )

    def finding(self) -> Finding:
        if self.artists == 0:
            return Finding("Token keys", "ok", "the backup holds no SumUp tokens")
        if self.ok:
            return Finding(
                "Token keys",
                "ok",
                f"the SumUp tokens of all {self.artists} connected artist(s) decrypt with "
                f"{crypto.KEYS_VARIABLE}",
            )
        return Finding(
            "Token keys",
            "warn",
            f"{self.problem()}: restored as --allow-undecryptable-tokens asked, those artists "
            "must reconnect unless the key(s) are added back after the current ones",
        )


def _opens(ciphertext: str | None) -> bool:
    if not ciphertext:
        return True
    try:
        crypto.decrypt(ciphertext)
    except crypto.TokenDecryptionError:
        return False
    return True


def check_tokens(archive: Path, manifest: Manifest) -> TokenCheck:
    """Decrypt every SumUp token in the archive with the configured keys."""
    read = READERS[manifest.engine]
    artists = unreadable = 0
    for tokens in read(database_settings(), archive, PROFILE_TABLE, TOKEN_COLUMNS):
        if not any(tokens):
            continue
        artists += 1
        if not all(_opens(token) for token in tokens):
            unreadable += 1
    configured = set(crypto.key_fingerprints())
    missing = [key for key in manifest.key_fingerprints if key not in configured]
    return TokenCheck(artists, unreadable, missing)
