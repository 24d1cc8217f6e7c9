"""Every piece of recurring work the configuration asks for, as a flat list of JobSpecs.

The scheduler (`drkit scheduler run`) and `--once` both start here: `job_specs(cfg)` says what
to run and when, `run_job(ctx, spec)` runs one of them through the same job functions the CLI
calls. Nothing here knows about APScheduler, leaders or alerts.

    specs = job_specs(ctx.config())
    run_job(ctx, next(s for s in specs if s.id == "local:pg-backup:app"))

Kinds (the `job` column of the catalog's job_runs):

| kind           | from                                   | does                                   |
| -------------- | -------------------------------------- | -------------------------------------- |
| `pg-backup`    | `postgres[*].backups.cron`             | `drkit backup run --only R`, then prune R |
| `heartbeat`    | every `postgres[*]`, every minute      | stamp the source (data-level RPO)      |
| `rds-snapshot` | `rds[*].snapshots.cron`                | snapshot the instance/cluster          |
| `rds-copy`     | `rds[*].copies.cron`                   | copy the newest snapshot to the DR region |
| `s3-verify`    | `s3[*].verify.cron`                    | compare source and replica             |
| `drill`        | a drill's `schedule:`                  | `drkit drill run D`                    |
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from drkit.errors import DrkitError

if TYPE_CHECKING:
    from drkit.config import Config
    from drkit.jobs.context import Context

log = logging.getLogger("drkit.scheduler")
KINDS = ("pg-backup", "heartbeat", "rds-snapshot", "rds-copy", "s3-verify", "drill")
HEARTBEAT_CRON = "* * * * *"
# Drill files carry no timezone: their cron runs in UTC (CONTRACT.md: the file's zone, default UTC).
DRILL_TIMEZONE = "UTC"


@dataclass(frozen=True)
class JobSpec:
    """One recurring job. `id` is stable across restarts and config reloads (the job store's key).

    For a drill, `schedule` is the schedule its source belongs to (whose `notify:` gets the
    alerts) and `resource` is the drill's name.
    """

    id: str
    schedule: str
    kind: str
    resource: str | None
    cron: str
    timezone: str


def _spec(schedule: str, kind: str, resource: str, cron: str, timezone: str) -> JobSpec:
    return JobSpec(f"{schedule}:{kind}:{resource}", schedule, kind, resource, cron, timezone)


def job_specs(cfg: Config) -> list[JobSpec]:
    """Every job the configuration implies, in a stable order (schedules, then drills, by name)."""
    specs: list[JobSpec] = []
    for name in sorted(cfg.schedules):
        sched = cfg.schedules[name]
        tz = str(sched.timezone)
        for rds in sched.rds:
            if rds.snapshots is not None:
                specs.append(_spec(name, "rds-snapshot", rds.name, str(rds.snapshots.cron), tz))
            if rds.copies is not None:
                specs.append(_spec(name, "rds-copy", rds.name, str(rds.copies.cron), tz))
        for s3 in sched.s3:
            if s3.verify is not None:
                specs.append(_spec(name, "s3-verify", s3.name, str(s3.verify.cron), tz))
        for pg in sched.postgres:
            specs.append(_spec(name, "pg-backup", pg.name, str(pg.backups.cron), tz))
            specs.append(_spec(name, "heartbeat", pg.name, HEARTBEAT_CRON, tz))
    for drill_name in sorted(cfg.drills):
        drill = cfg.drills[drill_name]
        if drill.schedule is None:
            continue
        ref = drill.source.postgres or drill.source.rds
        owner = str(ref.schedule) if ref is not None else ""
        specs.append(_spec(owner, "drill", drill_name, str(drill.schedule), DRILL_TIMEZONE))
    return specs


def run_job(ctx: Context, spec: JobSpec) -> None:
    """Run one job now; raises DrkitError (one line) if it failed."""
    runner = _DISPATCH.get(spec.kind)
    if runner is None:
        raise DrkitError(f"job {spec.id}: unknown job kind {spec.kind!r} (known: {', '.join(KINDS)})")
    runner(ctx, spec)


def _resource(spec: JobSpec) -> str:
    if not spec.resource:
        raise DrkitError(f"job {spec.id}: kind {spec.kind} needs a resource")
    return spec.resource


def _pg_backup(ctx: Context, spec: JobSpec) -> None:
    from drkit.jobs.backup import run_backup
    from drkit.jobs.prune import apply_prune, plan_prune

    resource = _resource(spec)
    outcomes = run_backup(ctx, spec.schedule, only=resource)
    failed = [o for o in outcomes if o.error]
    if failed:
        raise DrkitError(f"backup of {resource} failed: {failed[0].error}")
    # Prune only after a good backup: retention never runs on a resource whose newest backup failed.
    apply_prune(ctx, spec.schedule, plan_prune(ctx, spec.schedule, only=resource))


def _heartbeat(ctx: Context, spec: JobSpec) -> None:
    from drkit.jobs.heartbeat import beat

    beat(ctx, _resource(spec), spec.schedule)


def _drill(ctx: Context, spec: JobSpec) -> None:
    from drkit.jobs.drill import run_drill_job

    report, _paths, error = run_drill_job(ctx, _resource(spec))
    if error is not None:
        raise error if isinstance(error, DrkitError) else DrkitError(f"drill {spec.resource}: {error}")
    if report.status != "passed":
        raise DrkitError(f"drill {spec.resource}: {report.status} (see its report)")


def _rds(kind: str) -> Callable[[Context, JobSpec], None]:
    """Snapshot or copy one RDS resource, then apply its retention (after a good run only)."""

    def run(ctx: Context, spec: JobSpec) -> None:
        from drkit.jobs.rds import copy_resource, snapshot_resource
        from drkit.jobs.rds_prune import prune_resource

        do = snapshot_resource if kind == "snapshot" else copy_resource
        outcome = do(ctx, spec.schedule, _resource(spec))
        for warning in outcome.warnings:
            log.warning("%s", warning)
        prune_resource(ctx, spec.schedule, _resource(spec))

    return run


def _later(module: str, function: str) -> Callable[[Context, JobSpec], None]:
    """A kind implemented in a module that may not be in this build: imported when it runs."""

    def run(ctx: Context, spec: JobSpec) -> None:
        try:
            func: Any = getattr(importlib.import_module(module), function)
        except (ImportError, AttributeError) as exc:
            raise DrkitError(f"job kind {spec.kind} is not available in this drkit") from exc
        func(ctx, spec.schedule, _resource(spec))

    return run


_DISPATCH: dict[str, Callable[[Context, JobSpec], None]] = {
    "pg-backup": _pg_backup,
    "heartbeat": _heartbeat,
    "drill": _drill,
    "rds-snapshot": _rds("snapshot"),
    "rds-copy": _rds("copy"),
    "s3-verify": _later("drkit.jobs.s3", "verify_bucket"),
}
