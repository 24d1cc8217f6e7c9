"""The manifest written beside every PostgreSQL backup, and backup identifiers.

The manifest is written *after* the data object and is the commit marker: a data object
without a manifest is an unfinished backup and is never offered for restore. It is plain
JSON so that an operator can read it with `cat` on the worst day.

    {"schema": "drkit.backup-manifest/1", "id": "app-20261129T085500Z-3f2a", "resource": "app",
     "created_at": "2026-11-29T08:55:00.123Z", "watermark_at": "2026-11-29T08:54:59Z", ...}
"""

from __future__ import annotations

import json
import secrets
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

SCHEMA = "drkit.backup-manifest/1"
DATA_SUFFIX = ".dump.zst.enc"
MANIFEST_SUFFIX = ".manifest.json"


def new_backup_id(resource: str, at: datetime) -> str:
    """`<resource>-<UTC time>-<4 hex>`: sorts by time within a resource, never collides."""
    return f"{resource}-{at.astimezone(UTC):%Y%m%dT%H%M%SZ}-{secrets.token_hex(2)}"


def data_name(resource: str, backup_id: str) -> str:
    return f"{resource}/{backup_id}{DATA_SUFFIX}"


def manifest_name(resource: str, backup_id: str) -> str:
    return f"{resource}/{backup_id}{MANIFEST_SUFFIX}"


def _iso(t: datetime | None) -> str | None:
    return None if t is None else t.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _parse(t: str | None) -> datetime | None:
    return None if t is None else datetime.fromisoformat(t.replace("Z", "+00:00"))


@dataclass(frozen=True)
class BackupManifest:
    id: str
    resource: str
    schedule: str
    created_at: datetime  # the consistent snapshot the dump was taken at (server time)
    finished_at: datetime
    server_version: str
    database: str
    dump_bytes: int  # pg_dump's archive before compression
    stored_bytes: int  # what the store holds (compressed + encrypted)
    sha256: str  # of the stored object: checkable without the key
    key_kind: str
    key_id: str
    watermark_at: datetime | None  # newest drkit_heartbeat in the dump, for data-level RPO
    engine: str = "postgres"
    kind: str = "dump"
    format: dict[str, str] = field(
        default_factory=lambda: {
            "dump": "pg_dump custom (-Fc -Z0)",
            "compression": "zstd",
            "encryption": "drkit STREAM AES-256-GCM, docs/backup-format.md",
        }
    )

    @property
    def data_name(self) -> str:
        return data_name(self.resource, self.id)

    @property
    def manifest_name(self) -> str:
        return manifest_name(self.resource, self.id)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for key in ("created_at", "finished_at", "watermark_at"):
            d[key] = _iso(d[key])
        return {"schema": SCHEMA, **d}

    def to_json(self) -> bytes:
        return (json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n").encode()

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> BackupManifest:
        if d.get("schema") != SCHEMA:
            raise ValueError(f"not a drkit backup manifest (schema {d.get('schema')!r})")
        fields = {k: v for k, v in d.items() if k != "schema"}
        for key in ("created_at", "finished_at", "watermark_at"):
            fields[key] = _parse(fields.get(key))
        return cls(**fields)
