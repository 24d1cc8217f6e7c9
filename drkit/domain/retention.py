"""Which recovery points to keep: restic's `forget` keep policies, reproduced exactly.

drkit uses restic's semantics so that people who know restic know drkit (CONTRACT.md), and
it is checked against restic's own golden cases (shared/fixtures/restic-keep-policy). In short:

* Points are walked once, newest first (a stable sort, so equal times keep input order).
  A point is kept if ANY rule keeps it; every rule sees every point.
* Count rules (`last`, `hourly`, `daily`, `weekly` (ISO weeks), `monthly`, `yearly`) keep the
  newest point of each of the N most recent periods that have a point (-1 = no limit). A rule
  with count left also keeps the overall oldest point ("oldest daily snapshot"), which
  stretches the history kept while the count is not used up.
* `within: D` keeps every point strictly after `newest - D`, where "newest" is the newest
  point (not now: a schedule that stopped never prunes itself to nothing).
* `within_daily: D` and friends keep the newest point per period inside that window (and the
  overall oldest point when it lies inside the window).

Bucket keys use the UTC wall clock (drkit stores UTC). The module is pure: no I/O, no clock.

    # schedules/production.yaml (a keep block; config.py turns it into a KeepPolicy)
    keep: {last: 3, daily: 7, weekly: 4, within: 2d}

`apply_policy` is restic's ApplyPolicy; `plan_retention` is what drkit's prune uses: it refuses
an empty policy and never removes the newest point or a point that is in use.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, fields
from datetime import UTC, date, datetime, timedelta

__all__ = [
    "Decision",
    "KeepPolicy",
    "Point",
    "Span",
    "apply_policy",
    "plan_retention",
]

NEWEST_REASON = "newest recovery point"
PROTECTED_REASON = "protected: in use"


@dataclass(frozen=True)
class Span:
    """A calendar span like restic's Duration: years and months have no fixed length.

    drkit's own configs give only days and seconds (`Span.from_timedelta`); years and months
    exist so that restic's windows (`1y2m3d3h`, where restic's `m` means months) mean here
    what they mean in restic. All fields are non-negative.
    """

    years: int = 0
    months: int = 0
    days: int = 0
    hours: int = 0
    seconds: int = 0

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"Span.{f.name} must be a non-negative integer, got {value!r}")

    @classmethod
    def from_timedelta(cls, td: timedelta) -> Span:
        """A fixed-length duration as a span of days, hours and seconds (`36h` -> 1d12h)."""
        if td < timedelta(0):
            raise ValueError(f"a keep window cannot be negative: {td}")
        if td.microseconds:
            raise ValueError(f"a keep window must be whole seconds: {td}")
        hours, seconds = divmod(td.seconds, 3600)
        return cls(days=td.days, hours=hours, seconds=seconds)

    def is_zero(self) -> bool:
        """True when every field is 0 (restic treats such a window as not set)."""
        return not (self.years or self.months or self.days or self.hours or self.seconds)

    def subtract_from(self, t: datetime) -> datetime | None:
        """`t` minus this span, as Go's `t.AddDate(-y, -m, -d).Add(-h - s)`.

        The calendar part works on `t`'s wall clock and normalises overflowing days the way
        Go does (2016-03-31 minus 1 month is "2016-02-31", i.e. 2016-03-02); hours and
        seconds are then subtracted as elapsed time. Returns None when the result would fall
        before year 1, which callers treat as "no lower bound" (restic's `9999y`).
        """
        # Go's Date(): month overflow first moves the year, then the day overflows into months.
        month_index = t.month - 1 - self.months
        year = t.year - self.years + month_index // 12
        month = month_index % 12 + 1
        if year < 1:
            # Days are only ever subtracted (fields are >= 0), so the result stays before year 1.
            return None
        day_offset = t.day - 1 - self.days
        ordinal = date(year, month, 1).toordinal() + day_offset
        if ordinal < 1:
            return None
        day = date.fromordinal(ordinal)
        wall = t.replace(year=day.year, month=day.month, day=day.day)
        elapsed = timedelta(hours=self.hours, seconds=self.seconds)
        if wall.tzinfo is None:
            try:
                return wall - elapsed
            except OverflowError:
                return None
        # Go's Add is on the instant, not the wall clock: subtract in UTC, show in t's zone.
        instant = wall.astimezone(UTC)
        if instant - datetime.min.replace(tzinfo=UTC) < elapsed:
            return None
        return (instant - elapsed).astimezone(t.tzinfo)

    def __str__(self) -> str:
        """Compact text: `1y2mo3d4h30m5s` (`mo` for months, because drkit's `m` is minutes)."""
        minutes, seconds = divmod(self.seconds, 60)
        parts = [
            (self.years, "y"),
            (self.months, "mo"),
            (self.days, "d"),
            (self.hours, "h"),
            (minutes, "m"),
            (seconds, "s"),
        ]
        text = "".join(f"{n}{unit}" for n, unit in parts if n)
        return text or "0s"


@dataclass(frozen=True)
class KeepPolicy:
    """restic's keep options. A count of None or 0 means the rule is off, -1 means no limit;
    a window of None or a zero Span means the rule is off."""

    last: int | None = None
    hourly: int | None = None
    daily: int | None = None
    weekly: int | None = None
    monthly: int | None = None
    yearly: int | None = None
    within: Span | None = None
    within_hourly: Span | None = None
    within_daily: Span | None = None
    within_weekly: Span | None = None
    within_monthly: Span | None = None
    within_yearly: Span | None = None

    def __post_init__(self) -> None:
        for name in _COUNT_FIELDS:
            value = getattr(self, name)
            if value is None:
                continue
            if not isinstance(value, int) or isinstance(value, bool) or value < -1:
                raise ValueError(f"keep.{name} must be -1 (no limit) or a count >= 0, got {value!r}")
        for name in _WINDOW_FIELDS:
            value = getattr(self, name)
            if value is not None and not isinstance(value, Span):
                raise ValueError(f"keep.{name} must be a Span, got {value!r}")

    def is_empty(self) -> bool:
        """True when no rule is on; such a policy keeps nothing."""
        counts_off = all(not getattr(self, name) for name in _COUNT_FIELDS)
        windows_off = all(_window(getattr(self, name)) is None for name in _WINDOW_FIELDS)
        return counts_off and windows_off

    def describe(self) -> str:
        """One line for plans and logs, in config terms: `last 3, daily 7, within 30d`."""
        parts: list[str] = []
        for name in _COUNT_FIELDS:
            value = getattr(self, name)
            if value == -1:
                parts.append(f"{name} all")
            elif value:
                parts.append(f"{name} {value}")
        for name in _WINDOW_FIELDS:
            span = _window(getattr(self, name))
            if span is not None:
                parts.append(f"{name} {span}")
        return ", ".join(parts) if parts else "nothing (empty policy)"


_COUNT_FIELDS = ("last", "hourly", "daily", "weekly", "monthly", "yearly")
_WINDOW_FIELDS = (
    "within",
    "within_hourly",
    "within_daily",
    "within_weekly",
    "within_monthly",
    "within_yearly",
)


def _window(span: Span | None) -> Span | None:
    """A window that is actually on, or None (restic ignores zero durations)."""
    return None if span is None or span.is_zero() else span


@dataclass(frozen=True)
class Point:
    """A recovery point as retention sees it: an id and when it was taken."""

    id: str
    created_at: datetime  # timezone-aware

    def __post_init__(self) -> None:
        if self.created_at.tzinfo is None or self.created_at.utcoffset() is None:
            raise ValueError(f"recovery point {self.id!r}: created_at must be timezone-aware")


@dataclass(frozen=True)
class Decision:
    """Keep or remove one point, and why it is kept (no reasons when it is removed)."""

    point: Point
    keep: bool
    reasons: tuple[str, ...]


# Bucket keys on the UTC wall clock. "last" gets the walk position, unique per point.
BucketKey = tuple[int, ...]


def _hour_key(t: datetime) -> BucketKey:
    return (t.year, t.month, t.day, t.hour)


def _day_key(t: datetime) -> BucketKey:
    return (t.year, t.month, t.day)


def _week_key(t: datetime) -> BucketKey:
    iso = t.isocalendar()  # ISO year and week: weeks start on Monday, as Go's ISOWeek
    return (iso.year, iso.week)


def _month_key(t: datetime) -> BucketKey:
    return (t.year, t.month)


def _year_key(t: datetime) -> BucketKey:
    return (t.year,)


_PERIODS: tuple[tuple[str, Callable[[datetime], BucketKey]], ...] = (
    ("hourly", _hour_key),
    ("daily", _day_key),
    ("weekly", _week_key),
    ("monthly", _month_key),
    ("yearly", _year_key),
)


@dataclass
class _CountRule:
    remaining: int  # -1 = no limit
    key: Callable[[datetime, int], BucketKey]
    reason: str
    last_key: BucketKey | None = None


@dataclass
class _WindowRule:
    span: Span
    since: datetime | None  # strictly after this; None = no lower bound
    key: Callable[[datetime], BucketKey]
    reason: str
    last_key: BucketKey | None = None


def _newest_first(points: Sequence[Point]) -> list[Point]:
    # Python's sort is stable also with reverse=True: equal times keep their input order.
    return sorted(points, key=lambda p: p.created_at, reverse=True)


def _anchor(points: Sequence[Point], now: datetime | None) -> datetime | None:
    """The newest point's time, which `within*` windows count back from.

    restic ignores points dated in the future (clock skew); with `now` given, so does drkit.
    With none left, restic counts from Go's zero time, so every window reaches back past
    year 1: None here, i.e. unbounded.
    """
    times = [p.created_at for p in points if now is None or p.created_at < now]
    return max(times) if times else None


def apply_policy(
    points: Sequence[Point], policy: KeepPolicy, *, now: datetime | None = None
) -> list[Decision]:
    """restic's ApplyPolicy: one decision per point, newest first (stable sort).

    An empty policy keeps nothing (as restic's ApplyPolicy; `plan_retention` refuses it).
    `now` only matters for points dated after it, which do not anchor `within*` windows.
    """
    ordered = _newest_first(points)
    if not ordered:
        return []
    anchor = _anchor(ordered, now)

    counts: list[_CountRule] = []
    if policy.last:
        counts.append(_CountRule(policy.last, lambda _t, nr: (nr,), "last snapshot"))
    for name, key in _PERIODS:
        count = getattr(policy, name)
        if count:
            counts.append(_CountRule(count, _by_time(key), f"{name} snapshot"))

    within = _window(policy.within)
    within_since = _since(anchor, within) if within is not None else None

    windows: list[_WindowRule] = []
    for name, key in _PERIODS:
        span = _window(getattr(policy, f"within_{name}"))
        if span is not None:
            windows.append(_WindowRule(span, _since(anchor, span), key, f"{name} within"))

    oldest = len(ordered) - 1
    decisions: list[Decision] = []
    for nr, point in enumerate(ordered):
        t = point.created_at.astimezone(UTC)
        reasons: list[str] = []

        if within is not None and _after(t, within_since):
            reasons.append(f"within {within}")

        for rule in counts:
            if rule.remaining == 0:
                continue
            value = rule.key(t, nr)
            if value != rule.last_key or nr == oldest:
                # A rule with count left also keeps the overall oldest point, even when its
                # period is already represented: that keeps the longest history.
                prefix = "oldest " if value == rule.last_key else ""
                rule.last_key = value
                if rule.remaining > 0:
                    rule.remaining -= 1
                reasons.append(prefix + rule.reason)

        for wrule in windows:
            if not _after(t, wrule.since):
                continue
            value = wrule.key(t)
            if value != wrule.last_key or nr == oldest:
                prefix = "oldest " if value == wrule.last_key else ""
                wrule.last_key = value
                reasons.append(f"{prefix}{wrule.reason} {wrule.span}")

        decisions.append(Decision(point=point, keep=bool(reasons), reasons=tuple(reasons)))
    return decisions


def _by_time(key: Callable[[datetime], BucketKey]) -> Callable[[datetime, int], BucketKey]:
    """A period key as a count-rule key (which also receives the walk position, for `last`)."""

    def keyed(t: datetime, _nr: int) -> BucketKey:
        return key(t)

    return keyed


def _since(anchor: datetime | None, span: Span) -> datetime | None:
    """Start of a window (exclusive) counted back from the anchor; None = unbounded."""
    if anchor is None:
        return None
    return span.subtract_from(anchor.astimezone(UTC))


def _after(t: datetime, since: datetime | None) -> bool:
    return since is None or t > since


def plan_retention(
    points: Sequence[Point],
    policy: KeepPolicy,
    protected: Collection[str] = (),
    *,
    now: datetime | None = None,
) -> list[Decision]:
    """What drkit's prune does: the policy's decisions plus two safety nets.

    * An empty policy is an error (ValueError), never "delete everything".
    * The newest point is always kept and says so ("newest recovery point"), and so is every
      point whose id is in `protected` ("protected: in use", e.g. a copy in flight or a
      drill's source). These reasons are appended after the policy's own, so a plan shows
      which points would survive any policy change. (With restic's rules a non-empty policy
      already keeps the newest point; the net makes that a guarantee rather than a corollary.)

    The result is newest first and does not depend on the input order: points with equal
    times are ordered by id. Ids must be unique.
    """
    if policy.is_empty():
        raise ValueError(
            "empty keep policy: it would delete every recovery point; "
            "set at least one of last, hourly, daily, weekly, monthly, yearly or within*"
        )
    ids = [p.id for p in points]
    if len(set(ids)) != len(ids):
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        raise ValueError(f"duplicate recovery point ids: {', '.join(duplicates)}")

    # Canonical order first (id ascending), so the stable newest-first sort breaks ties by id.
    canonical = sorted(points, key=lambda p: p.id)
    decisions = apply_policy(canonical, policy, now=now)
    protected_ids = set(protected)

    result: list[Decision] = []
    for nr, decision in enumerate(decisions):
        reasons = list(decision.reasons)
        if nr == 0:
            reasons.append(NEWEST_REASON)
        if decision.point.id in protected_ids:
            reasons.append(PROTECTED_REASON)
        result.append(Decision(point=decision.point, keep=bool(reasons), reasons=tuple(reasons)))
    return result
