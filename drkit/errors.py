"""Errors users see, and the exit status each maps to (CONTRACT.md: exit codes).

Every error a user can cause or meet carries one line that says what is wrong and
what to do; the CLI prints that line (no traceback unless -v) and exits with the
status below.
"""

from __future__ import annotations

import enum


class ExitStatus(enum.IntEnum):
    OK = 0
    FAILED = 1
    USAGE = 2
    TARGETS_MISSED = 3
    INTERRUPTED = 130


class DrkitError(Exception):
    """Base of every error drkit reports to a user. `str(err)` is the one line shown."""

    exit_status: ExitStatus = ExitStatus.FAILED


class UsageError(DrkitError):
    """Bad command-line input or configuration: nothing was changed."""

    exit_status = ExitStatus.USAGE


class ConfigError(UsageError):
    """One or more configuration problems, each `FILE:LINE: field: message`."""

    def __init__(self, issues: list[str]) -> None:
        self.issues = list(issues)
        super().__init__("\n".join(self.issues) if self.issues else "configuration error")


class ToolMissing(DrkitError):
    """A required external program (pg_dump, initdb, ...) is missing or too old."""


class IntegrityError(DrkitError):
    """A backup failed authentication: tampered, truncated, reordered or wrong key."""


class StoreError(DrkitError):
    """The backup store could not be read or written (disk full, permissions, S3)."""


class SourceUnreachable(DrkitError):
    """The database to back up or check cannot be reached."""


class Interrupted(DrkitError):
    """Ctrl-C or SIGTERM: raised in the main thread so that cleanup runs in `finally`."""

    exit_status = ExitStatus.INTERRUPTED

    def __init__(self, signame: str = "SIGINT") -> None:
        self.signame = signame
        super().__init__(f"interrupted by {signame}; cleanup done")
