"""What the catalog's job_runs say about one scheduled job: its newest run and newest success.

Read with the scheduler's own engine (the Catalog API lists runs but cannot ask for "the
newest successful run of this job, schedule and resource" in one query).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, func, select
from sqlalchemy.exc import DBAPIError

from drkit.catalog.connect import db_error
from drkit.catalog.models import JobRunRow
from drkit.jobs.registry import JobSpec


@dataclass(frozen=True)
class RunHistory:
    last_start: datetime | None  # newest run of any outcome
    last_success_start: datetime | None
    last_success_end: datetime | None


class RunState:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def history(self, spec: JobSpec) -> RunHistory:
        base = [JobRunRow.job == spec.kind, JobRunRow.schedule == spec.schedule]
        base.append(JobRunRow.resource.is_(None) if spec.resource is None else JobRunRow.resource == spec.resource)
        any_q = select(func.max(JobRunRow.started_at)).where(*base)
        ok_q = (
            select(JobRunRow.started_at, JobRunRow.finished_at)
            .where(*base, JobRunRow.status == "ok")
            .order_by(JobRunRow.started_at.desc())
            .limit(1)
        )
        try:
            with self._engine.connect() as conn:
                last_start = conn.execute(any_q).scalar()
                ok = conn.execute(ok_q).first()
        except DBAPIError as exc:
            raise db_error(self._engine.url, exc) from exc
        # func.max bypasses the UTCDateTime type on SQLite: normalise here.
        last_start = _aware(last_start)
        return RunHistory(last_start, _aware(ok[0]) if ok else None, _aware(ok[1]) if ok else None)


def _aware(value: object) -> datetime | None:
    from datetime import UTC

    if value is None:
        return None
    if isinstance(value, str):  # SQLite text through an untyped aggregate
        value = datetime.fromisoformat(value)
    assert isinstance(value, datetime)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
