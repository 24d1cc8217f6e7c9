"""Properties of drkit's retention that must hold for every history and every policy.

The golden restic cases (test_retention_restic.py) pin exact behaviour on one history; these
check the guarantees a user relies on across many generated histories, including points with
equal timestamps and points in zones other than UTC.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta, timezone

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from drkit.domain.retention import KeepPolicy, Point, Span, apply_policy, plan_retention

COUNT_FIELDS = ("last", "hourly", "daily", "weekly", "monthly", "yearly")
WINDOW_FIELDS = (
    "within",
    "within_hourly",
    "within_daily",
    "within_weekly",
    "within_monthly",
    "within_yearly",
)

BASE = datetime(2015, 6, 1, tzinfo=UTC)
ZONES = st.sampled_from([UTC, timezone(timedelta(hours=-5)), timezone(timedelta(hours=5, minutes=30))])

# Offsets from BASE in minutes, up to ~3 years; a small pool of "popular" offsets makes equal
# timestamps (and equal periods) common, which is where order-dependence would hide.
_offsets = st.one_of(
    st.integers(min_value=0, max_value=3 * 366 * 24 * 60),
    st.sampled_from([0, 60, 24 * 60, 7 * 24 * 60, 31 * 24 * 60]),
)


@st.composite
def histories(draw: st.DrawFn, min_size: int = 0, distinct: bool = False) -> list[Point]:
    offsets = draw(st.lists(_offsets, min_size=min_size, max_size=40, unique=distinct))
    points = []
    for i, minutes in enumerate(offsets):
        zone = draw(ZONES)
        points.append(
            Point(id=f"rp-{i:03d}", created_at=(BASE + timedelta(minutes=minutes)).astimezone(zone))
        )
    return points


_counts = st.one_of(st.none(), st.just(-1), st.integers(min_value=0, max_value=12))
_spans = st.one_of(
    st.none(),
    st.builds(
        Span,
        years=st.integers(0, 2),
        months=st.integers(0, 14),
        days=st.integers(0, 60),
        hours=st.integers(0, 48),
        seconds=st.integers(0, 3600),
    ),
)


@st.composite
def policies(draw: st.DrawFn) -> KeepPolicy:
    kwargs: dict[str, object] = {name: draw(_counts) for name in COUNT_FIELDS}
    kwargs.update({name: draw(_spans) for name in WINDOW_FIELDS})
    return KeepPolicy(**kwargs)  # type: ignore[arg-type]


def _non_empty(policy: KeepPolicy) -> KeepPolicy:
    assume(not policy.is_empty())
    return policy


PROPS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPS
@given(points=histories(min_size=1), policy=policies(), data=st.data())
def test_plan_never_removes_the_newest_point(
    points: list[Point], policy: KeepPolicy, data: st.DataObject
) -> None:
    policy = _non_empty(policy)
    protected = data.draw(st.sets(st.sampled_from([p.id for p in points])))
    plan = plan_retention(points, policy, protected)
    newest_time = max(p.created_at for p in points)
    newest = [d for d in plan if d.point.created_at == newest_time]
    # Among points sharing the newest time exactly one is "the newest" (lowest id); it is kept.
    assert plan[0].point in [d.point for d in newest]
    assert plan[0].keep and "newest recovery point" in plan[0].reasons
    assert plan[0].point.id == min(d.point.id for d in newest)
    # Protected points always survive too.
    assert all(d.keep and "protected: in use" in d.reasons for d in plan if d.point.id in protected)


@PROPS
@given(points=histories(), policy=policies(), data=st.data())
def test_plan_does_not_depend_on_input_order(
    points: list[Point], policy: KeepPolicy, data: st.DataObject
) -> None:
    policy = _non_empty(policy)
    shuffled = data.draw(st.permutations(points))
    assert plan_retention(shuffled, policy) == plan_retention(points, policy)


@PROPS
@given(points=histories(), policy=policies())
def test_kept_points_have_reasons_and_removed_points_have_none(
    points: list[Point], policy: KeepPolicy
) -> None:
    runs = [apply_policy(points, policy)]
    if not policy.is_empty():
        runs.append(plan_retention(points, policy))
    for decisions in runs:
        assert len(decisions) == len(points)
        assert sorted(d.point.id for d in decisions) == sorted(p.id for p in points)
        for d in decisions:
            assert d.keep == bool(d.reasons)
        # Newest first.
        times = [d.point.created_at for d in decisions]
        assert times == sorted(times, reverse=True)


@st.composite
def raised(draw: st.DrawFn, policy: KeepPolicy) -> KeepPolicy:
    """`policy` with one or more counts raised: by a positive amount, or to -1 (no limit)."""
    changes: dict[str, int] = {}
    for name in draw(st.sets(st.sampled_from(COUNT_FIELDS), min_size=1)):
        current = getattr(policy, name) or 0
        if current == -1:
            continue  # already unlimited: cannot be raised
        changes[name] = draw(st.one_of(st.just(-1), st.integers(current + 1, current + 15)))
    return dataclasses.replace(policy, **changes)  # type: ignore[arg-type]


@PROPS
@given(points=histories(), policy=policies(), data=st.data())
def test_raising_a_count_never_removes_a_kept_point(
    points: list[Point], policy: KeepPolicy, data: st.DataObject
) -> None:
    bigger = data.draw(raised(policy))
    kept_before = {d.point.id for d in apply_policy(points, policy) if d.keep}
    kept_after = {d.point.id for d in apply_policy(points, bigger) if d.keep}
    assert kept_before <= kept_after


@PROPS
@given(points=histories(distinct=True), n=st.integers(min_value=0, max_value=50))
def test_last_n_keeps_exactly_the_n_newest(points: list[Point], n: int) -> None:
    decisions = apply_policy(points, KeepPolicy(last=n))
    newest = sorted(points, key=lambda p: p.created_at, reverse=True)[: min(n, len(points))]
    assert [d.point for d in decisions if d.keep] == newest
    if n:
        plan = plan_retention(points, KeepPolicy(last=n))
        assert [d.point for d in plan if d.keep] == newest


@PROPS
@given(points=histories(min_size=1), span=_spans.filter(lambda s: s is not None and not s.is_zero()))
def test_within_keeps_everything_after_newest_minus_window(points: list[Point], span: Span | None) -> None:
    assert span is not None
    since = span.subtract_from(max(p.created_at for p in points))
    decisions = apply_policy(points, KeepPolicy(within=span))
    for d in decisions:
        assert d.keep == (since is None or d.point.created_at > since)
