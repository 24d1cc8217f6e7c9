"""Schedule math: fire times in a zone (DST included), what is due, worst gaps, snapshot ids.

Fire times are checked against hand-worked calendars (the DST nights of 2026 in Berlin and
New York) and, for zone-free expressions, against croniter's own iteration.
"""

from __future__ import annotations

import contextlib
import re
from datetime import UTC, date, datetime, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest
from croniter import CroniterBadDateError, croniter
from hypothesis import given, settings
from hypothesis import strategies as st

from drkit.domain.schedule import Due, due, last_slot, max_interval, next_slot, slots, snapshot_id

BERLIN = "Europe/Berlin"  # 2026: spring forward 29 March 02:00 -> 03:00, fall back 25 October 03:00 -> 02:00
NEW_YORK = "America/New_York"  # 2026: spring forward 8 March 02:00 -> 03:00, fall back 1 November 02:00 -> 01:00


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def local(
    tz: str, year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0, *, fold: int = 0
) -> datetime:
    """A wall time in `tz` (fold=1: the second of a repeated time), as UTC."""
    return datetime(year, month, day, hour, minute, second, tzinfo=ZoneInfo(tz), fold=fold).astimezone(UTC)


H = timedelta(hours=1)
D = timedelta(days=1)


# --- the expressions the schedules use -------------------------------------------------------


def test_every_30_minutes_fires_on_the_half_hours_in_utc() -> None:
    assert slots("*/30 * * * *", "UTC", utc(2026, 1, 1, 0, 0), utc(2026, 1, 1, 2, 0)) == [
        utc(2026, 1, 1, 0, 30),
        utc(2026, 1, 1, 1, 0),
        utc(2026, 1, 1, 1, 30),
        utc(2026, 1, 1, 2, 0),
    ]
    assert max_interval("*/30 * * * *", "UTC") == timedelta(minutes=30)


@pytest.mark.parametrize("tz", [BERLIN, NEW_YORK, "Australia/Lord_Howe"])  # Lord Howe moves by 30 min
def test_every_30_minutes_keeps_its_interval_across_both_dst_changes(tz: str) -> None:
    # A whole year: the skipped and the repeated hour must neither stretch nor bunch the fires.
    fires = slots("*/30 * * * *", tz, utc(2026, 1, 1), utc(2027, 1, 1))
    assert {b - a for a, b in pairwise(fires)} == {timedelta(minutes=30)}
    assert max_interval("*/30 * * * *", tz) == timedelta(minutes=30)


def test_every_30_minutes_fires_twice_in_the_repeated_hour_in_new_york() -> None:
    fires = slots("*/30 * * * *", NEW_YORK, local(NEW_YORK, 2026, 11, 1, 0, 45), local(NEW_YORK, 2026, 11, 1, 2, 0))
    assert fires == [
        local(NEW_YORK, 2026, 11, 1, 1, 0),  # 01:00 EDT
        local(NEW_YORK, 2026, 11, 1, 1, 30),
        local(NEW_YORK, 2026, 11, 1, 1, 0, fold=1),  # 01:00 EST, an hour later in real time
        local(NEW_YORK, 2026, 11, 1, 1, 30, fold=1),
        local(NEW_YORK, 2026, 11, 1, 2, 0),
    ]
    assert fires[2] - fires[0] == H


def test_daily_at_three_utc() -> None:
    cron = "0 3 * * *"
    assert last_slot(cron, "UTC", utc(2026, 5, 10, 3, 0)) == utc(2026, 5, 10, 3, 0)  # <= at: inclusive
    assert last_slot(cron, "UTC", utc(2026, 5, 10, 2, 59)) == utc(2026, 5, 9, 3, 0)
    assert next_slot(cron, "UTC", utc(2026, 5, 10, 3, 0)) == utc(2026, 5, 11, 3, 0)  # > at: exclusive
    assert next_slot(cron, "UTC", utc(2026, 5, 10, 2, 59)) == utc(2026, 5, 10, 3, 0)
    assert max_interval(cron, "UTC") == D


def test_weekly_on_sunday_at_four() -> None:
    fires = slots("0 4 * * 0", "UTC", utc(2026, 1, 1), utc(2026, 2, 1))
    assert fires == [utc(2026, 1, d, 4) for d in (4, 11, 18, 25)]
    assert all(f.strftime("%A") == "Sunday" for f in fires)
    assert slots("0 4 * * 7", "UTC", utc(2026, 1, 1), utc(2026, 2, 1)) == fires  # 7 is Sunday too
    assert max_interval("0 4 * * 0", "UTC") == 7 * D


def test_quarterly_drill_schedule() -> None:
    cron = "0 2 1 1,4,7,10 *"
    assert slots(cron, "UTC", utc(2026, 1, 1), utc(2027, 1, 1)) == [
        utc(2026, 1, 1, 2),
        utc(2026, 4, 1, 2),
        utc(2026, 7, 1, 2),
        utc(2026, 10, 1, 2),
    ]
    assert last_slot(cron, "UTC", utc(2026, 9, 30)) == utc(2026, 7, 1, 2)
    # Jul 1 -> Oct 1 and Oct 1 -> Jan 1 are 92 days; in Berlin the winter one gains the DST hour.
    assert max_interval(cron, "UTC") == 92 * D
    assert max_interval(cron, BERLIN) == 92 * D + H


# --- DST: the jobs the issue names -------------------------------------------------------------


def test_a_0230_daily_job_still_runs_on_the_spring_forward_day_in_berlin() -> None:
    fires = slots("30 2 * * *", BERLIN, utc(2026, 3, 27), utc(2026, 3, 31))
    assert fires == [
        local(BERLIN, 2026, 3, 27, 2, 30),
        local(BERLIN, 2026, 3, 28, 2, 30),
        utc(2026, 3, 29, 1, 30),  # 02:30 does not exist: runs at 03:30 CEST (shifted by the gap)
        local(BERLIN, 2026, 3, 30, 2, 30),
    ]
    assert fires[2].astimezone(ZoneInfo(BERLIN)).strftime("%H:%M %Z") == "03:30 CEST"
    # the short and the long night of the year: 23 h in spring, 25 h in autumn
    assert fires[3] - fires[2] == 23 * H
    assert max_interval("30 2 * * *", BERLIN) == 25 * H


def test_a_0130_daily_job_runs_once_on_the_fall_back_night_in_new_york() -> None:
    fires = slots("30 1 * * *", NEW_YORK, utc(2026, 10, 31), utc(2026, 11, 3))
    assert fires == [
        local(NEW_YORK, 2026, 10, 31, 1, 30),
        local(NEW_YORK, 2026, 11, 1, 1, 30),  # the first 01:30 (EDT) only, not the EST one
        local(NEW_YORK, 2026, 11, 2, 1, 30),
    ]
    assert fires[1].astimezone(ZoneInfo(NEW_YORK)).strftime("%Z") == "EDT"
    assert fires[2] - fires[1] == 25 * H
    assert max_interval("30 1 * * *", NEW_YORK) == 25 * H


def test_hourly_job_fires_in_both_occurrences_of_berlins_repeated_hour() -> None:
    fires = slots("0 * * * *", BERLIN, utc(2026, 10, 24, 23, 30), utc(2026, 10, 25, 2, 30))
    assert fires == [utc(2026, 10, 25, h) for h in (0, 1, 2)]  # 02:00 CEST, 02:00 CET, 03:00 CET
    local_times = [f.astimezone(ZoneInfo(BERLIN)).strftime("%H:%M %Z") for f in fires]
    assert local_times == ["02:00 CEST", "02:00 CET", "03:00 CET"]


def test_a_time_skipped_by_a_half_hour_dst_change_runs_shifted_not_dropped() -> None:
    # Lord Howe Island springs forward from 02:00 to 02:30 (+10:30 -> +11:00) on 4 October 2026.
    tz = "Australia/Lord_Howe"
    fires = slots("0 * * * *", tz, local(tz, 2026, 10, 4, 0, 30), local(tz, 2026, 10, 4, 3, 30))
    shown = [f.astimezone(ZoneInfo(tz)).strftime("%H:%M") for f in fires]
    assert shown == ["01:00", "02:30", "03:00"]  # 02:00 does not exist: it runs at 02:30
    assert fires[1] - fires[0] == H


@settings(max_examples=60, deadline=None)
@given(hour=st.integers(0, 23), minute=st.integers(0, 59), tz=st.sampled_from([BERLIN, NEW_YORK]))
def test_a_daily_job_fires_exactly_once_on_every_local_day_of_the_year(hour: int, minute: int, tz: str) -> None:
    zone = ZoneInfo(tz)
    year = (local(tz, 2025, 12, 31, 23, 59, 59), local(tz, 2026, 12, 31, 23, 59, 59))
    fires = slots(f"{minute} {hour} * * *", tz, *year)
    days = [f.astimezone(zone).date() for f in fires]
    assert days == [date(2026, 1, 1) + timedelta(days=i) for i in range(365)]
    assert all(timedelta(hours=23) <= b - a <= timedelta(hours=25) for a, b in pairwise(fires))


# --- cross-checks --------------------------------------------------------------------------------

FIELDS = st.tuples(
    st.sampled_from(["0", "*/15", "5,35", "0-10/5", "59"]),
    st.sampled_from(["*", "*/6", "3", "1-3", "23"]),
    st.sampled_from(["*", "1", "1,15", "*/10", "31"]),
    st.sampled_from(["*", "1,4,7,10", "2", "*/2"]),
    st.sampled_from(["*", "0", "1-5", "7", "6"]),
)


@settings(max_examples=80, deadline=None)
@given(fields=FIELDS, start=st.datetimes(datetime(2023, 1, 1), datetime(2028, 1, 1)))
def test_fire_times_in_utc_agree_with_croniter(fields: tuple[str, ...], start: datetime) -> None:
    cron = " ".join(fields)
    start_utc = start.replace(second=0, microsecond=0, tzinfo=UTC)
    window = timedelta(days=2) if fields[1] == "*" else timedelta(days=70)
    expected = []
    walker = croniter(cron, start_utc.replace(tzinfo=None))
    with contextlib.suppress(CroniterBadDateError):  # 31 February: croniter gives up, drkit finds none
        while (found := walker.get_next(datetime)) <= (start_utc + window).replace(tzinfo=None):
            expected.append(found.replace(tzinfo=UTC))
    assert slots(cron, "UTC", start_utc, start_utc + window) == expected


@settings(max_examples=60, deadline=None)
@given(
    cron=st.sampled_from(["*/30 * * * *", "0 3 * * *", "0 4 * * 0", "0 2 1 1,4,7,10 *", "30 2 * * *", "0 0 L * *"]),
    tz=st.sampled_from(["UTC", BERLIN, NEW_YORK]),
    at=st.datetimes(datetime(2024, 1, 1), datetime(2028, 1, 1), timezones=st.just(UTC)),
)
def test_last_and_next_slot_bracket_at_with_nothing_between(cron: str, tz: str, at: datetime) -> None:
    before, after = last_slot(cron, tz, at), next_slot(cron, tz, at)
    assert before <= at < after
    assert slots(cron, tz, before, after) == [after]
    assert after - before <= max_interval(cron, tz)


def test_last_day_of_month_uses_croniters_extensions() -> None:
    fires = slots("0 0 L * *", "UTC", utc(2024, 1, 1), utc(2024, 4, 1))
    assert fires == [utc(2024, 1, 31), utc(2024, 2, 29), utc(2024, 3, 31)]


def test_a_leap_day_job_has_a_four_year_gap() -> None:
    assert max_interval("0 0 29 2 *", "UTC") == timedelta(days=4 * 365 + 1)


def test_an_expression_that_never_fires_is_an_error_not_a_hang() -> None:
    with pytest.raises(ValueError, match="does not fire"):
        last_slot("0 0 31 2 *", "UTC", utc(2026, 1, 1))


def test_naive_times_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        last_slot("0 3 * * *", "UTC", datetime(2026, 1, 1))


# --- due ------------------------------------------------------------------------------------------


def test_due_when_never_done_is_the_newest_slot_with_nothing_missed() -> None:
    assert due("0 3 * * *", "UTC", None, utc(2026, 5, 10, 12)) == Due(slot=utc(2026, 5, 10, 3), missed=())


def test_nothing_is_due_once_the_slot_is_done() -> None:
    at = utc(2026, 5, 10, 12)
    assert due("0 3 * * *", "UTC", utc(2026, 5, 10, 3), at) is None  # done exactly at the slot
    assert due("0 3 * * *", "UTC", utc(2026, 5, 10, 3, 7, 12), at) is None  # finished a bit later
    assert due("0 3 * * *", "UTC", utc(2026, 5, 9, 3, 7), at) == Due(slot=utc(2026, 5, 10, 3))


def test_three_missed_nights_coalesce_into_one_run_that_reports_them() -> None:
    # The service was down from Thursday's snapshot until Monday noon.
    found = due("0 3 * * *", "UTC", utc(2026, 5, 7, 3, 4), utc(2026, 5, 11, 12))
    assert found == Due(slot=utc(2026, 5, 11, 3), missed=(utc(2026, 5, 8, 3), utc(2026, 5, 9, 3), utc(2026, 5, 10, 3)))


def test_a_restart_in_the_same_slot_does_nothing_twice() -> None:
    cron, tz = "30 1 * * *", NEW_YORK
    first = due(cron, tz, local(tz, 2026, 10, 31, 1, 30), local(tz, 2026, 11, 1, 1, 45))
    assert first is not None and first.slot == local(tz, 2026, 11, 1, 1, 30)
    done = first.slot + timedelta(minutes=3)
    # the clock falls back: 01:30 comes round again, an hour later; the job must not run again
    assert due(cron, tz, done, local(tz, 2026, 11, 1, 1, 45, fold=1)) is None
    assert due(cron, tz, done, local(tz, 2026, 11, 2, 1, 30)) == Due(slot=local(tz, 2026, 11, 2, 1, 30))


# --- snapshot ids ---------------------------------------------------------------------------------

RDS_ID = re.compile(r"^[A-Za-z](?!.*--)[A-Za-z0-9-]{0,62}(?<!-)$")


def test_snapshot_id_is_the_documented_shape_in_utc() -> None:
    slot = local(BERLIN, 2026, 3, 29, 3, 30)
    assert snapshot_id("orders", "daily", slot) == "drkit-orders-daily-20260329-0130"
    assert snapshot_id("orders", "daily", slot.astimezone(ZoneInfo(BERLIN))) == "drkit-orders-daily-20260329-0130"


def test_snapshot_ids_sort_by_time_and_repeat_for_the_same_slot() -> None:
    fires = slots("0 3 * * *", "UTC", utc(2026, 12, 25), utc(2027, 1, 15))
    ids = [snapshot_id("orders", "daily", f) for f in fires]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert [snapshot_id("orders", "daily", f) for f in fires] == ids


@settings(max_examples=200)
@given(resource=st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=80))
def test_snapshot_ids_are_valid_rds_identifiers_for_any_name(resource: str) -> None:
    ident = snapshot_id(resource, "weekly", utc(2026, 1, 4, 4))
    assert RDS_ID.match(ident), ident
    assert len(ident) <= 63
    assert ident.endswith("-weekly-20260104-0400")


def test_long_or_cleaned_names_stay_distinct() -> None:
    slot = utc(2026, 1, 4, 4)
    a = snapshot_id("x" * 60 + "-one", "daily", slot)
    b = snapshot_id("x" * 60 + "-two", "daily", slot)
    assert a != b and len(a) <= 63 and len(b) <= 63
    assert snapshot_id("a--b", "daily", slot) != snapshot_id("a-b", "daily", slot)
    assert snapshot_id("a--b", "daily", slot) == snapshot_id("a--b", "daily", slot)


def test_snapshot_id_refuses_bad_kinds_and_naive_slots() -> None:
    with pytest.raises(ValueError, match="kind"):
        snapshot_id("orders", "Daily-1", utc(2026, 1, 1))
    with pytest.raises(ValueError, match="timezone-aware"):
        snapshot_id("orders", "daily", datetime(2026, 1, 1))
