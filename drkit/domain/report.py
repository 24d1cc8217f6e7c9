"""The drill report (CONTRACT.md "Drill report (JSON)") as typed, frozen values.

A drill ends in one `DrillReport`. `to_dict()` produces exactly the contract's JSON shape
(schema `drkit.drill-report/1`), with every time in ISO-8601 UTC ending in `Z`, and
`from_dict()` reads it back strictly, so a report that was hand-edited into a wrong shape is
refused with the field that is wrong rather than rendered half-right.

Extensions (never renames): top-level `id`, `drkit_version` and (when known) `host`; `sql`
and `error` on a check when they are known.

`signing_payload()` is what gets signed: canonical JSON of the report dict without its
`signature` key, so the signature can live inside the document it protects.

Pure: no I/O, no clock. Times come in from the drill runner.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from drkit import __version__

__all__ = [
    "CHECK_KEYS",
    "ENGINES",
    "RECOVERY_POINT_KINDS",
    "REPORT_KEYS",
    "RPO_METHODS",
    "SCHEMA",
    "STATUSES",
    "STEP_STATUSES",
    "CheckResult",
    "DrillReport",
    "Objective",
    "RecoveryPointRef",
    "Resources",
    "Signature",
    "StepResult",
    "format_time",
    "parse_time",
    "signing_payload",
]

SCHEMA = "drkit.drill-report/1"
STATUSES = ("passed", "failed", "targets_missed")
ENGINES = ("rds", "postgres")
STEP_STATUSES = ("ok", "failed", "skipped")
RECOVERY_POINT_KINDS = ("snapshot", "copy", "pitr", "dump")
RPO_METHODS = ("data", "metadata")

# The contract's keys, in the contract's order (extensions come after "schema").
# fmt: off
REPORT_KEYS = (
    "schema", "drill", "environment", "scenario", "engine", "status",
    "incident_at", "started_at", "recovered_at", "finished_at",
    "recovery_point", "rto", "rpo", "steps", "checks", "resources", "signature",
)
# fmt: on
CHECK_KEYS = ("name", "passed", "expected", "actual")


# --- times -------------------------------------------------------------------------------


def _utc(value: datetime, what: str) -> datetime:
    """Refuse naive datetimes (their meaning depends on the machine) and normalise to UTC."""
    if not isinstance(value, datetime):
        raise ValueError(f"{what}: expected a datetime, got {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{what}: datetime {value.isoformat()} has no timezone")
    return value.astimezone(UTC)


def format_time(value: datetime) -> str:
    """ISO-8601 in UTC with a `Z`: `2026-11-29T08:55:00Z` (microseconds only when present)."""
    return _utc(value, "time").isoformat().replace("+00:00", "Z")


def parse_time(text: str, what: str = "time") -> datetime:
    """Parse an ISO-8601 time with a zone (`Z` or an offset) into an aware UTC datetime."""
    if not isinstance(text, str):
        raise ValueError(f"{what}: expected an ISO-8601 time string, got {type(text).__name__}")
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{what}: {text!r} is not an ISO-8601 time") from None
    return _utc(value, what)


def _opt_time(value: datetime | None) -> str | None:
    return None if value is None else format_time(value)


def _json_value(value: Any) -> Any:
    """Turn what a check query returned into a JSON value, so reports always serialise.

    Times become ISO strings, integral Decimals ints and other Decimals exact strings (a
    float would silently round a money column), bytes hex; unknown types their str().
    """
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else str(value)
    if isinstance(value, datetime):
        return format_time(value) if value.tzinfo is not None else value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    if isinstance(value, list | tuple):
        return [_json_value(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _json_value(v) for k, v in value.items()}
    return str(value)


def _one_of(value: Any, allowed: tuple[str, ...], what: str) -> None:
    if value not in allowed:
        raise ValueError(f"{what}: {value!r} is not one of {', '.join(allowed)}")


# --- the parts ---------------------------------------------------------------------------


@dataclass(frozen=True)
class RecoveryPointRef:
    """The backup the drill restored from: snapshot, cross-region copy, PITR or dump."""

    id: str
    kind: str
    created_at: datetime
    region: str | None

    def __post_init__(self) -> None:
        _one_of(self.kind, RECOVERY_POINT_KINDS, "recovery_point.kind")
        object.__setattr__(self, "created_at", _utc(self.created_at, "recovery_point.created_at"))

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "created_at": format_time(self.created_at),
            "region": self.region,
        }


@dataclass(frozen=True)
class Objective:
    """An RTO or RPO: the target, what was achieved (None: never got that far), and whether met.

    `method` is for the RPO only: `data` (measured from the newest row found in the restored
    copy) or `metadata` (from the recovery point's own timestamp, when no data marker exists).
    """

    target_s: float
    achieved_s: float | None
    met: bool
    method: str | None = None

    def __post_init__(self) -> None:
        if self.method is not None:
            _one_of(self.method, RPO_METHODS, "rpo.method")

    def to_dict(self, *, with_method: bool) -> dict[str, Any]:
        d: dict[str, Any] = {
            "target_s": float(self.target_s),
            "achieved_s": None if self.achieved_s is None else float(self.achieved_s),
            "met": self.met,
        }
        if with_method:
            d["method"] = self.method
        return d


@dataclass(frozen=True)
class StepResult:
    """One step of the drill (restore, wait, verify, teardown ...), with its timing."""

    name: str
    started_at: datetime
    finished_at: datetime | None
    status: str
    detail: str

    def __post_init__(self) -> None:
        _one_of(self.status, STEP_STATUSES, f"step {self.name!r} status")
        object.__setattr__(self, "started_at", _utc(self.started_at, f"step {self.name!r} started_at"))
        if self.finished_at is not None:
            object.__setattr__(self, "finished_at", _utc(self.finished_at, f"step {self.name!r} finished_at"))

    @property
    def duration_s(self) -> float | None:
        if self.finished_at is None:
            return None
        return (self.finished_at - self.started_at).total_seconds()

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "started_at": format_time(self.started_at),
            "finished_at": _opt_time(self.finished_at),
            "status": self.status,
            "detail": self.detail,
        }


@dataclass(frozen=True)
class CheckResult:
    """One verification check. `actual` is normalised to a JSON value on construction."""

    name: str
    passed: bool
    expected: str | None
    actual: Any
    sql: str | None = None
    error: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "actual", _json_value(self.actual))

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "name": self.name,
            "passed": self.passed,
            "expected": self.expected,
            "actual": self.actual,
        }
        if self.sql is not None:
            d["sql"] = self.sql
        if self.error is not None:
            d["error"] = self.error
        return d


@dataclass(frozen=True)
class Resources:
    """Cloud or local resources the drill created, deleted, and left behind (leaked)."""

    created: tuple[str, ...] = ()
    deleted: tuple[str, ...] = ()
    leaked: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for name in ("created", "deleted", "leaked"):
            object.__setattr__(self, name, tuple(getattr(self, name)))

    def to_dict(self) -> dict[str, Any]:
        return {"created": list(self.created), "deleted": list(self.deleted), "leaked": list(self.leaked)}


@dataclass(frozen=True)
class Signature:
    """Who vouches for the report: algorithm, key id and the base64 signature value."""

    alg: str
    key_id: str
    value: str

    def to_dict(self) -> dict[str, Any]:
        return {"alg": self.alg, "key_id": self.key_id, "value": self.value}


# --- the report --------------------------------------------------------------------------


@dataclass(frozen=True)
class DrillReport:
    """The outcome of one drill run (CONTRACT.md). Build it, then `to_dict()` it.

    `recovered_at` is None when the restored copy never passed every check; `recovery_point`
    is None when the drill failed before choosing one.
    """

    drill: str
    environment: str
    scenario: str
    engine: str
    status: str
    incident_at: datetime
    started_at: datetime
    recovered_at: datetime | None
    finished_at: datetime
    recovery_point: RecoveryPointRef | None
    rto: Objective
    rpo: Objective
    steps: tuple[StepResult, ...]
    checks: tuple[CheckResult, ...]
    resources: Resources
    signature: Signature | None = None
    drkit_version: str = field(default=__version__)
    host: str | None = None

    def __post_init__(self) -> None:
        _one_of(self.status, STATUSES, "status")
        _one_of(self.engine, ENGINES, "engine")
        for name in ("incident_at", "started_at", "finished_at"):
            object.__setattr__(self, name, _utc(getattr(self, name), name))
        if self.recovered_at is not None:
            object.__setattr__(self, "recovered_at", _utc(self.recovered_at, "recovered_at"))
        # Accept lists for convenience; store tuples so the report stays immutable.
        object.__setattr__(self, "steps", tuple(self.steps))
        object.__setattr__(self, "checks", tuple(self.checks))

    @property
    def id(self) -> str:
        """Stable name of this run, also the report's file stem: `<drill>-20261129T085500Z`."""
        return f"{self.drill}-{self.started_at:%Y%m%dT%H%M%SZ}"

    @property
    def stamp(self) -> str:
        """`started_at` as used in file names: `20261129T085500Z`."""
        return f"{self.started_at:%Y%m%dT%H%M%SZ}"

    @property
    def duration_s(self) -> float:
        return (self.finished_at - self.started_at).total_seconds()

    def to_dict(self) -> dict[str, Any]:
        """The contract's JSON shape (plus the documented extensions)."""
        d: dict[str, Any] = {"schema": SCHEMA, "id": self.id, "drkit_version": self.drkit_version}
        if self.host is not None:
            d["host"] = self.host
        d.update(
            {
                "drill": self.drill,
                "environment": self.environment,
                "scenario": self.scenario,
                "engine": self.engine,
                "status": self.status,
                "incident_at": format_time(self.incident_at),
                "started_at": format_time(self.started_at),
                "recovered_at": _opt_time(self.recovered_at),
                "finished_at": format_time(self.finished_at),
                "recovery_point": None if self.recovery_point is None else self.recovery_point.to_dict(),
                "rto": self.rto.to_dict(with_method=False),
                "rpo": self.rpo.to_dict(with_method=True),
                "steps": [s.to_dict() for s in self.steps],
                "checks": [c.to_dict() for c in self.checks],
                "resources": self.resources.to_dict(),
                "signature": None if self.signature is None else self.signature.to_dict(),
            }
        )
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> DrillReport:
        """Read a report dict strictly: wrong schema, missing keys or wrong types raise ValueError.

        Unknown extra keys are ignored (later drkit versions may add extensions within schema 1).
        """
        r = _Reader(d, "report")
        schema = d.get("schema") if isinstance(d, Mapping) else None
        if schema != SCHEMA:
            raise ValueError(f"not a drkit drill report: schema is {schema!r}, expected {SCHEMA!r}")
        rp = r.opt_obj("recovery_point")
        sig = r.opt_obj("signature", required=False)  # unsigned reports may omit it
        res = r.obj("resources")
        return cls(
            drill=r.string("drill"),
            environment=r.string("environment"),
            scenario=r.string("scenario"),
            engine=r.string("engine"),
            status=r.string("status"),
            incident_at=r.time("incident_at"),
            started_at=r.time("started_at"),
            recovered_at=r.opt_time("recovered_at"),
            finished_at=r.time("finished_at"),
            recovery_point=None
            if rp is None
            else RecoveryPointRef(
                id=rp.string("id"),
                kind=rp.string("kind"),
                created_at=rp.time("created_at"),
                region=rp.opt_string("region"),
            ),
            rto=_objective(r.obj("rto"), with_method=False),
            rpo=_objective(r.obj("rpo"), with_method=True),
            steps=tuple(
                StepResult(
                    name=s.string("name"),
                    started_at=s.time("started_at"),
                    finished_at=s.opt_time("finished_at"),
                    status=s.string("status"),
                    detail=s.string("detail"),
                )
                for s in r.objs("steps")
            ),
            checks=tuple(
                CheckResult(
                    name=c.string("name"),
                    passed=c.flag("passed"),
                    expected=c.opt_string("expected"),
                    actual=c.value("actual"),
                    sql=c.opt_string("sql", required=False),
                    error=c.opt_string("error", required=False),
                )
                for c in r.objs("checks")
            ),
            resources=Resources(
                created=res.strings("created"), deleted=res.strings("deleted"), leaked=res.strings("leaked")
            ),
            signature=None
            if sig is None
            else Signature(alg=sig.string("alg"), key_id=sig.string("key_id"), value=sig.string("value")),
            drkit_version=r.opt_string("drkit_version", required=False) or "unknown",
            host=r.opt_string("host", required=False),
        )


def _objective(o: _Reader, *, with_method: bool) -> Objective:
    return Objective(
        target_s=o.number("target_s"),
        achieved_s=o.opt_number("achieved_s"),
        met=o.flag("met"),
        method=o.opt_string("method") if with_method else None,
    )


def signing_payload(report_dict: Mapping[str, Any]) -> bytes:
    """Canonical bytes to sign: the report without `signature`, as sorted, compact UTF-8 JSON.

    Stable across a JSON round trip (Python writes floats with their shortest exact repr), so a
    report written to disk and read back yields the same payload. NaN/Infinity are refused:
    they are not JSON and would make the payload ambiguous.
    """
    body = {k: v for k, v in report_dict.items() if k != "signature"}
    return json.dumps(
        body, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


# --- strict reading ----------------------------------------------------------------------


class _Reader:
    """Typed access to one JSON object, with errors that name the field path."""

    def __init__(self, d: Any, path: str) -> None:
        if not isinstance(d, Mapping):
            raise ValueError(f"{path}: expected an object, got {type(d).__name__}")
        self.d = d
        self.path = path

    def _get(self, key: str, required: bool = True) -> Any:
        if key not in self.d:
            if required:
                raise ValueError(f"{self.path}.{key}: missing")
            return None
        return self.d[key]

    def _bad(self, key: str, want: str, value: Any) -> ValueError:
        return ValueError(f"{self.path}.{key}: expected {want}, got {value!r}")

    def value(self, key: str) -> Any:
        return self._get(key)

    def string(self, key: str) -> str:
        v = self._get(key)
        if not isinstance(v, str):
            raise self._bad(key, "a string", v)
        return v

    def opt_string(self, key: str, required: bool = True) -> str | None:
        v = self._get(key, required)
        if v is not None and not isinstance(v, str):
            raise self._bad(key, "a string or null", v)
        return v

    def flag(self, key: str) -> bool:
        v = self._get(key)
        if not isinstance(v, bool):
            raise self._bad(key, "true or false", v)
        return v

    def number(self, key: str) -> float:
        v = self._get(key)
        if isinstance(v, bool) or not isinstance(v, int | float):
            raise self._bad(key, "a number", v)
        return float(v)

    def opt_number(self, key: str) -> float | None:
        return None if self._get(key) is None else self.number(key)

    def time(self, key: str) -> datetime:
        return parse_time(self._get(key), f"{self.path}.{key}")

    def opt_time(self, key: str) -> datetime | None:
        return None if self._get(key) is None else self.time(key)

    def obj(self, key: str) -> _Reader:
        return _Reader(self._get(key), f"{self.path}.{key}")

    def opt_obj(self, key: str, required: bool = True) -> _Reader | None:
        return None if self._get(key, required) is None else self.obj(key)

    def objs(self, key: str) -> list[_Reader]:
        v = self._get(key)
        if not isinstance(v, list):
            raise self._bad(key, "a list", v)
        return [_Reader(item, f"{self.path}.{key}[{i}]") for i, item in enumerate(v)]

    def strings(self, key: str) -> tuple[str, ...]:
        v = self._get(key)
        if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
            raise self._bad(key, "a list of strings", v)
        return tuple(v)
