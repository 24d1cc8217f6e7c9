"""Field types shared by the config models: durations, cron, zones, env var names, AWS names.

Each type validates with a message that says what is wrong and how to write it instead,
and carries the JSON Schema an editor needs (a duration is the string `15m`, not ISO 8601).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    Strict,
    WithJsonSchema,
)

from drkit.domain.durations import parse_duration

Loc = tuple[str | int, ...]


class ConfigModel(BaseModel):
    """Base of every config model: immutable, and unknown keys are errors (typos must not pass)."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class Problems(ValueError):
    """Problems found by a cross-field rule, each at a path relative to the model that found it.

    Raised from a model validator; the loader turns each into its own `FILE:LINE: field: message`
    (pydantic alone would report one message at the model's own path).
    """

    def __init__(self, items: Iterable[tuple[Loc, str]]) -> None:
        self.items: list[tuple[Loc, str]] = list(items)
        super().__init__("; ".join(f"{dotted(loc)}: {msg}" if loc else msg for loc, msg in self.items))


class ProblemList:
    """Collects problems inside a model validator; `raise_if_any()` at the end."""

    def __init__(self) -> None:
        self.items: list[tuple[Loc, str]] = []

    def add(self, loc: Loc, message: str) -> None:
        self.items.append((loc, message))

    def raise_if_any(self) -> None:
        if self.items:
            raise Problems(self.items)


def dotted(loc: Loc) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def exactly_one(values: dict[str, object], what: str) -> str | None:
    """Message when not exactly one of the named values is set, else None."""
    given = [name for name, value in values.items() if value is not None]
    names = list(values)
    choices = ", ".join(names[:-1]) + f" or {names[-1]}"
    if len(given) == 1:
        return None
    if not given:
        found = "neither" if len(names) == 2 else "none"
    else:
        found = "both" if len(names) == 2 else " and ".join(given)
    return f"give exactly one of {choices} ({what}); found {found}"


def _duration(value: Any) -> timedelta:
    if isinstance(value, timedelta):
        return value
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise ValueError(f"{value!r} is not a duration: write a number and a unit, e.g. 30s, 15m, 1h, 7d, 4w")
    return parse_duration(str(value))


Duration = Annotated[
    timedelta,
    BeforeValidator(_duration),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": r"^(\d+[smhdw])+$",
            "description": "a duration: 30s, 15m, 1h, 7d, 4w (or 1h30m)",
        }
    ),
]


def _cron(text: str) -> str:
    fields = text.split()
    hint = "minute hour day-of-month month day-of-week, e.g. '0 3 * * *'"
    if len(fields) != 5:
        raise ValueError(f"{text!r} is not a cron expression of five fields ({hint})")
    if not croniter.is_valid(text):
        raise ValueError(f"{text!r} is not a valid cron expression ({hint})")
    return " ".join(fields)


Cron = Annotated[
    str,
    AfterValidator(_cron),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": r"^\s*\S+(\s+\S+){4}\s*$",
            "description": "cron, five fields: minute hour day-of-month month day-of-week",
        }
    ),
]


def _timezone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"{name!r} is not a time zone: use an IANA name, e.g. UTC, Europe/Berlin, America/New_York"
        ) from None
    return name


TimeZone = Annotated[
    str,
    AfterValidator(_timezone),
    WithJsonSchema({"type": "string", "description": "an IANA time zone, e.g. UTC or Europe/Berlin"}),
]


def aware_time(value: Any) -> datetime:
    """A datetime (or ISO-8601 text) that must carry a zone; ValueError otherwise."""
    hint = "write it with a zone, e.g. 2026-11-28T10:00:00Z"
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, date):
        raise ValueError(f"{value.isoformat()} is a date, not a time: {hint}")
    elif isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.strip())
        except ValueError:
            raise ValueError(f"{value!r} is not an ISO-8601 time: {hint}") from None
    else:
        raise ValueError(f"{value!r} is not a time: {hint}")
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{moment.isoformat()} has no time zone: {hint}")
    return moment


AwareTime = Annotated[
    datetime,
    BeforeValidator(aware_time),
    WithJsonSchema({"type": "string", "format": "date-time", "description": "ISO-8601 time with a zone"}),
]

_ENV_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _env_name(text: str) -> str:
    if not _ENV_RE.match(text):
        looks_like_value = any(c in text for c in ":/@ ")
        why = "that looks like a secret itself; " if looks_like_value else ""
        raise ValueError(
            f"{text!r} is not an environment variable name: {why}put the secret in an environment "
            "variable and write its name here, e.g. APP_DATABASE_URL"
        )
    return text


EnvName = Annotated[
    str,
    AfterValidator(_env_name),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": _ENV_RE.pattern,
            "description": "the NAME of an environment variable holding a secret (never the secret)",
        }
    ),
]

_NAME_RE = re.compile(r"^[a-z0-9-]+$")


def _name(text: str) -> str:
    if not _NAME_RE.match(text):
        raise ValueError(f"{text!r} is not a valid name: use lowercase letters, digits and '-'")
    return text


Name = Annotated[str, AfterValidator(_name), WithJsonSchema({"type": "string", "pattern": _NAME_RE.pattern})]

_REGION_RE = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d+$")


def _region(text: str) -> str:
    if not _REGION_RE.match(text):
        raise ValueError(f"{text!r} is not an AWS region, e.g. us-east-1")
    return text


Region = Annotated[
    str, AfterValidator(_region), WithJsonSchema({"type": "string", "pattern": _REGION_RE.pattern})
]

_KMS_RE = re.compile(
    r"^(alias/[A-Za-z0-9/_-]+"
    r"|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
    r"|mrk-[0-9a-f]{32}"
    r"|arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:(key|alias)/.+)$"
)


def _kms_key(text: str) -> str:
    if not _KMS_RE.match(text):
        raise ValueError(f"{text!r} is not a KMS key: write alias/NAME, a key id or a key ARN")
    return text


KmsKey = Annotated[
    str, AfterValidator(_kms_key), WithJsonSchema({"type": "string", "pattern": _KMS_RE.pattern})
]

_BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


def bucket_problem(text: str) -> str | None:
    """Why `text` is not an S3 bucket name, or None."""
    if not _BUCKET_RE.match(text) or ".." in text:
        return f"{text!r} is not an S3 bucket name (3-63 lowercase letters, digits, '.' and '-')"
    return None


def _bucket(text: str) -> str:
    problem = bucket_problem(text)
    if problem:
        raise ValueError(problem)
    return text


Bucket = Annotated[
    str, AfterValidator(_bucket), WithJsonSchema({"type": "string", "pattern": _BUCKET_RE.pattern})
]


def _count(value: int) -> int:
    if value < 1 and value != -1:
        raise ValueError(f"{value} is not a count: write a number >= 1, or -1 for no limit")
    return value


KeepCount = Annotated[
    int,
    Strict(),
    AfterValidator(_count),
    WithJsonSchema(
        {"type": "integer", "minimum": -1, "not": {"const": 0}, "description": ">= 1, or -1: no limit"}
    ),
]

Text = Annotated[str, Field(min_length=1)]


class Document(ConfigModel):
    """A whole config file (schedule, drill or runbook). `name` (the file stem) and `path` are set
    by the loader, not written in the YAML, so they are private attributes behind properties."""

    _name: str = PrivateAttr(default="")
    _path: Path = PrivateAttr(default_factory=Path)

    @property
    def name(self) -> str:
        """The file stem: `drills/local-demo.yaml` -> `local-demo`."""
        return self._name

    @property
    def path(self) -> Path:
        """Where the file was read from (empty when built in code)."""
        return self._path

    def bind(self, name: str, path: Path) -> None:
        """Record the file this document came from (the loader calls this once)."""
        self._name = name
        self._path = path
