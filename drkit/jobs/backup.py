"""`drkit backup run` and `drkit backup list` for the PostgreSQL engine."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from drkit.catalog import RecoveryPointRecord
from drkit.errors import DrkitError, Interrupted, UsageError
from drkit.jobs.context import Context
from drkit.jobs.pgwiring import PgResource, iter_pg_resources, key_wrapper, open_store, source_dsn
from drkit.pg.engine import backup_database, list_backups
from drkit.pg.manifest import BackupManifest
from drkit.pg.tools import find_tools

log = logging.getLogger("drkit.backup")


@dataclass(frozen=True)
class BackupOutcome:
    resource: str
    manifest: BackupManifest | None
    error: str | None = None


def recovery_point_record(res: PgResource, store_uri: str, m: BackupManifest) -> RecoveryPointRecord:
    return RecoveryPointRecord(
        id=m.id,
        resource=m.resource,
        schedule=res.schedule,
        engine="postgres",
        kind="dump",
        created_at=m.created_at,
        region=None,
        location=f"{store_uri.rstrip('/')}/{m.data_name}",
        size_bytes=m.stored_bytes,
        encrypted=True,
        key_id=m.key_id,
        status="available",
        watermark_at=m.watermark_at,
        manifest=m.to_dict(),
        deleted_at=None,
    )


def run_backup(
    ctx: Context, schedule: str, *, only: str | None = None, dry_run: bool = False, lenient: bool = False
) -> list[BackupOutcome]:
    """Back up the schedule's postgres resources (or `only` one).

    A usage problem (an unset DSN variable, a bad store) normally stops everything before any
    work starts (exit 2). `lenient` is for a schedule that also has other work to do (RDS): a
    misconfigured database must not cost the others their backup, so it is reported as failed
    and the rest goes on."""
    cfg = ctx.config()
    resources = [r for r in iter_pg_resources(cfg, schedule) if only is None or r.name == only]
    if only is not None and not resources:
        raise UsageError(f"schedule {schedule} has no postgres resource named {only!r}")
    if dry_run:
        for res in resources:
            ctx.say(f"would back up {res.name} into {res.spec.store}")
        return []
    outcomes: list[BackupOutcome] = []
    dsns, stores = {}, {}
    for res in list(resources):
        try:
            dsns[res.name], stores[res.name] = source_dsn(res), open_store(cfg, res)
        except UsageError as exc:
            if not lenient:
                raise
            outcomes.append(BackupOutcome(res.name, None, str(exc)))
            resources.remove(res)
    if not resources:
        return outcomes
    tools = find_tools()
    catalog = ctx.catalog()
    for res in resources:
        job = catalog.start_job("backup", schedule, res.name)
        store = stores[res.name]
        try:
            manifest = backup_database(
                dsns[res.name],
                resource=res.name,
                schedule=schedule,
                store=store,
                wrapper=key_wrapper(ctx, res, create=True),
                tools=tools,
                clock=ctx.clock,
            )
        except Interrupted:
            catalog.finish_job(job, "interrupted", "interrupted")
            raise
        except DrkitError as exc:
            catalog.finish_job(job, "failed", str(exc))
            log.error("backup of %s failed: %s", res.name, exc)
            outcomes.append(BackupOutcome(res.name, None, str(exc)))
            continue
        except BaseException as exc:
            catalog.finish_job(job, "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed", str(exc))
            raise
        catalog.add_recovery_point(recovery_point_record(res, store.uri, manifest))
        catalog.finish_job(job, "ok", manifest.id)
        catalog.audit("backup", res.name, {"id": manifest.id, "stored_bytes": manifest.stored_bytes})
        outcomes.append(BackupOutcome(res.name, manifest))
    return outcomes


def list_points(ctx: Context, *, resource: str | None = None) -> list[dict[str, Any]]:
    """Recovery points as the stores hold them (the source of truth), newest first."""
    cfg = ctx.config()
    now = ctx.clock.now()
    rows: list[dict[str, Any]] = []
    seen: set[tuple[str, str]] = set()
    for res in iter_pg_resources(cfg):
        if resource is not None and res.name != resource:
            continue
        store = open_store(cfg, res)
        if (store.uri, res.name) in seen:  # two schedules may share a store
            continue
        seen.add((store.uri, res.name))
        for m in list_backups(store, res.name):
            rows.append(
                {
                    "id": m.id,
                    "resource": m.resource,
                    "schedule": res.schedule,
                    "engine": "postgres",
                    "kind": m.kind,
                    "created_at": m.created_at.isoformat().replace("+00:00", "Z"),
                    "age_s": round((now - m.created_at).total_seconds(), 1),
                    "region": None,
                    "encrypted": True,
                    "key_id": m.key_id,
                    "size_bytes": m.stored_bytes,
                    "status": "available",
                    "location": f"{store.uri.rstrip('/')}/{m.data_name}",
                    "watermark_at": m.watermark_at.isoformat().replace("+00:00", "Z") if m.watermark_at else None,
                }
            )
    rows.sort(key=lambda r: r["created_at"], reverse=True)
    return rows
