"""drkit's retention against restic's own golden cases, plus Span and describe() edge cases.

The fixture (restic's TestApplyPolicy, turned into JSON) lives outside the repository in
../shared/fixtures/restic-keep-policy/cases.json; CI lays shared/ beside the clone. Where it
is absent the cases skip with the reason, except under CI=true, where they fail.
"""

from __future__ import annotations

import json
import os
import re
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from drkit.domain.retention import (
    Decision,
    KeepPolicy,
    Point,
    Span,
    apply_policy,
    plan_retention,
)

FIXTURE = (
    Path(__file__).resolve().parents[2].parent / "shared" / "fixtures" / "restic-keep-policy" / "cases.json"
)


def _load() -> dict[str, Any] | None:
    if not FIXTURE.is_file():
        return None
    data: dict[str, Any] = json.loads(FIXTURE.read_text(encoding="utf-8"))
    return data


DATA = _load()
CASES: list[dict[str, Any]] = DATA["cases"] if DATA else []


def _missing_fixture() -> None:
    reason = f"restic golden cases not found at {FIXTURE} (shared/ is laid beside the clone in CI)"
    if os.environ.get("CI") == "true":
        pytest.fail(reason + "; CI=true, so this is a failure, not a skip")
    pytest.skip(reason)


def _parse_time(text: str) -> datetime:
    # Python 3.11's fromisoformat accepts 'Z' and fractions of any length up to 6 digits.
    return datetime.fromisoformat(text)


_RESTIC_DURATION = re.compile(r"^(?:(\d+)y)?(?:(\d+)m)?(?:(\d+)d)?(?:(\d+)h)?$")


def _restic_span(text: str) -> Span:
    """restic's Duration syntax: <n>y<n>m<n>d<n>h, where m means months."""
    match = _RESTIC_DURATION.match(text)
    assert match and text, f"not a restic duration: {text!r}"
    years, months, days, hours = (int(g) if g else 0 for g in match.groups())
    return Span(years=years, months=months, days=days, hours=hours)


def _policy(raw: dict[str, Any]) -> KeepPolicy:
    kwargs: dict[str, Any] = {}
    for name, value in raw.items():
        kwargs[name] = _restic_span(value) if name.startswith("within") else value
    return KeepPolicy(**kwargs)


def _drkit_reason(restic_reason: str) -> str:
    """restic writes months as `m`; drkit writes `mo` (its `m` is minutes). Same words otherwise."""
    match = re.fullmatch(r"(.*within )(\S+)", restic_reason)
    if not match:
        return restic_reason
    return match.group(1) + str(_restic_span(match.group(2)))


def _points() -> list[Point]:
    assert DATA is not None
    return [Point(id=str(i), created_at=_parse_time(t)) for i, t in enumerate(DATA["snapshots"])]


# One parameter per case; a single None stands for "fixture missing" so that the run says so.
PARAMS: list[dict[str, Any] | None] = list(CASES) if CASES else [None]


@pytest.mark.parametrize(
    "case",
    PARAMS,
    ids=[c["name"].split(":")[0] for c in CASES] if CASES else ["fixture-missing"],
)
def test_restic_golden_case(case: dict[str, Any] | None) -> None:
    if case is None:
        _missing_fixture()
        return
    if "tags" in case["policy"]:
        pytest.skip("tag rule: drkit keep policies have no tags (recovery points are not tagged by users)")

    decisions = apply_policy(_points(), _policy(case["policy"]))

    kept = [d for d in decisions if d.keep]
    assert [int(d.point.id) for d in kept] == case["keep_indices"], case["name"]
    assert [d.point.created_at for d in kept] == [_parse_time(t) for t in case["keep"]]
    assert [list(d.reasons) for d in kept] == [
        [_drkit_reason(r) for r in reasons] for reasons in case["keep_reasons"]
    ]
    # Removed points carry no reasons, and every point gets exactly one decision.
    assert all(d.reasons == () for d in decisions if not d.keep)
    assert sorted(int(d.point.id) for d in decisions) == list(range(len(DATA["snapshots"])))  # type: ignore[index]


def test_fixture_has_every_case() -> None:
    """Guard against a truncated fixture silently shrinking the golden run."""
    if DATA is None:
        _missing_fixture()
        return
    assert len(CASES) == 40
    assert len(DATA["snapshots"]) == 103


def test_case_35_window_before_year_one_is_unbounded() -> None:
    """restic's within_yearly=9999y reaches to year -7983: every year has its newest kept."""
    newest = datetime(2016, 1, 18, 12, 2, 3, tzinfo=UTC)
    points = [
        Point("a", newest),
        Point("b", datetime(1970, 6, 1, tzinfo=UTC)),
        Point("c", datetime(1970, 1, 1, tzinfo=UTC)),
        Point("d", datetime(1, 1, 1, 0, 0, 1, tzinfo=UTC)),
    ]
    decisions = apply_policy(points, KeepPolicy(within_yearly=Span(years=9999)))
    assert [(d.point.id, d.reasons) for d in decisions] == [
        ("a", ("yearly within 9999y",)),
        ("b", ("yearly within 9999y",)),
        ("c", ()),
        ("d", ("yearly within 9999y",)),
    ]


# --- Span.subtract_from: Go's AddDate(-y, -m, -d) then minus hours and seconds ---------------


def _ids(decisions: list[Decision]) -> list[tuple[str, bool, tuple[str, ...]]]:
    return [(d.point.id, d.keep, d.reasons) for d in decisions]


def _utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


@pytest.mark.parametrize(
    ("start", "span", "expected"),
    [
        # Feb 31 overflows into March, as in Go (2016 is a leap year: 29 days).
        (_utc(2016, 3, 31), Span(months=1), _utc(2016, 3, 2)),
        (_utc(2015, 3, 31), Span(months=1), _utc(2015, 3, 3)),
        # Month underflow moves the year back.
        (_utc(2016, 1, 31), Span(months=1), _utc(2015, 12, 31)),
        (_utc(2016, 1, 15), Span(months=13), _utc(2014, 12, 15)),
        # Feb 29 minus a year is "2015-02-29", i.e. 2015-03-01.
        (_utc(2016, 2, 29), Span(years=1), _utc(2015, 3, 1)),
        (_utc(2016, 3, 1), Span(days=1), _utc(2016, 2, 29)),
        # restic's 1y2m3d3h from the fixture's newest snapshot.
        (_utc(2016, 1, 18, 12, 2, 3), Span(1, 2, 3, 3), _utc(2014, 11, 15, 9, 2, 3)),
        # Hours and seconds are elapsed time after the calendar step.
        (_utc(2016, 1, 1, 1, 0, 0), Span(hours=2, seconds=30), _utc(2015, 12, 31, 22, 59, 30)),
        (_utc(2016, 1, 18), Span(), _utc(2016, 1, 18)),
    ],
)
def test_span_subtract_from_matches_go_adddate(start: datetime, span: Span, expected: datetime) -> None:
    assert span.subtract_from(start) == expected


def test_span_before_year_one_is_none() -> None:
    assert Span(years=9999).subtract_from(_utc(2016, 1, 18)) is None
    assert Span(years=2016).subtract_from(_utc(2016, 1, 18)) is None
    assert Span(seconds=1).subtract_from(_utc(1, 1, 1)) is None
    assert Span(days=1).subtract_from(_utc(1, 1, 1, 12)) is None
    # ...but reaching exactly year 1 is still a bound.
    assert Span(years=2015).subtract_from(_utc(2016, 1, 18)) == _utc(1, 1, 18)


def test_span_keeps_the_zone_and_subtracts_hours_as_elapsed_time() -> None:
    plus2 = timezone(timedelta(hours=2))
    start = datetime(2016, 3, 31, 1, 0, tzinfo=plus2)
    result = Span(months=1, hours=3).subtract_from(start)
    assert result == datetime(2016, 3, 1, 22, 0, tzinfo=plus2)
    assert result is not None and result.utcoffset() == timedelta(hours=2)


def test_span_from_timedelta() -> None:
    assert Span.from_timedelta(timedelta(days=30)) == Span(days=30)
    assert Span.from_timedelta(timedelta(hours=36)) == Span(days=1, hours=12)
    assert Span.from_timedelta(timedelta(minutes=90)) == Span(hours=1, seconds=1800)
    with pytest.raises(ValueError, match="negative"):
        Span.from_timedelta(timedelta(seconds=-1))
    with pytest.raises(ValueError, match="whole seconds"):
        Span.from_timedelta(timedelta(milliseconds=1500))
    with pytest.raises(ValueError, match="non-negative"):
        Span(days=-1)


def test_span_text() -> None:
    assert str(Span(days=30)) == "30d"
    assert str(Span(years=1, months=2, days=3, hours=3)) == "1y2mo3d3h"
    assert str(Span.from_timedelta(timedelta(hours=1, minutes=30, seconds=5))) == "1h30m5s"
    assert str(Span()) == "0s"


# --- KeepPolicy -------------------------------------------------------------------------------


def test_describe_lists_rules_in_config_terms() -> None:
    policy = KeepPolicy(last=3, daily=7, within=Span(days=30))
    assert policy.describe() == "last 3, daily 7, within 30d"
    unlimited = KeepPolicy(monthly=-1, within_daily=Span.from_timedelta(timedelta(days=90)))
    assert unlimited.describe() == "monthly all, within_daily 90d"
    assert KeepPolicy().describe() == "nothing (empty policy)"


def test_is_empty_ignores_zero_counts_and_zero_windows() -> None:
    assert KeepPolicy().is_empty()
    assert KeepPolicy(last=0, within=Span()).is_empty()
    assert not KeepPolicy(yearly=-1).is_empty()
    assert not KeepPolicy(within_hourly=Span(seconds=1)).is_empty()


def test_policy_rejects_nonsense_counts() -> None:
    with pytest.raises(ValueError, match=r"keep\.daily"):
        KeepPolicy(daily=-2)


def test_point_requires_timezone() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        Point("p", datetime(2016, 1, 1))


# --- apply_policy details beyond the fixture --------------------------------------------------


def test_empty_policy_keeps_nothing_and_empty_list_is_fine() -> None:
    points = [Point("a", _utc(2016, 1, 1)), Point("b", _utc(2016, 1, 2))]
    assert [d.keep for d in apply_policy(points, KeepPolicy())] == [False, False]
    assert apply_policy([], KeepPolicy(last=1)) == []


def test_buckets_use_utc_wall_clock() -> None:
    """Periods are UTC days even when a point carries another zone."""
    minus5 = timezone(timedelta(hours=-5))
    late = Point("late", datetime(2016, 1, 1, 23, 30, tzinfo=minus5))  # 2016-01-02 04:30 UTC
    early = Point("early", _utc(2016, 1, 2, 3, 0))
    older = Point("older", _utc(2016, 1, 1, 12, 0))
    decisions = apply_policy([older, early, late], KeepPolicy(daily=2))
    # UTC: late and early share 2016-01-02, older is 2016-01-01. On the -05:00 wall clock
    # late would be 2016-01-01 and early would be kept instead of older.
    assert _ids(decisions) == [
        ("late", True, ("daily snapshot",)),
        ("early", False, ()),
        ("older", True, ("daily snapshot",)),
    ]


def test_within_counts_from_newest_point_not_now_and_is_strict() -> None:
    newest = _utc(2016, 1, 18, 12)
    points = [
        Point("newest", newest),
        Point("edge", newest - timedelta(days=7)),  # exactly on the boundary: not strictly after
        Point("inside", newest - timedelta(days=7) + timedelta(seconds=1)),
    ]
    decisions = {d.point.id: d for d in apply_policy(points, KeepPolicy(within=Span(days=7)))}
    assert decisions["newest"].keep and decisions["inside"].keep
    assert not decisions["edge"].keep


def test_points_in_the_future_do_not_anchor_windows_when_now_is_given() -> None:
    now = _utc(2016, 1, 18)
    points = [
        Point("skewed", now + timedelta(days=30)),
        Point("recent", now - timedelta(days=1)),
        Point("older", now - timedelta(days=5)),
    ]
    policy = KeepPolicy(within=Span(days=3))
    by_id = {d.point.id: d.keep for d in apply_policy(points, policy, now=now)}
    assert by_id == {"skewed": True, "recent": True, "older": False}
    # Without `now` the future point anchors the window and the real ones fall out.
    by_id = {d.point.id: d.keep for d in apply_policy(points, policy)}
    assert by_id == {"skewed": True, "recent": False, "older": False}


def test_no_point_before_now_means_windows_reach_back_without_bound() -> None:
    """restic then counts from Go's zero time: every point is inside every window."""
    now = _utc(2016, 1, 1)
    points = [Point("a", _utc(2016, 1, 5)), Point("b", _utc(2016, 1, 4)), Point("c", _utc(2016, 1, 2))]
    decisions = apply_policy(points, KeepPolicy(within=Span(hours=1)), now=now)
    assert [d.keep for d in decisions] == [True, True, True]


# --- plan_retention ---------------------------------------------------------------------------


def test_plan_refuses_empty_policy() -> None:
    with pytest.raises(ValueError, match="empty keep policy"):
        plan_retention([Point("a", _utc(2016, 1, 1))], KeepPolicy(daily=0))


def test_plan_keeps_newest_and_protected_points() -> None:
    newest = _utc(2016, 1, 18)
    points = [
        Point("old-in-use", newest - timedelta(days=300)),
        Point("newest", newest),
        Point("middle", newest - timedelta(days=100)),
        Point("recent-in-use", newest - timedelta(minutes=30)),
    ]
    protected = {"old-in-use", "recent-in-use", "no-such-point"}
    plan = plan_retention(points, KeepPolicy(within=Span(hours=1)), protected=protected)
    # The window counts back from the newest point; safety reasons follow the policy's own.
    assert _ids(plan) == [
        ("newest", True, ("within 1h", "newest recovery point")),
        ("recent-in-use", True, ("within 1h", "protected: in use")),
        ("middle", False, ()),
        ("old-in-use", True, ("protected: in use",)),
    ]


def test_plan_agrees_with_apply_policy_apart_from_safety_reasons() -> None:
    points = [Point(f"p{i:02d}", _utc(2016, 1, 1) + timedelta(hours=7 * i)) for i in range(40)]
    policy = KeepPolicy(daily=3, weekly=2)
    plain = apply_policy(points, policy)
    plan = plan_retention(points, policy)
    assert [d.point for d in plan] == [d.point for d in plain]
    assert [d.keep for d in plan] == [d.keep for d in plain]
    assert plan[0].reasons == (*plain[0].reasons, "newest recovery point")
    assert [d.reasons for d in plan[1:]] == [d.reasons for d in plain[1:]]


def test_plan_breaks_ties_by_id_whatever_the_input_order() -> None:
    same = _utc(2016, 1, 1, 10)
    points = [Point("b", same), Point("a", same), Point("c", same)]
    expected = [("a", True, ("last snapshot", "newest recovery point")), ("b", False, ()), ("c", False, ())]
    assert _ids(plan_retention(points, KeepPolicy(last=1))) == expected
    assert _ids(plan_retention(list(reversed(points)), KeepPolicy(last=1))) == expected


def test_plan_rejects_duplicate_ids() -> None:
    points = [Point("a", _utc(2016, 1, 1)), Point("a", _utc(2016, 1, 2))]
    with pytest.raises(ValueError, match="duplicate"):
        plan_retention(points, KeepPolicy(last=1))
