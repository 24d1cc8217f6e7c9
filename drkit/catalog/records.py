"""What the catalog hands out: plain frozen dataclasses, never ORM objects.

Records are values: they hold no session and no connection, so callers can keep them,
compare them and print them after the catalog is closed. Every timestamp is
timezone-aware UTC. `to_dict()` gives the JSON-ready shape (ISO-8601 times ending in
`Z`) that `--output json` prints (CONTRACT.md: `backup list` keys).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

EngineName = Literal["postgres", "rds"]
RecoveryPointKind = Literal["dump", "snapshot", "copy", "pitr"]
RecoveryPointStatus = Literal["creating", "available", "failed", "deleted"]
JobStatus = Literal["running", "ok", "failed", "interrupted"]
DrillStatus = Literal["passed", "failed", "targets_missed", "running"]

ENGINES: frozenset[str] = frozenset({"postgres", "rds"})
RECOVERY_POINT_KINDS: frozenset[str] = frozenset({"dump", "snapshot", "copy", "pitr"})
RECOVERY_POINT_STATUSES: frozenset[str] = frozenset({"creating", "available", "failed", "deleted"})
JOB_STATUSES: frozenset[str] = frozenset({"running", "ok", "failed", "interrupted"})
FINISHED_JOB_STATUSES: frozenset[str] = JOB_STATUSES - {"running"}
DRILL_STATUSES: frozenset[str] = frozenset({"passed", "failed", "targets_missed", "running"})


def iso_utc(value: datetime | None) -> str | None:
    """`2026-11-29T08:55:00Z` (microseconds kept when present); None stays None."""
    if value is None:
        return None
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _jsonable(record: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for f in dataclasses.fields(record):
        value = getattr(record, f.name)
        out[f.name] = iso_utc(value) if isinstance(value, datetime) else value
    return out


@dataclass(frozen=True, kw_only=True)
class RecoveryPointRecord:
    """One backup that can be restored from: a dump file, an RDS snapshot, a copy, or a PITR window.

    `id` is drkit's deterministic name (e.g. `app-20261129T085500Z-3f2a`); `location` is where
    the bytes are (a `file://`/`s3://` URI or a snapshot ARN); `watermark_at` is the newest
    heartbeat found in the data when it was taken (the data-based RPO).
    """

    id: str
    resource: str
    schedule: str
    engine: EngineName
    kind: RecoveryPointKind
    created_at: datetime
    location: str
    region: str | None = None
    size_bytes: int | None = None
    encrypted: bool = False
    key_id: str | None = None
    status: RecoveryPointStatus = "available"
    watermark_at: datetime | None = None
    manifest: dict[str, Any] = field(default_factory=dict)
    deleted_at: datetime | None = None

    def to_dict(self) -> dict[str, Any]:
        return _jsonable(self)


@dataclass(frozen=True, kw_only=True)
class JobRunRecord:
    """One run of a job (backup, prune, copy, ...): who ran it where, when, and how it ended."""

    id: int
    job: str
    schedule: str | None
    resource: str | None
    started_at: datetime
    finished_at: datetime | None
    status: JobStatus
    detail: str
    host: str
    pid: int

    def to_dict(self) -> dict[str, Any]:
        return _jsonable(self)


@dataclass(frozen=True, kw_only=True)
class DrillRunRecord:
    """One drill: its outcome against the RTO/RPO targets, and the whole report (CONTRACT.md).

    `engine` ("postgres"|"rds") and `status` (DrillStatus) are plain strings because they
    come straight from the report; Catalog.record_drill refuses values outside those sets.
    """

    id: str
    drill: str
    environment: str
    engine: str
    scenario: str
    status: str
    started_at: datetime
    finished_at: datetime | None = None
    incident_at: datetime | None = None
    rto_target_s: float | None = None
    rto_achieved_s: float | None = None
    rpo_target_s: float | None = None
    rpo_achieved_s: float | None = None
    rpo_method: str | None = None
    report_path: str | None = None
    report: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return _jsonable(self)


@dataclass(frozen=True, kw_only=True)
class AuditEventRecord:
    """Something a person or the scheduler did that changed the world (delete, restore, replicate)."""

    id: int
    at: datetime
    actor: str
    action: str
    target: str
    detail: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return _jsonable(self)
