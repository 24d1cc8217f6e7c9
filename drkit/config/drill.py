"""Drills (drills/*.yaml): restore a recovery point into isolation, verify it, measure RTO/RPO.

A drill's `source` names a resource of a schedule; that cross-reference is checked by the
loader (it needs the schedule files), everything else here.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BeforeValidator, ConfigDict, Field, WithJsonSchema, model_validator

from drkit.config.fields import (
    AwareTime,
    ConfigModel,
    Cron,
    Document,
    EnvName,
    Name,
    ProblemList,
    Region,
    Text,
    exactly_one,
)
from drkit.config.schedule import Targets
from drkit.domain.expect import Expectation, parse_expect

__all__ = [
    "RDS_RECOVERY_POINTS",
    "Check",
    "Drill",
    "DrillSource",
    "Isolation",
    "ReportConfig",
    "RestoreConfig",
    "SourceRef",
    "VerifyConfig",
]

Scenario = Literal["instance-loss", "region-loss", "data-corruption", "az-loss"]
RDS_RECOVERY_POINTS = ("latest-snapshot", "latest-copy", "latest-restorable", "point-in-time")
ReportFormat = Literal["json", "md", "html", "junit"]
REPORT_FORMATS: tuple[ReportFormat, ...] = ("json", "md", "html", "junit")
SslMode = Literal["disable", "allow", "prefer", "require", "verify-ca", "verify-full"]

_BACKUP_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]*$")


class SourceRef(ConfigModel):
    """A resource of a schedule: `schedules/<schedule>.yaml`, item `name: <resource>`.

    Example::

        schedule: production
        resource: orders
    """

    schedule: Name = Field(description="a file stem in schedules/")
    resource: Name = Field(description="a resource name in that schedule")


class DrillSource(ConfigModel):
    """What to restore: exactly one of `rds` / `postgres`, and which recovery point.

    For rds: `recovery_point` is latest-snapshot, latest-copy, latest-restorable or
    point-in-time (which needs `to_time`). For postgres: `latest` (the default) or a backup id.

    Example::

        rds: {schedule: production, resource: orders}
        recovery_point: point-in-time
        to_time: 2026-11-28T10:00:00Z
    """

    rds: SourceRef | None = None
    postgres: SourceRef | None = None
    recovery_point: Text | None = Field(
        default=None,
        description="rds: latest-snapshot | latest-copy | latest-restorable | point-in-time; "
        "postgres: latest (default) or a backup id",
    )
    to_time: AwareTime | None = Field(default=None, description="for point-in-time: restore to this time")

    model_config = ConfigDict(
        json_schema_extra={"oneOf": [{"required": ["rds"]}, {"required": ["postgres"]}]},
    )

    @model_validator(mode="before")
    @classmethod
    def _postgres_default(cls, data: Any) -> Any:
        if isinstance(data, dict) and "postgres" in data and "recovery_point" not in data:
            return {**data, "recovery_point": "latest"}
        return data

    @model_validator(mode="after")
    def _consistent(self) -> DrillSource:
        problem = exactly_one({"rds": self.rds, "postgres": self.postgres}, "the engine to restore")
        if problem:
            raise ValueError(problem)
        problems = ProblemList()
        point = self.recovery_point
        if self.rds is not None:
            if point is None:
                problems.add(
                    ("recovery_point",), "required for rds: one of " + ", ".join(RDS_RECOVERY_POINTS)
                )
            elif point not in RDS_RECOVERY_POINTS:
                problems.add(
                    ("recovery_point",),
                    f"{point!r} is not an rds recovery point: one of " + ", ".join(RDS_RECOVERY_POINTS),
                )
            elif point == "point-in-time" and self.to_time is None:
                problems.add(
                    ("to_time",), "required with recovery_point: point-in-time, e.g. 2026-11-28T10:00:00Z"
                )
            if self.to_time is not None and point != "point-in-time":
                problems.add(("to_time",), "only used with recovery_point: point-in-time")
        else:
            if point in RDS_RECOVERY_POINTS or point is None or not _BACKUP_ID_RE.match(point):
                problems.add(
                    ("recovery_point",),
                    f"{point!r} is not a postgres recovery point: write 'latest' or a backup id",
                )
            if self.to_time is not None:
                problems.add(("to_time",), "a postgres source restores a backup, not a point in time")
        problems.raise_if_any()
        return self

    @property
    def engine(self) -> Literal["rds", "postgres"]:
        return "rds" if self.rds is not None else "postgres"

    @property
    def ref(self) -> SourceRef:
        """The schedule resource restored, whichever engine."""
        ref = self.rds if self.rds is not None else self.postgres
        assert ref is not None  # guaranteed by the validator
        return ref

    @property
    def point(self) -> str:
        """The recovery point (always set after validation)."""
        assert self.recovery_point is not None
        return self.recovery_point


def _vpc_cidr(text: str) -> str:
    try:
        net = ipaddress.IPv4Network(text, strict=True)
    except ValueError:
        raise ValueError(f"{text!r} is not an IPv4 CIDR block, e.g. 10.99.0.0/16") from None
    if not 16 <= net.prefixlen <= 28:
        raise ValueError(f"{text!r}: a VPC's block must be between /16 and /28")
    return text


VpcCidr = Annotated[
    str, AfterValidator(_vpc_cidr), WithJsonSchema({"type": "string", "description": "IPv4 CIDR, /16 to /28"})
]


class Isolation(ConfigModel):
    """The isolated network a drill restores into (no internet or NAT gateway, no peering).

    Example::

        vpc_cidr: 10.99.0.0/16
    """

    vpc_cidr: VpcCidr = Field(description="address block of the drill's own VPC")


_INSTANCE_CLASS_RE = re.compile(r"^db\.[a-z0-9-]+\.[a-z0-9-]+$")


def _instance_class(text: str) -> str:
    if not _INSTANCE_CLASS_RE.match(text):
        raise ValueError(f"{text!r} is not an RDS instance class, e.g. db.t3.medium")
    return text


class RestoreConfig(ConfigModel):
    """Where an rds drill restores (postgres drills restore into an ephemeral local cluster).

    Example::

        region: us-west-2
        instance_class: db.t3.medium
        isolation: {vpc_cidr: 10.99.0.0/16}
    """

    region: Region = Field(description="region to restore in (for region-loss: the DR region)")
    instance_class: Annotated[str, AfterValidator(_instance_class)] | None = Field(
        default=None, description="default: the source's class"
    )
    isolation: Isolation | None = None


_PROSE = [
    (re.compile(r"^(at least|not less than|minimum|min)\b|^=>"), ">="),
    (re.compile(r"^(at most|not more than|maximum|max|no more than)\b|^=<"), "<="),
    (re.compile(r"^(more|bigger|greater|larger|above|over|gt)\b"), ">"),
    (re.compile(r"^(less|fewer|smaller|below|under|lt)\b"), "<"),
    (re.compile(r"^(equals?|exactly|eq|is)\b|^=(?!=)"), "=="),
]
_NUMBER_RE = re.compile(r"-?\d+(\.\d+)?")


def _expect_text(value: Any) -> Any:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return value


def _expect(text: str) -> str:
    """Check with parse_expect, and refuse prose that parse_expect would take as a literal."""
    parsed = parse_expect(text)
    if parsed.kind == "literal":
        lowered = text.strip().lower()
        for pattern, op in _PROSE:
            if pattern.search(lowered):
                number = _NUMBER_RE.search(lowered)
                example = f"{op} {number.group(0) if number else 1}"
                raise ValueError(
                    f"{text!r} is not an expectation drkit understands: write e.g. '{example}' "
                    "(forms: == N, >= N, <= N, > N, < N, between A and B, not null, or a literal value)"
                )
    return text


ExpectText = Annotated[
    str,
    BeforeValidator(_expect_text),
    AfterValidator(_expect),
    WithJsonSchema(
        {
            "type": ["string", "number", "boolean"],
            "description": "== N, >= N, <= N, > N, < N, between A and B, not null, or a literal value",
        }
    ),
]


class Check(ConfigModel):
    """One verification query. `expect` tests its single value; a `freshness` check returns the
    newest timestamp in the data, which measures the achieved RPO (it needs no expect).

    Example::

        name: orders present
        sql: SELECT count(*) FROM orders
        expect: ">= 1000"
    """

    name: Text
    sql: Text = Field(description="a query returning one value")
    expect: ExpectText | None = None
    freshness: bool = Field(default=False, description="the value is the newest data's timestamp (RPO)")

    @property
    def expectation(self) -> Expectation | None:
        return parse_expect(self.expect) if self.expect is not None else None


def _endpoint(text: str) -> str:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{text!r} is not HOST:PORT, e.g. 127.0.0.1:15432")
    return text


Endpoint = Annotated[
    str, AfterValidator(_endpoint), WithJsonSchema({"type": "string", "pattern": r"^.+:\d{1,5}$"})
]


class VerifyConfig(ConfigModel):
    """How to connect to the restored copy and what to check there.

    `endpoint` connects through e.g. a tunnel instead of the restored instance; `sslmode`
    defaults to verify-full (with the RDS CA bundle) for rds and to the local socket for postgres.

    Example::

        database: orders
        user: drkit_verify
        password_env: DRKIT_VERIFY_PASSWORD
        checks:
          - {name: orders present, sql: "SELECT count(*) FROM orders", expect: ">= 1000"}
          - {name: newest order, sql: "SELECT max(created_at) FROM orders", freshness: true}
    """

    database: Text
    user: Text | None = None
    password_env: EnvName | None = None
    endpoint: Endpoint | None = Field(default=None, description="HOST:PORT to connect to instead")
    sslmode: SslMode | None = None
    checks: tuple[Check, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_checks(self) -> VerifyConfig:
        problems = ProblemList()
        first: dict[str, int] = {}
        for i, check in enumerate(self.checks):
            if check.name in first:
                problems.add(
                    ("checks", i, "name"),
                    f"'{check.name}' is already the name of checks[{first[check.name]}]",
                )
            else:
                first[check.name] = i
        problems.raise_if_any()
        return self

    @property
    def endpoint_address(self) -> tuple[str, int] | None:
        if self.endpoint is None:
            return None
        host, _, port = self.endpoint.rpartition(":")
        return host.strip("[]"), int(port)


def _formats(value: tuple[str, ...]) -> tuple[str, ...]:
    duplicates = sorted({f for f in value if value.count(f) > 1})
    if duplicates:
        raise ValueError("listed twice: " + ", ".join(duplicates))
    return value


class ReportConfig(ConfigModel):
    """Where drill reports go and in which formats.

    Example::

        dir: reports
        formats: [json, md, html, junit]
    """

    dir: Text = Field(default="reports", description="relative to the config directory")
    formats: Annotated[tuple[ReportFormat, ...], AfterValidator(_formats)] = Field(
        default=REPORT_FORMATS, min_length=1
    )


class Drill(Document):
    """A drill file.

    Example::

        environment: demo
        targets: {rto: 15m, rpo: 5m}
        scenario: data-corruption
        source:
          postgres: {schedule: local, resource: app}
        verify:
          database: app
          checks:
            - {name: accounts present, sql: "SELECT count(*) FROM pgbench_accounts", expect: ">= 1"}
    """

    environment: Text = Field(description="e.g. production; reports carry it")
    targets: Targets = Field(description="the RTO and RPO this drill must meet, e.g. {rto: 1h, rpo: 15m}")
    scenario: Scenario = Field(description="the failure the drill rehearses")
    schedule: Cron | None = Field(default=None, description="when the scheduler runs this drill")
    source: DrillSource = Field(description="what to restore: {rds|postgres: {schedule, resource}, ...}")
    restore: RestoreConfig | None = Field(default=None, description="required for rds sources")
    verify: VerifyConfig = Field(description="how to connect to the restored copy and what to check")
    teardown: Literal["always", "on-success", "never"] = "always"
    report: ReportConfig = Field(default_factory=ReportConfig)

    @model_validator(mode="after")
    def _engine_needs(self) -> Drill:
        problems = ProblemList()
        if self.source.engine == "rds" and self.restore is None:
            problems.add(
                ("restore",),
                "required for an rds source: {region: ..., instance_class: ..., isolation: {vpc_cidr: ...}}",
            )
        if self.source.engine == "postgres" and self.restore is not None:
            problems.add(("restore",), "a postgres drill restores into an ephemeral local cluster: remove it")
        problems.raise_if_any()
        return self

    @property
    def engine(self) -> Literal["rds", "postgres"]:
        return self.source.engine
