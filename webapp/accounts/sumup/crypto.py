"""Encryption of SumUp tokens at rest.

Keys come from settings.SUMUP_TOKEN_KEYS: Fernet keys, newest first. The newest
encrypts; every key decrypts, so a key can be rotated in without a window where old rows
cannot be read, and `manage.py reencrypt_sumup_tokens` then rewrites every row with it.
"""

import base64
import hashlib
import logging
from functools import cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

log = logging.getLogger(__name__)

KEYS_VARIABLE = "SUMUP_TOKEN_KEYS"  # the setting, and its variable, that errors name


class TokenDecryptionError(ImproperlyConfigured):
    """A stored token was encrypted with a key that is no longer configured."""


def _configured_keys() -> list[str]:
    keys: list[str] = settings.SUMUP_TOKEN_KEYS
    return keys


def _development_key() -> str:
    digest = hashlib.sha256(f"sumup-token-key:{settings.SECRET_KEY}".encode()).digest()
    return base64.urlsafe_b64encode(digest).decode()


def _keys() -> list[str]:
    """The configured keys; in development mode only (DEBUG on), and only when none is
    configured, one derived from SECRET_KEY, so a local run needs no key of its own."""
    keys = _configured_keys()
    if keys:
        return keys
    if not settings.DEBUG:
        raise ImproperlyConfigured(
            f"{KEYS_VARIABLE} must be set when DEBUG is off: it encrypts SumUp tokens. "
            "Generate one with: python -c 'from cryptography.fernet import Fernet; "
            "print(Fernet.generate_key().decode())'"
        )
    return [_development_key()]


@cache
def _fernet() -> MultiFernet:
    keys = _keys()
    if not _configured_keys():
        log.warning(
            "%s is not set; SumUp tokens are encrypted with a development key derived from "
            "SECRET_KEY",
            KEYS_VARIABLE,
        )
    try:
        return MultiFernet([Fernet(key.encode()) for key in keys])
    except ValueError:
        raise ImproperlyConfigured(
            f"{KEYS_VARIABLE} holds a value that is not a Fernet key (32 url-safe base64 bytes)"
        ) from None


def reset_keys() -> None:
    """Forget the loaded keys, so a changed SUMUP_TOKEN_KEYS takes effect."""
    _fernet.cache_clear()


def key_fingerprints() -> list[str]:
    """Short, non-secret identifiers of the keys in use, newest first."""
    return [hashlib.sha256(key.encode()).hexdigest()[:12] for key in _keys()]


def encrypt(plaintext: str) -> str:
    return _fernet().encrypt(plaintext.encode()).decode("ascii")


def decrypt(ciphertext: str) -> str:
    try:
        return _fernet().decrypt(ciphertext.encode("ascii")).decode()
    except (InvalidToken, UnicodeEncodeError):
        raise TokenDecryptionError(
            f"A stored SumUp token cannot be decrypted with any key in {KEYS_VARIABLE}; "
            "was a key removed before `manage.py reencrypt_sumup_tokens` ran?"
        ) from None


def rotate(ciphertext: str) -> str:
    """Re-encrypt with the newest key."""
    try:
        return _fernet().rotate(ciphertext.encode("ascii")).decode("ascii")
    except InvalidToken:
        raise TokenDecryptionError(
            f"A stored SumUp token cannot be decrypted with any key in {KEYS_VARIABLE}"
        ) from None
