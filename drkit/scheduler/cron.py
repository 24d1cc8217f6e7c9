"""Cron slots and the two decisions the scheduler makes from them (pure: `now` is passed in).

A *slot* is a time a cron expression fires, in the schedule's time zone. `last_slot(now)` is
the newest slot at or before `now`. The slot math itself is drkit.domain.schedule's (DST-aware,
cron's day-of-month/day-of-week OR), shared with `drkit plan` and `backup run`, so the service
and the planner never disagree about which slot is current.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from drkit.domain.schedule import last_slot, next_slot

__all__ = ["apscheduler_trigger", "is_due", "is_missed", "last_slot", "next_slot"]


def is_due(slot: datetime, last_success_start: datetime | None) -> bool:
    """A job is due when its newest slot has no successful run started at or after it.

    This is what makes runs once-per-slot across restarts, replicas and `--once`: whoever
    runs a job re-checks this against the catalog first.
    """
    return last_success_start is None or last_success_start < slot


def is_missed(
    cron: str, timezone: str, now: datetime, *, grace: timedelta, last_start: datetime | None, since: datetime
) -> datetime | None:
    """The slot that was missed, or None.

    A slot is missed when it is more than `grace` old and no run (of any outcome: a failed
    run raises its own alert) started at or after it. Slots before `since` (the newest run
    we know of, or the service's start when there is none) are never counted, so a fresh
    install does not report the nightly backup it never had a chance to take.
    """
    slot = last_slot(cron, timezone, now - grace)
    if last_start is not None:
        return slot if last_start < slot else None
    return slot if slot >= since else None


_DOW_NAMES = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")


def _dow_number(text: str) -> int:
    text = text.strip().lower()
    if text[:3] in _DOW_NAMES and not text.isdigit():
        return _DOW_NAMES.index(text[:3])
    value = int(text)
    if not 0 <= value <= 7:
        raise ValueError(f"day of week {value} is out of range 0-7")
    return value % 7  # cron: 0 and 7 are both Sunday


def cron_dow_to_names(field: str) -> str:
    """A cron day-of-week field written with names, the only spelling APScheduler 3 reads right.

    APScheduler 3's numbers start at Monday=0 (its documented "historical mistake"), cron's
    at Sunday=0: "0 4 * * 0" would run on Mondays. Names mean the same to both.
    """
    if field == "*":
        return field
    days: set[int] = set()
    for token in field.split(","):
        span, _, step_text = token.partition("/")
        step = int(step_text) if step_text else 1
        if span == "*":
            first, last = 0, 6
        elif "-" in span:
            a, b = span.split("-", 1)
            first, last = _dow_number(a), _dow_number(b)
            if b.strip() == "7":
                last = 7  # "5-7" is Friday to Sunday
        else:
            first = _dow_number(span)
            last = 6 if step_text else first
        days.update(d % 7 for d in range(first, last + 1, step))
    return ",".join(_DOW_NAMES[d] for d in sorted(days))


def apscheduler_trigger(cron: str, timezone: str) -> Any:
    """An APScheduler 3 CronTrigger that fires exactly when the five-field `cron` does."""
    from apscheduler.triggers.cron import CronTrigger

    fields = cron.split()
    if len(fields) == 5:
        fields[4] = cron_dow_to_names(fields[4])
    return CronTrigger.from_crontab(" ".join(fields), timezone=ZoneInfo(timezone))
