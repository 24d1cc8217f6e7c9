"""Run a drill's checks (real SQL) against a restored database.

Each check runs in its own read-only transaction with a statement timeout, so one broken
check cannot hide the others and a check can never change the data it verifies. The first
column of the first row is the check's value.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import psycopg

from drkit.domain.drill import Verification
from drkit.domain.expect import parse_expect
from drkit.domain.report import CheckResult
from drkit.pg.conn import connect
from drkit.pg.heartbeat import newest_heartbeat


@dataclass(frozen=True)
class CheckSpec:
    name: str
    sql: str
    expect: str | None = None
    freshness: bool = False


def _aware(value: Any) -> datetime | None:
    if not isinstance(value, datetime):
        return None
    # A `timestamp without time zone` column carries no zone; drkit reads it as UTC.
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def run_checks(dsn: str, checks: Sequence[CheckSpec], *, what: str, statement_timeout_s: int = 300) -> Verification:
    results: list[CheckResult] = []
    markers: list[datetime | None] = []
    with connect(dsn, what=what) as conn:
        conn.execute(f"SET statement_timeout = {int(statement_timeout_s * 1000)}")
        for check in checks:
            results.append(_run_one(conn, check, markers))
        try:
            markers.append(newest_heartbeat(conn))
        except psycopg.Error:
            markers.append(None)
    return Verification(checks=tuple(results), freshness=tuple(markers))


def _run_one(conn: psycopg.Connection, check: CheckSpec, markers: list[datetime | None]) -> CheckResult:
    expected = check.expect if check.expect is not None else ("not null" if check.freshness else None)
    try:
        with conn.transaction():
            conn.execute("SET TRANSACTION READ ONLY")
            row = conn.execute(check.sql.encode()).fetchone()
    except psycopg.Error as exc:
        message = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        return CheckResult(name=check.name, passed=False, expected=expected, actual=None, sql=check.sql, error=message)
    value = row[0] if row else None
    if check.freshness:
        stamp = _aware(value)
        markers.append(stamp)
        if value is not None and stamp is None:
            return CheckResult(
                name=check.name,
                passed=False,
                expected="a timestamp",
                actual=_jsonable(value),
                sql=check.sql,
                error="a freshness check must return a timestamp",
            )
    passed = parse_expect(expected).holds(value) if expected is not None else value is not None
    return CheckResult(name=check.name, passed=passed, expected=expected, actual=_jsonable(value), sql=check.sql)
