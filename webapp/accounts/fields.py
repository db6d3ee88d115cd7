from typing import Any

from django.db import models
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models.expressions import Expression

from accounts.sumup import crypto


class EncryptedTextField(models.TextField):  # type: ignore[type-arg]
    """A TEXT column that holds Fernet ciphertext; Python code sees the plaintext.

    Empty strings are stored as NULL, so "no token" has one representation.
    Ciphertext is not deterministic: filter on `__isnull`, never on the value.
    """

    def from_db_value(
        self, value: str | None, expression: Expression, connection: BaseDatabaseWrapper
    ) -> str | None:
        if value is None:
            return None
        return crypto.decrypt(value)

    def get_prep_value(self, value: Any) -> Any:
        value = super().get_prep_value(value)
        if value is None or value == "":
            return None
        return crypto.encrypt(value)
