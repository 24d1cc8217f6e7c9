"""`drkit restore postgres`: an incident restore into a database the user names.

The backup is authenticated end to end before pg_restore sees a byte of it, and a target
that already holds tables is refused unless the user says --force: a restore must never
be the second incident of the day.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from datetime import datetime

from drkit.errors import UsageError
from drkit.jobs.cleanup import make_workdir
from drkit.jobs.context import Context
from drkit.jobs.pgwiring import PgResource, iter_pg_resources, open_store, wrapper_resolver
from drkit.pg.conn import database_name, mask_dsn
from drkit.pg.engine import list_backups, pg_restore, target_is_empty, verified_archive
from drkit.pg.manifest import BackupManifest
from drkit.pg.tools import find_tools


@dataclass(frozen=True)
class RestorePlan:
    resource: PgResource
    manifest: BackupManifest
    target: str


def plan_restore(
    ctx: Context, target_dsn: str, *, backup_id: str | None, resource: str | None, before: datetime | None
) -> RestorePlan:
    cfg = ctx.config()
    candidates = [r for r in iter_pg_resources(cfg) if resource is None or r.name == resource]
    if resource is not None and not candidates:
        raise UsageError(f"no postgres resource named {resource!r} in {cfg.config_dir}/schedules")
    if backup_id is None and resource is None:
        raise UsageError("name the backup with --backup ID, or the resource with --resource NAME (newest backup)")
    for res in candidates:
        backups = list_backups(open_store(cfg, res), res.name)
        if backup_id is not None:
            backups = [m for m in backups if m.id == backup_id]
        if before is not None:
            backups = [m for m in backups if m.created_at <= before]
        if backups:
            return RestorePlan(res, backups[0], target_dsn)
    what = backup_id or f"a backup of {resource}" + (f" taken before {before.isoformat()}" if before else "")
    raise UsageError(f"no backup {what} in the configured stores; see `drkit backup list`")


def run_restore(ctx: Context, plan: RestorePlan, *, force: bool, jobs: int, no_owner: bool) -> float:
    """Returns seconds taken. Refuses a non-empty target unless force."""
    if not force and not target_is_empty(plan.target):
        raise UsageError(
            f"target database {database_name(plan.target)} is not empty; restore into an empty database, "
            "or add --force to restore on top of what is there"
        )
    tools = find_tools()
    resolve = wrapper_resolver(ctx, plan.resource)
    catalog = ctx.catalog()
    job = catalog.start_job("restore", plan.resource.schedule, plan.resource.name)
    started = ctx.clock.monotonic()
    workdir = make_workdir()
    try:
        with verified_archive(plan.manifest, open_store(ctx.config(), plan.resource), resolve, workdir) as (path, _):
            pg_restore(path, plan.target, tools, jobs=jobs, no_owner=no_owner, log_dir=workdir)
    except BaseException as exc:
        catalog.finish_job(job, "failed", str(exc))
        raise
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    catalog.finish_job(job, "ok", plan.manifest.id)
    catalog.audit("restore", plan.resource.name, {"backup": plan.manifest.id, "target": mask_dsn(plan.target)})
    return ctx.clock.monotonic() - started
