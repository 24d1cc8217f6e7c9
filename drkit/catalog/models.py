"""The catalog's tables as SQLAlchemy 2 declarative models (the shape migrations must produce).

These describe the schema at `head`; the migrations in drkit/migrations/versions create
it, and tests/unit/test_catalog.py checks that the two agree. Migrations never import
this module: a migration is frozen in time, the models move on.

Every timestamp column is `UTCDateTime`: stored as `timestamptz` on PostgreSQL and as
UTC text on SQLite, and always read back as a timezone-aware UTC datetime.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Dialect,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

# Named constraints, so that future migrations can alter them on SQLite (batch mode needs names).
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# JSONB on PostgreSQL (indexable, compact); JSON text elsewhere.
JsonDoc = JSON().with_variant(JSONB(), "postgresql")


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on every backend.

    SQLite has no time zones: SQLAlchemy would silently drop tzinfo on write and hand back
    naive datetimes. Here, writes must be aware (a naive time is a drkit bug, refused
    loudly) and are stored as UTC; reads come back aware in UTC on SQLite and PostgreSQL alike.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"catalog timestamps must be timezone-aware, got naive {value.isoformat()}")
        value = value.astimezone(UTC)
        # SQLite stores fixed-width UTC text, so ordering by the column is chronological.
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class RecoveryPointRow(Base):
    __tablename__ = "recovery_points"

    id: Mapped[str] = mapped_column(String(255), primary_key=True)
    resource: Mapped[str] = mapped_column(String(255))
    schedule: Mapped[str] = mapped_column(String(255))
    engine: Mapped[str] = mapped_column(String(32))
    kind: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    region: Mapped[str | None] = mapped_column(String(64))
    location: Mapped[str] = mapped_column(Text)
    size_bytes: Mapped[int | None] = mapped_column(BigInteger)
    encrypted: Mapped[bool] = mapped_column(Boolean)
    key_id: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(32))
    watermark_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    manifest: Mapped[dict[str, Any]] = mapped_column(JsonDoc)
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    __table_args__ = (
        Index(None, "resource", "created_at"),
        Index(None, "schedule", "created_at"),
    )


class JobRunRow(Base):
    __tablename__ = "job_runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job: Mapped[str] = mapped_column(String(64))
    schedule: Mapped[str | None] = mapped_column(String(255))
    resource: Mapped[str | None] = mapped_column(String(255))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    status: Mapped[str] = mapped_column(String(32))
    detail: Mapped[str] = mapped_column(Text)
    host: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)

    __table_args__ = (
        Index(None, "job", "started_at"),
        Index(None, "resource", "started_at"),
    )


class DrillRunRow(Base):
    __tablename__ = "drill_runs"

    id: Mapped[str] = mapped_column(String(255), primary_key=True)
    drill: Mapped[str] = mapped_column(String(255))
    environment: Mapped[str] = mapped_column(String(255))
    engine: Mapped[str] = mapped_column(String(32))
    scenario: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(32))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    incident_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    rto_target_s: Mapped[float | None] = mapped_column(Float)
    rto_achieved_s: Mapped[float | None] = mapped_column(Float)
    rpo_target_s: Mapped[float | None] = mapped_column(Float)
    rpo_achieved_s: Mapped[float | None] = mapped_column(Float)
    rpo_method: Mapped[str | None] = mapped_column(String(32))
    report_path: Mapped[str | None] = mapped_column(Text)
    report: Mapped[dict[str, Any]] = mapped_column(JsonDoc)

    __table_args__ = (Index(None, "drill", "started_at"),)


class AuditEventRow(Base):
    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    actor: Mapped[str] = mapped_column(String(255))
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str] = mapped_column(Text)
    detail: Mapped[dict[str, Any]] = mapped_column(JsonDoc)

    __table_args__ = (Index(None, "at"),)
