"""Schedule math: when a cron expression fires, what is due now, and the worst gap it allows.

Pure: no clock reads (`at` is passed in), no I/O. Cron expressions have five fields and run
in the schedule file's `timezone` (CONTRACT.md); every datetime returned is aware UTC.

    # schedules/production.yaml
    timezone: Europe/Berlin
    rds:
      - name: orders
        snapshots: {cron: "0 3 * * *", keep: {daily: 7}}

    due("0 3 * * *", "Europe/Berlin", last_done, at)      # Due(slot=..., missed=(...)) or None
    snapshot_id("orders", "daily", due.slot)              # 'drkit-orders-daily-20261128-0200'

Calendar rules are standard cron (croniter's parser): day-of-month and day-of-week are ORed
when both are restricted, 0 and 7 are Sunday, `L` and `#` work. Fire times are local wall
times, mapped to UTC with these rules for daylight saving time (checked in tests for
Europe/Berlin and America/New_York):

* A wall time that a spring-forward skips runs shifted by the gap (02:30 -> 03:30 CEST, as
  APScheduler 3 and Python's fold=0 do), so a daily job still runs that day, and a job that
  runs every hour keeps its interval (01:30 -> 03:00 is 30 minutes for `*/30`).
* A wall time that a fall-back repeats runs in both occurrences for a job that runs every
  hour (hour field `*`: it keeps its interval), and at the first occurrence only for any other
  job (specific hours: `0 3 * * *`, `30 1 * * *`), which runs exactly once on its day.

These make `max_interval` honest: a daily 01:30 job in New York has a 25-hour gap on the
fall-back night, and the worst-case RPO of that schedule is 25 hours, not 24.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from itertools import pairwise
from zoneinfo import ZoneInfo

from croniter import CroniterBadDateError, croniter

__all__ = [
    "REFERENCE_START",
    "Due",
    "due",
    "last_slot",
    "max_interval",
    "next_slot",
    "slots",
    "snapshot_id",
]

# Where max_interval starts looking when not told: a fixed instant keeps the answer
# deterministic (posture output does not change from one run to the next), and 2024 is a leap
# year, so gaps across February 29 are seen.
REFERENCE_START = datetime(2024, 1, 1, tzinfo=UTC)

# How far back last_slot and forward next_slot search. The rarest firing a valid cron can
# have is February 29 (every 4 years, 8 across a skipped century leap day); 30 years is plenty.
_SEARCH_LIMIT = timedelta(days=30 * 366)


@dataclass(frozen=True)
class _Cron:
    """A parsed cron expression in a zone."""

    expr: str
    zone: ZoneInfo
    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    every_hour: bool  # hour field covers all 24 hours: fires in both runs of a repeated hour
    # Fast day matching for plain fields (numbers, ranges, steps, lists); None means the day
    # fields use croniter extensions (L, #, W) and croniter itself enumerates the days.
    doms: frozenset[int] | None
    months: frozenset[int] | None
    dows: frozenset[int] | None  # 0 = Sunday, as in cron
    day_or: bool  # both day fields restricted: a day matches if either does (standard cron)
    plain_days: bool


def _expanded(field: list[int | str], full: range) -> frozenset[int] | None:
    """croniter's expansion of one field as a set of ints; '*' -> the full range; None if exotic."""
    if field == ["*"]:
        return frozenset(full)
    if all(isinstance(v, int) for v in field):
        return frozenset(int(v) for v in field)
    return None


@lru_cache(maxsize=512)
def _parse(cron: str, tz: str) -> _Cron:
    fields = cron.split()
    if len(fields) != 5 or not croniter.is_valid(cron):
        raise ValueError(f"{cron!r} is not a five-field cron expression, e.g. '0 3 * * *'")
    (minute, hour, dom, month, dow), nth = croniter.expand(cron)
    minutes = _expanded(minute, range(60))
    hours = _expanded(hour, range(24))
    if minutes is None or hours is None:  # croniter allows no extensions here; be safe
        raise ValueError(f"{cron!r}: unsupported minute or hour field")
    doms = _expanded(dom, range(1, 32))
    months = _expanded(month, range(1, 13))
    dows = _expanded(dow, range(7))
    if dows is not None:
        dows = frozenset(d % 7 for d in dows)  # 7 is Sunday too
    plain = doms is not None and months is not None and dows is not None and not nth
    return _Cron(
        expr=cron,
        zone=ZoneInfo(tz),
        minutes=tuple(sorted(minutes)),
        hours=tuple(sorted(hours)),
        every_hour=hours == frozenset(range(24)),
        doms=doms,
        months=months,
        dows=dows,
        # cron ORs the two day fields when both are restricted. "*/10" counts as restricted
        # (it expands to 1,11,21,31), as in Kubernetes CronJobs; Vixie cron would AND it.
        day_or=dom != ["*"] and dow != ["*"],
        plain_days=plain,
    )


def _days(spec: _Cron, first: date, last: date) -> Iterator[date]:
    """The local calendar days in [first, last] on which the expression fires, ascending."""
    if spec.plain_days:
        assert spec.doms is not None and spec.months is not None and spec.dows is not None
        day = first
        while day <= last:
            if day.month in spec.months:
                in_dom = day.day in spec.doms
                in_dow = day.isoweekday() % 7 in spec.dows
                if (in_dom or in_dow) if spec.day_or else (in_dom and in_dow):
                    yield day
            day += timedelta(days=1)
        return
    # L, #, W: let croniter walk the calendar at day granularity (naive: no DST involved).
    day_fields = spec.expr.split(maxsplit=2)[2]
    walker = croniter(f"0 0 {day_fields}", datetime.combine(first - timedelta(days=1), time()))
    while True:
        try:
            found: datetime = walker.get_next(datetime)
        except CroniterBadDateError:
            return
        if found.date() > last:
            return
        yield found.date()


def _to_utc(spec: _Cron, local: datetime) -> list[datetime]:
    """The UTC instants at which the local wall time `local` fires (see the module's DST rules)."""
    first = local.replace(tzinfo=spec.zone).astimezone(UTC)  # fold=0
    second = local.replace(tzinfo=spec.zone, fold=1).astimezone(UTC)
    if first == second:
        return [first]
    exists = first.astimezone(spec.zone).replace(tzinfo=None) == local
    if exists:  # repeated by a fall-back: first < second
        return [first, second] if spec.every_hour else [first]
    # skipped by a spring-forward: fold=0 reads it with the offset before the jump, i.e.
    # shifted later by the gap (02:30 -> 03:30). For an every-hour job that lands on a fire
    # that exists anyway (one set, no duplicate); in a 30-minute DST zone it keeps the gap short.
    return [first]


def _aware(value: datetime, name: str) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware, got {value.isoformat()}")
    return value.astimezone(UTC)


def _fires(spec: _Cron, start: datetime, end: datetime) -> list[datetime]:
    """Fire times in (start, end], UTC, ascending, without duplicates."""
    # Local dates may differ from UTC dates by up to a day either way; filter afterwards.
    first = start.astimezone(spec.zone).date() - timedelta(days=1)
    last = end.astimezone(spec.zone).date() + timedelta(days=1)
    found: set[datetime] = set()
    for day in _days(spec, first, last):
        for hour in spec.hours:
            for minute in spec.minutes:
                for instant in _to_utc(spec, datetime.combine(day, time(hour, minute))):
                    if start < instant <= end:
                        found.add(instant)
    return sorted(found)


def slots(cron: str, tz: str, start: datetime, end: datetime) -> list[datetime]:
    """Every fire time in (start, end], aware UTC, ascending."""
    spec = _parse(cron, tz)
    start, end = _aware(start, "start"), _aware(end, "end")
    if end <= start:
        return []
    return _fires(spec, start, end)


@lru_cache(maxsize=4096)
def last_slot(cron: str, tz: str, at: datetime) -> datetime:
    """The newest fire time <= at (UTC). ValueError if the expression never fires."""
    spec = _parse(cron, tz)
    at = _aware(at, "at")
    window = timedelta(days=2)
    while True:
        found = _fires(spec, at - window, at)
        if found:
            return found[-1]
        if window >= _SEARCH_LIMIT:
            raise ValueError(f"{cron!r} does not fire in the {_SEARCH_LIMIT.days // 366} years before {at}")
        window *= 8  # 2, 16, 128, 1024, 8192 days, then the limit


@lru_cache(maxsize=4096)
def next_slot(cron: str, tz: str, at: datetime) -> datetime:
    """The first fire time strictly after at (UTC). ValueError if the expression never fires."""
    spec = _parse(cron, tz)
    at = _aware(at, "at")
    window = timedelta(days=2)
    while True:
        found = _fires(spec, at, at + window)
        if found:
            return found[0]
        if window >= _SEARCH_LIMIT:
            raise ValueError(f"{cron!r} does not fire in the {_SEARCH_LIMIT.days // 366} years after {at}")
        window *= 8


@lru_cache(maxsize=1024)
def max_interval(cron: str, tz: str, *, horizon_days: int = 400, since: datetime = REFERENCE_START) -> timedelta:
    """The longest gap between two consecutive fires: the worst-case RPO the schedule allows.

    Looks at `horizon_days` from `since` (default: a fixed instant, so that the answer is
    deterministic; 400 days cover every DST change of a year), plus the fire before and after
    that window, so a rare expression (yearly, February 29) still yields its real gap.
    """
    if horizon_days < 1:
        raise ValueError("horizon_days must be at least 1")
    since = _aware(since, "since")
    end = since + timedelta(days=horizon_days)
    fires = [last_slot(cron, tz, since), *slots(cron, tz, since, end), next_slot(cron, tz, end)]
    fires = sorted(set(fires))
    return max(b - a for a, b in pairwise(fires))


@dataclass(frozen=True)
class Due:
    """What to do now: act on `slot`; `missed` are the slots skipped before it (for reporting).

    Missed slots are coalesced into this one run (APScheduler's `coalesce`): a service that
    was down for three nights takes one snapshot when it comes back, not three.
    """

    slot: datetime
    missed: tuple[datetime, ...] = ()


def due(cron: str, tz: str, last_done: datetime | None, at: datetime) -> Due | None:
    """What is due at `at`, given when this work last happened (`last_done`, None: never).

    None if `last_done >= last_slot(at)` (this slot's work is done). Otherwise the newest slot
    and the slots after `last_done` and before it, which were missed. When the work has never
    been done, nothing counts as missed: there is no history to have missed.
    """
    at = _aware(at, "at")
    slot = last_slot(cron, tz, at)
    if last_done is None:
        return Due(slot=slot)
    last_done = _aware(last_done, "last_done")
    if last_done >= slot:
        return None
    missed = tuple(s for s in slots(cron, tz, last_done, slot) if s < slot)
    return Due(slot=slot, missed=missed)


_KIND_RE = re.compile(r"^[a-z][a-z0-9]{0,11}$")
_MAX_ID = 63  # RDS DB snapshot and cluster snapshot identifiers: 1-63 characters


def snapshot_id(resource: str, kind: str, slot: datetime) -> str:
    """A deterministic, sortable RDS snapshot identifier for `resource`'s `kind` point at `slot`.

    `drkit-{resource}-{kind}-{YYYYMMDD-HHMM}` (slot in UTC): the same slot always gives the same
    id, so re-running a job creates nothing new ("already exists" is success), and ids of one
    resource and kind sort by time. The result is a valid RDS identifier (letters, digits,
    hyphens; starts with a letter; at most 63 characters; no double or trailing hyphen). A
    resource name that is too long, or that needed cleaning, is shortened and suffixed with 8
    hex digits of its SHA-256, so two different names never share ids.
    """
    if not _KIND_RE.match(kind):
        raise ValueError(f"snapshot kind {kind!r}: use 1-12 lowercase letters or digits, e.g. daily, weekly")
    stamp = _aware(slot, "slot").strftime("%Y%m%d-%H%M")
    budget = _MAX_ID - len("drkit-") - len(f"-{kind}-{stamp}")
    clean = re.sub(r"-{2,}", "-", re.sub(r"[^a-z0-9]", "-", resource.lower())).strip("-")
    if clean != resource or len(clean) > budget:
        digest = hashlib.sha256(resource.encode()).hexdigest()[:8]
        head = clean[: budget - len(digest) - 1].rstrip("-")
        clean = f"{head}-{digest}" if head else digest
    return f"drkit-{clean}-{kind}-{stamp}"
