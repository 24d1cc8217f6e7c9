"""Cron slots and the two decisions the scheduler makes from them (pure: `now` is passed in).

A *slot* is a time a cron expression fires, in the schedule's time zone. `last_slot(now)` is
the newest slot at or before `now`. The slot math itself is drkit.domain.schedule's (DST-aware,
cron's day-of-month/day-of-week OR), shared with `drkit plan` and `backup run`, so the service
and the planner never disagree about which slot is current; SlotTrigger makes APScheduler
wake up at exactly those slots too.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from apscheduler.triggers.base import BaseTrigger

from drkit.domain.schedule import last_slot, next_slot

__all__ = ["SlotTrigger", "apscheduler_trigger", "is_due", "is_missed", "last_slot", "next_slot"]


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


def apscheduler_trigger(cron: str, timezone: str) -> Any:
    """The APScheduler 3 trigger for a five-field cron: wakes up exactly at drkit's slots."""
    return SlotTrigger(cron, timezone)


class SlotTrigger(BaseTrigger):
    """An APScheduler trigger whose fire times are drkit.domain.schedule's slots.

    APScheduler's own CronTrigger differs from cron (and from the slot math that `plan`,
    `backup run` and `--once` use) in three ways: weekday numbers start at Monday, a day
    must match day-of-month AND day-of-week where cron ORs them, and a time that does not
    exist on a DST spring-forward day fires an hour early. One slot math for everything
    means the service wakes up exactly when a slot is due. Pickled into the job store by
    its two fields only.
    """

    def __init__(self, cron: str, timezone: str) -> None:
        next_slot(cron, timezone, datetime(2000, 1, 1, tzinfo=ZoneInfo(timezone)))  # fail early if invalid
        self.cron = cron
        self.timezone = timezone

    def get_next_fire_time(self, previous_fire_time: datetime | None, now: datetime) -> datetime | None:
        # APScheduler's contract (as CronTrigger): the first slot at or after `now`, or, when
        # catching up, the first slot after the previous fire time.
        start = now if previous_fire_time is None else min(now, previous_fire_time + timedelta(microseconds=1))
        return next_slot(self.cron, self.timezone, start - timedelta(microseconds=1)).astimezone(
            ZoneInfo(self.timezone)
        )

    def __getstate__(self) -> dict[str, Any]:
        return {"version": 1, "cron": self.cron, "timezone": self.timezone}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.cron = state["cron"]
        self.timezone = state["timezone"]

    def __str__(self) -> str:
        return f"cron[{self.cron!r}, {self.timezone}]"

    def __repr__(self) -> str:
        return f"<SlotTrigger (cron={self.cron!r}, timezone={self.timezone!r})>"
