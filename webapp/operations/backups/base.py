"""The vocabulary every backup module shares: its error, and one check's finding."""

from dataclasses import dataclass
from typing import Literal


class BackupError(Exception):
    """A backup or restore could not be done or did not check out; the message says why.

    Messages name files, databases and tools, never a password: callers print them.
    """


@dataclass(frozen=True)
class Finding:
    name: str
    level: Literal["ok", "warn", "fail"]
    detail: str

    @property
    def failed(self) -> bool:
        return self.level == "fail"
