"""The Catalog: drkit's ledger of what happened (recovery points, job runs, drills, audit).

The cloud (snapshot tags, object metadata) is the source of truth for what exists; the
catalog records what drkit did and saw, so that `backup list`, `drill history` and the
audit trail survive restarts. Every method opens and commits its own short transaction
and returns plain records (drkit.catalog.records), never ORM objects.

    catalog = Catalog.open()            # SQLite under the user's state dir, upgraded to head
    job = catalog.start_job("backup", "local", "app")
    catalog.add_recovery_point(RecoveryPointRecord(id=..., ...))
    catalog.finish_job(job, "ok")
    catalog.close()
"""

from __future__ import annotations

import getpass
import os
import socket
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Engine, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import URL
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from drkit.catalog import migrate
from drkit.catalog.connect import (
    WRITE_OPTION,
    create_catalog_engine,
    db_error,
    default_catalog_url,
    mask,
    normalize_url,
)
from drkit.catalog.models import AuditEventRow, Base, DrillRunRow, JobRunRow, RecoveryPointRow
from drkit.catalog.records import (
    DRILL_STATUSES,
    ENGINES,
    FINISHED_JOB_STATUSES,
    RECOVERY_POINT_KINDS,
    RECOVERY_POINT_STATUSES,
    AuditEventRecord,
    DrillRunRecord,
    EngineName,
    JobRunRecord,
    JobStatus,
    RecoveryPointKind,
    RecoveryPointRecord,
    RecoveryPointStatus,
)
from drkit.clock import Clock, SystemClock
from drkit.errors import DrkitError


class Catalog:
    """A handle on one catalog database. Thread-safe for separate calls; close() when done."""

    def __init__(self, engine: Engine, url: URL, clock: Clock) -> None:
        """Use Catalog.open(): it normalizes the URL and upgrades the schema first."""
        self._engine = engine
        self._url = url
        self._clock = clock
        self.url: str = mask(url)  # for display: the password is masked

    @classmethod
    def open(cls, url: str | None = None, *, clock: Clock | None = None) -> Catalog:
        """Open (creating or upgrading as needed) the catalog at `url`, default_catalog_url() if None.

        Raises DrkitError if the database cannot be reached, or was written by a newer drkit.
        """
        parsed = normalize_url(url or default_catalog_url())
        engine = create_catalog_engine(parsed)
        try:
            migrate.upgrade(engine)
        except DBAPIError as exc:
            engine.dispose()
            raise db_error(parsed, exc) from exc
        except BaseException:
            engine.dispose()
            raise
        return cls(engine, parsed, clock or SystemClock())

    def close(self) -> None:
        self._engine.dispose()

    def __enter__(self) -> Catalog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Catalog({self.url!r})"

    @contextmanager
    def _session(self, *, write: bool = False) -> Iterator[Session]:
        """One short transaction; database failures become a one-line DrkitError naming the URL."""
        try:
            with self._engine.connect() as conn:
                if write:
                    conn.execution_options(**{WRITE_OPTION: True})
                with Session(bind=conn) as session, session.begin():
                    yield session
        except DBAPIError as exc:
            raise db_error(self._url, exc) from exc

    def _upsert(self, session: Session, model: type[Base], values: dict[str, Any]) -> None:
        """INSERT ... ON CONFLICT (id) DO UPDATE: one statement, so concurrent writers cannot race."""
        dialect = session.get_bind().dialect.name
        stmt = (pg_insert if dialect == "postgresql" else sqlite_insert)(model).values(**values)
        stmt = stmt.on_conflict_do_update(
            index_elements=["id"], set_={key: stmt.excluded[key] for key in values if key != "id"}
        )
        session.execute(stmt)

    # -- recovery points ------------------------------------------------------------------

    def add_recovery_point(self, rp: RecoveryPointRecord) -> None:
        """Record a recovery point, or replace the record with the same id (status changes)."""
        _one_of("engine", rp.engine, ENGINES)
        _one_of("kind", rp.kind, RECOVERY_POINT_KINDS)
        _one_of("status", rp.status, RECOVERY_POINT_STATUSES)
        _aware(created_at=rp.created_at, watermark_at=rp.watermark_at, deleted_at=rp.deleted_at)
        values = {
            "id": rp.id, "resource": rp.resource, "schedule": rp.schedule, "engine": rp.engine,
            "kind": rp.kind, "created_at": rp.created_at, "region": rp.region, "location": rp.location,
            "size_bytes": rp.size_bytes, "encrypted": rp.encrypted, "key_id": rp.key_id,
            "status": rp.status, "watermark_at": rp.watermark_at, "manifest": dict(rp.manifest),
            "deleted_at": rp.deleted_at,
        }  # fmt: skip
        with self._session(write=True) as s:
            self._upsert(s, RecoveryPointRow, values)

    def mark_deleted(self, rp_id: str, at: datetime) -> None:
        """Mark a recovery point deleted at `at`. An id the catalog never saw is ignored: the
        cloud, not the catalog, is the truth about what exists, and a lost catalog must not
        make a completed deletion fail."""
        _aware(at=at)
        with self._session(write=True) as s:
            s.execute(
                update(RecoveryPointRow)
                .where(RecoveryPointRow.id == rp_id)
                .values(status="deleted", deleted_at=at)
            )

    def recovery_points(
        self,
        *,
        resource: str | None = None,
        schedule: str | None = None,
        region: str | None = None,
        include_deleted: bool = False,
    ) -> list[RecoveryPointRecord]:
        """Recovery points matching every given filter, newest first."""
        q = select(RecoveryPointRow)
        if resource is not None:
            q = q.where(RecoveryPointRow.resource == resource)
        if schedule is not None:
            q = q.where(RecoveryPointRow.schedule == schedule)
        if region is not None:
            q = q.where(RecoveryPointRow.region == region)
        if not include_deleted:
            q = q.where(RecoveryPointRow.status != "deleted")
        q = q.order_by(RecoveryPointRow.created_at.desc(), RecoveryPointRow.id.desc())
        with self._session() as s:
            return [_rp(row) for row in s.scalars(q)]

    def get_recovery_point(self, rp_id: str) -> RecoveryPointRecord | None:
        with self._session() as s:
            row = s.get(RecoveryPointRow, rp_id)
            return _rp(row) if row is not None else None

    # -- job runs -----------------------------------------------------------------------

    def start_job(self, job: str, schedule: str | None, resource: str | None) -> int:
        """Record that a job started now on this host and process; returns its id for finish_job."""
        row = JobRunRow(
            job=job, schedule=schedule, resource=resource, started_at=self._clock.now(),
            finished_at=None, status="running", detail="", host=socket.gethostname(), pid=os.getpid(),
        )  # fmt: skip
        _aware(now=row.started_at)
        with self._session(write=True) as s:
            s.add(row)
            s.flush()
            return row.id

    def finish_job(self, job_id: int, status: str, detail: str = "") -> None:
        """Record how a job ended ("ok", "failed" or "interrupted") and when."""
        _one_of("status", status, FINISHED_JOB_STATUSES)
        now = self._clock.now()
        _aware(now=now)
        with self._session(write=True) as s:
            result = s.execute(
                update(JobRunRow)
                .where(JobRunRow.id == job_id)
                .values(status=status, detail=detail, finished_at=now)
            )
            if cast(Any, result).rowcount == 0:
                raise DrkitError(f"no job run {job_id} in the catalog at {self.url}; it cannot be finished")

    def job_runs(
        self, *, job: str | None = None, resource: str | None = None, limit: int = 100
    ) -> list[JobRunRecord]:
        """The most recent job runs (newest first), optionally of one job and/or one resource."""
        q = select(JobRunRow)
        if job is not None:
            q = q.where(JobRunRow.job == job)
        if resource is not None:
            q = q.where(JobRunRow.resource == resource)
        q = q.order_by(JobRunRow.started_at.desc(), JobRunRow.id.desc()).limit(max(limit, 0))
        with self._session() as s:
            return [_job(row) for row in s.scalars(q)]

    # -- drills -------------------------------------------------------------------------

    def record_drill(self, run: DrillRunRecord) -> None:
        """Record a drill run, or replace the record with the same id (running -> finished)."""
        _one_of("engine", run.engine, ENGINES)
        _one_of("status", run.status, DRILL_STATUSES)
        _aware(started_at=run.started_at, finished_at=run.finished_at, incident_at=run.incident_at)
        values = {
            "id": run.id, "drill": run.drill, "environment": run.environment, "engine": run.engine,
            "scenario": run.scenario, "status": run.status, "started_at": run.started_at,
            "finished_at": run.finished_at, "incident_at": run.incident_at,
            "rto_target_s": run.rto_target_s, "rto_achieved_s": run.rto_achieved_s,
            "rpo_target_s": run.rpo_target_s, "rpo_achieved_s": run.rpo_achieved_s,
            "rpo_method": run.rpo_method, "report_path": run.report_path, "report": dict(run.report),
        }  # fmt: skip
        with self._session(write=True) as s:
            self._upsert(s, DrillRunRow, values)

    def drill_runs(self, drill: str | None = None, limit: int = 100) -> list[DrillRunRecord]:
        """The most recent drill runs (newest first), optionally of one drill."""
        q = select(DrillRunRow)
        if drill is not None:
            q = q.where(DrillRunRow.drill == drill)
        q = q.order_by(DrillRunRow.started_at.desc(), DrillRunRow.id.desc()).limit(max(limit, 0))
        with self._session() as s:
            return [_drill(row) for row in s.scalars(q)]

    # -- audit --------------------------------------------------------------------------

    def audit(self, action: str, target: str, detail: Mapping[str, Any] | None = None) -> None:
        """Append to the audit log: who (user@host) did `action` to `target`, now."""
        at = self._clock.now()
        _aware(now=at)
        row = AuditEventRow(
            at=at, actor=current_actor(), action=action, target=target, detail=dict(detail or {})
        )
        with self._session(write=True) as s:
            s.add(row)

    def audit_events(self, limit: int = 100) -> list[AuditEventRecord]:
        """The most recent audit events, newest first."""
        q = (
            select(AuditEventRow)
            .order_by(AuditEventRow.at.desc(), AuditEventRow.id.desc())
            .limit(max(limit, 0))
        )
        with self._session() as s:
            return [
                AuditEventRecord(
                    id=r.id, at=r.at, actor=r.actor, action=r.action, target=r.target, detail=r.detail
                )
                for r in s.scalars(q)
            ]


def current_actor() -> str:
    """`user@hostname` for the audit log; works without a login name (containers, cron)."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no USER/LOGNAME and no passwd entry for this uid
        user = f"uid{os.getuid()}"
    return f"{user}@{socket.gethostname()}"


def _one_of(field: str, value: str, allowed: frozenset[str]) -> None:
    # A wrong value here is a drkit bug; refusing it keeps the ledger clean for older readers.
    if value not in allowed:
        raise ValueError(f"catalog: {field} must be one of {sorted(allowed)}, got {value!r}")


def _aware(**values: datetime | None) -> None:
    for name, value in values.items():
        if value is not None and (value.tzinfo is None or value.utcoffset() is None):
            raise ValueError(f"catalog: {name} must be timezone-aware, got naive {value.isoformat()}")


def _rp(row: RecoveryPointRow) -> RecoveryPointRecord:
    return RecoveryPointRecord(
        id=row.id, resource=row.resource, schedule=row.schedule, engine=cast(EngineName, row.engine),
        kind=cast(RecoveryPointKind, row.kind), created_at=row.created_at, region=row.region,
        location=row.location, size_bytes=row.size_bytes, encrypted=row.encrypted, key_id=row.key_id,
        status=cast(RecoveryPointStatus, row.status), watermark_at=row.watermark_at,
        manifest=row.manifest, deleted_at=row.deleted_at,
    )  # fmt: skip


def _job(row: JobRunRow) -> JobRunRecord:
    return JobRunRecord(
        id=row.id, job=row.job, schedule=row.schedule, resource=row.resource, started_at=row.started_at,
        finished_at=row.finished_at, status=cast(JobStatus, row.status), detail=row.detail,
        host=row.host, pid=row.pid,
    )  # fmt: skip


def _drill(row: DrillRunRow) -> DrillRunRecord:
    return DrillRunRecord(
        id=row.id, drill=row.drill, environment=row.environment, engine=row.engine,
        scenario=row.scenario, status=row.status, started_at=row.started_at,
        finished_at=row.finished_at, incident_at=row.incident_at, rto_target_s=row.rto_target_s,
        rto_achieved_s=row.rto_achieved_s, rpo_target_s=row.rpo_target_s,
        rpo_achieved_s=row.rpo_achieved_s, rpo_method=row.rpo_method, report_path=row.report_path,
        report=row.report,
    )  # fmt: skip
