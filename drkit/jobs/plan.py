"""`drkit plan [SCHEDULE] [--at TIME]`: what the scheduler would do at TIME, with reasons.

It reads the same listings and makes the same decisions as `backup run` and `prune`, and
changes nothing.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from drkit.domain.schedule import last_slot
from drkit.jobs.context import Context
from drkit.jobs.pgwiring import iter_pg_resources, open_store
from drkit.pg.engine import list_backups


@dataclass(frozen=True)
class PlannedAction:
    schedule: str
    action: str  # snapshot | copy | backup | prune | keep | wait
    resource: str
    region: str | None
    target: str | None
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def plan(ctx: Context, schedule: str | None, at: datetime) -> tuple[list[PlannedAction], list[str]]:
    cfg = ctx.config()
    names = [schedule] if schedule else sorted(cfg.schedules)
    actions: list[PlannedAction] = []
    warnings: list[str] = []
    for name in names:
        sched = cfg.schedule(name)
        for res in iter_pg_resources(cfg, name):
            slot = last_slot(res.spec.backups.cron, sched.timezone, at)
            newest = next(iter(list_backups(open_store(cfg, res), res.name)), None)
            if newest is None or newest.created_at < slot:
                since = "no backup yet" if newest is None else f"newest is {newest.id}"
                actions.append(PlannedAction(name, "backup", res.name, None, None,
                                             f"slot {slot:%Y-%m-%d %H:%M} UTC of {res.spec.backups.cron!r}: {since}"))
        if sched.rds:
            from drkit.jobs.rds_plan import rds_due
            from drkit.jobs.rds_prune import plan_rds_prune

            listings: dict[tuple[str, str], list[Any]] = {}
            for w in rds_due(ctx, name, at, listings=listings):
                if w.state == "done":
                    continue
                verb = ("snapshot" if w.kind == "daily" else "copy") if w.state == "due" else "wait"
                actions.append(PlannedAction(name, verb, w.resource, w.region, w.target_id, w.reason))
            items, quota = plan_rds_prune(ctx, name, listings=listings)
            warnings += quota
            for i in items:
                if not i.keep:
                    actions.append(PlannedAction(name, "prune", i.resource, i.region, i.snapshot.id,
                                                 f"{i.kind}: no keep rule holds it"))
    return actions, warnings
