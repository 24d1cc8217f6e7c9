"""Alert incidents in the catalog, so a restarted scheduler does not alert twice.

One row per incident key (schedule, kind, resource): `open` from the first failure (or
missed run) until the next success resolves it. drkit.notify decides when to notify; this
module only remembers. Created by migration 0002.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, Integer, String, Text, select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Mapped, Session, mapped_column

from drkit.catalog.connect import WRITE_OPTION, db_error
from drkit.catalog.models import Base, UTCDateTime


class IncidentRow(Base):
    __tablename__ = "alert_incidents"

    id: Mapped[str] = mapped_column(String(800), primary_key=True)
    schedule: Mapped[str] = mapped_column(String(255))
    kind: Mapped[str] = mapped_column(String(64))
    resource: Mapped[str] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(16))  # open | resolved
    reason: Mapped[str] = mapped_column(String(32))  # failed | missed | config
    opened_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    failures: Mapped[int] = mapped_column(Integer)
    detail: Mapped[str] = mapped_column(Text)


@dataclass(frozen=True)
class Incident:
    key: tuple[str, str, str]
    status: str
    reason: str
    opened_at: datetime
    updated_at: datetime
    resolved_at: datetime | None
    failures: int
    detail: str


def incident_id(key: tuple[str, str, str]) -> str:
    return "|".join(key)


class CatalogIncidentStore:
    """IncidentStore (drkit.notify) backed by the catalog's `alert_incidents` table."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    @contextmanager
    def _session(self) -> Iterator[Session]:
        try:
            with self._engine.connect() as conn:
                conn.execution_options(**{WRITE_OPTION: True})
                with Session(bind=conn) as session, session.begin():
                    yield session
        except DBAPIError as exc:
            raise db_error(self._engine.url, exc) from exc

    def get(self, key: tuple[str, str, str]) -> Incident | None:
        with self._session() as s:
            row = s.get(IncidentRow, incident_id(key))
            return _incident(row) if row is not None else None

    def open_incidents(self) -> list[Incident]:
        with self._session() as s:
            rows = s.scalars(select(IncidentRow).where(IncidentRow.status == "open").order_by(IncidentRow.id))
            return [_incident(r) for r in rows]

    def open(self, key: tuple[str, str, str], reason: str, detail: str, at: datetime) -> None:
        """Open (or re-open) the incident for `key`."""
        with self._session() as s:
            row = s.get(IncidentRow, incident_id(key))
            if row is None:
                row = IncidentRow(id=incident_id(key), schedule=key[0], kind=key[1], resource=key[2])
                s.add(row)
            row.status, row.reason, row.detail = "open", reason, detail
            row.opened_at = row.updated_at = at
            row.resolved_at = None
            row.failures = 1

    def bump(self, key: tuple[str, str, str], detail: str, at: datetime) -> None:
        """One more failure of an open incident."""
        with self._session() as s:
            row = s.get(IncidentRow, incident_id(key))
            if row is not None:
                row.failures += 1
                row.detail, row.updated_at = detail, at

    def resolve(self, key: tuple[str, str, str], at: datetime) -> None:
        with self._session() as s:
            row = s.get(IncidentRow, incident_id(key))
            if row is not None:
                row.status, row.resolved_at, row.updated_at = "resolved", at, at


def _incident(row: IncidentRow) -> Incident:
    return Incident(
        key=(row.schedule, row.kind, row.resource),
        status=row.status,
        reason=row.reason,
        opened_at=row.opened_at,
        updated_at=row.updated_at,
        resolved_at=row.resolved_at,
        failures=row.failures,
        detail=row.detail,
    )
