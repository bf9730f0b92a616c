"""The one exception tree of unops: every error a user can cause or meet derives from UnopsError."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


class UnopsError(Exception):
    """Base of every error unops raises on purpose; the CLI prints it without a traceback."""


@dataclass(frozen=True)
class Problem:
    """One thing wrong with an input file: where it is, what is wrong, the value and the fix."""

    file: Path
    message: str
    line: int | None = None

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else str(self.file)
        return f"{where}: {self.message}"


class EstateError(UnopsError):
    """The estate under inventory/ is invalid; carries every problem found, not only the first."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        count = len(problems)
        lines = "\n".join(f"  {p}" for p in problems)
        super().__init__(f"the estate has {count} problem{'s' if count != 1 else ''}:\n{lines}")


class LabError(UnopsError):
    """The rehearsal fleet could not be built, booted, reached or removed."""


class DeployError(UnopsError):
    """A deploy could not start, or a host failed during it."""


class ChainError(UnopsError):
    """An append-only record chain could not be read or written."""


class DirectoryError(UnopsError):
    """The LDAP directory refused an operation or a roster is invalid."""


class BackupError(UnopsError):
    """A backup, check, restore or drill failed."""


class SecretsError(UnopsError):
    """A secret could not be generated, read or kept safely."""


class ExporterError(UnopsError):
    """The exporter's configuration or credentials are missing or invalid (probes never raise)."""


class RemoteError(UnopsError):
    """A host could not be reached over SSH, or a command on it failed where success was needed."""
