"""`drkit posture [SCHEDULE]`: the recovery posture each schedule's configuration implies.

The judgement is drkit.domain.posture's (pure); this job picks the schedules and supplies
the facts. Facts are live AWS settings (automated backup retention, Multi-AZ, cross-region
automated backups, S3 replication and lag); without them the posture says "unknown (run with
AWS access)" where a fact would decide.
"""

from __future__ import annotations

from collections.abc import Mapping

from drkit.config import Schedule
from drkit.domain.posture import Facts, PostureLine, assess
from drkit.jobs.context import Context

__all__ = ["gather_facts", "posture"]


def gather_facts(ctx: Context, schedule: Schedule) -> Facts:
    """Live AWS settings for `schedule`'s resources.

    NOT YET WIRED TO AWS: returns facts that know nothing except when they were taken, so
    every fact-dependent line stays "unknown". To fill: per rds resource describe_db_instances /
    describe_db_clusters (BackupRetentionPeriod, MultiAZ, LatestRestorableTime) and
    describe_db_instance_automated_backups in the DR region (cross-region replication); per s3
    resource get_bucket_versioning, get_bucket_replication (rule present, RTC status) and the
    lag `drkit s3 verify` measures.
    """
    return Facts(observed_at=ctx.clock.now())


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
