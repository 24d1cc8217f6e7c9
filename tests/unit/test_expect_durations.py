from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from drkit.domain.durations import format_duration, parse_duration
from drkit.domain.expect import parse_expect


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30s", 30), ("15m", 900), ("1h", 3600), ("7d", 604800), ("4w", 2419200), ("1h30m", 5400)],
)
def test_durations_parse(text: str, seconds: int) -> None:
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["", "15", "m", "1y", "1.5h", "-1h", "0s", "1 h", "15min"])
def test_bad_durations_say_how_to_write_one(text: str) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


def test_format_duration_reads_like_a_person_writes() -> None:
    assert format_duration(41.25) == "41.2s"
    assert format_duration(812.4) == "13m32s"
    assert format_duration(timedelta(hours=2, minutes=5)) == "2h05m"
    assert format_duration(timedelta(days=3, hours=4)) == "3d4h"


@pytest.mark.parametrize(
    ("expect", "value", "holds"),
    [
        (">= 1000", 1000, True),
        (">= 1000", 999, False),
        ("> 0", Decimal("0.5"), True),
        ("== 0", 0, True),
        ("== 0", 1, False),
        ("<= 3", 4, False),
        ("< 3", 2, True),
        ("between 1 and 3", 3, True),
        ("between 1 and 3", 4, False),
        ("not null", 0, True),
        ("not null", None, False),
        ("t", True, True),
        ("t", False, False),
        ("42", 42, True),
        ("42", "42", True),
        ("active", "active", True),
        ("active", "inactive", False),
        (">= 5", None, False),
        (">= 5", "abc", False),
    ],
)
def test_expectations(expect: str, value: object, holds: bool) -> None:
    assert parse_expect(expect).holds(value) is holds


def test_literal_timestamp_compares_in_iso_form() -> None:
    assert parse_expect("2026-11-29T10:00:00+00:00").holds(datetime(2026, 11, 29, 10, tzinfo=UTC))


@pytest.mark.parametrize("expect", ["", ">= x", "between 3 and 1", "between a and 2"])
def test_bad_expectations_are_refused(expect: str) -> None:
    with pytest.raises(ValueError):
        parse_expect(expect)
