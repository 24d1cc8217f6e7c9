"""`drkit posture [SCHEDULE]`: the recovery posture each schedule's configuration implies.

The judgement is drkit.domain.posture's (pure); this job picks the schedules and supplies
the facts. Facts are live AWS settings (automated backup retention, Multi-AZ, cross-region
automated backups, S3 replication and lag); without them the posture says "unknown (run with
AWS access)" where a fact would decide.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from drkit.config import Schedule
from drkit.domain.posture import Facts, PostureLine, assess
from drkit.jobs.context import Context

__all__ = ["gather_facts", "posture"]

log = logging.getLogger("drkit.posture")


def gather_facts(ctx: Context, schedule: Schedule) -> Facts:
    """Live AWS settings for `schedule`'s resources (drkit.jobs.posture_facts): RDS backup
    retention, Multi-AZ, latest restorable time, cross-region automated backups; S3 versioning,
    replication and RTC. What cannot be read stays unknown; its warning is logged here (callers
    that show warnings call posture_facts.gather_facts themselves, as `drkit posture --with-aws`).
    """
    from drkit.jobs.posture_facts import gather_facts as gather

    gathered = gather(ctx, schedule.name)
    for warning in gathered.warnings:
        log.warning("%s", warning)
    return gathered


def posture(
    ctx: Context,
    schedule_name: str | None,
    *,
    with_facts: bool,
    facts: Mapping[str, Facts] | None = None,  # FACTS IN: by schedule name; overrides gathering
) -> list[PostureLine]:
    """Posture lines of one schedule (or of every schedule, by name, when None).

    `facts` passes facts in (tests, or a caller that gathered them already); otherwise
    `with_facts` gathers them with `gather_facts`, and without it the configuration alone is
    judged. Raises UsageError for an unknown schedule name.
    """
    config = ctx.config()
    names = [schedule_name] if schedule_name is not None else sorted(config.schedules)
    lines: list[PostureLine] = []
    for name in names:
        schedule = config.schedule(name)
        found = facts.get(name) if facts is not None else None
        if found is None and with_facts:
            found = gather_facts(ctx, schedule)
        lines.extend(assess(schedule, found))
    return lines
