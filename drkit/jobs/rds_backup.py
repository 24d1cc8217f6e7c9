"""`drkit backup run` for the `rds:` part of a schedule: due snapshots, then due copies,
then retention. Each resource is independent: one failure is reported and the others go on."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from drkit.errors import DrkitError
from drkit.jobs.context import Context
from drkit.jobs.rds import DAILY, Outcome, copy_resource, snapshot_resource
from drkit.jobs.rds_plan import rds_due
from drkit.jobs.rds_prune import apply_rds_prune, plan_rds_prune

log = logging.getLogger("drkit.rds")


@dataclass
class RdsRun:
    outcomes: list[Outcome] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def run_rds_backups(ctx: Context, schedule: str, *, only: str | None = None, dry_run: bool = False,
                    at: datetime | None = None) -> RdsRun:
    run = RdsRun()
    now = at or ctx.clock.now()
    listings: dict[tuple[str, str], list[Any]] = {}
    work = [w for w in rds_due(ctx, schedule, now, listings=listings) if only is None or w.resource == only]
    # snapshots first: a copy due in the same run copies the snapshot just taken
    for w in sorted(work, key=lambda w: (w.kind != DAILY, w.resource)):
        if w.state != "due":
            run.outcomes.append(Outcome(w.resource, w.kind, "exists" if w.state == "done" else "in-progress",
                                        w.target_id, w.region))
            continue
        if dry_run:
            run.outcomes.append(Outcome(w.resource, w.kind, "would create", w.target_id, w.region))
            continue
        job = ctx.catalog().start_job("rds-snapshot" if w.kind == DAILY else "rds-copy", schedule, w.resource)
        try:
            do = snapshot_resource if w.kind == DAILY else copy_resource
            outcome = do(ctx, schedule, w.resource, at=now)
        except DrkitError as exc:
            ctx.catalog().finish_job(job, "failed", str(exc))
            run.errors.append(f"{w.resource} ({w.kind}): {exc}")
            continue
        ctx.catalog().finish_job(job, "ok", f"{outcome.action} {outcome.snapshot_id}")
        run.outcomes.append(outcome)
        run.warnings += outcome.warnings
    if dry_run:
        return run
    if any(o.action in ("created", "in-progress") for o in run.outcomes):
        listings.clear()  # this run changed what exists: prune decides on a fresh listing
    items, quota = plan_rds_prune(ctx, schedule, only=only, listings=listings)
    run.warnings += quota
    run.deleted = [f"{i.region}:{i.snapshot.id}" for i in apply_rds_prune(ctx, schedule, items)]
    return run
