"""RDS backup jobs: daily snapshots, weekly cross-region copies, and their retention.

The cloud is the source of truth: what exists is read from one paginated listing per
region and kind, and drkit's own snapshots are recognised by their tags, never by the
catalog (which only records what happened). Identifiers are deterministic per cron slot,
so running the same job twice in a slot creates nothing new, and a copy still running is
picked up on the next run instead of being started again.

Doors: `drkit backup run` (due work of a schedule), the scheduler (one job per resource
and kind), and `drkit plan` (the same decisions, made without acting).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from drkit.catalog import RecoveryPointRecord
from drkit.domain.schedule import last_slot, snapshot_id
from drkit.errors import DrkitError, UsageError
from drkit.jobs.context import Context

log = logging.getLogger("drkit.rds")

MANAGED = "drkit:managed-by"
TAG_SCHEDULE, TAG_RESOURCE, TAG_KIND = "drkit:schedule", "drkit:resource", "drkit:kind"
TAG_SOURCE_REGION, TAG_EXPIRES, TAG_SOURCE = "drkit:source-region", "drkit:expires-after", "drkit:source-snapshot"
DAILY, COPY = "daily", "copy"
IN_FLIGHT = frozenset({"creating", "copying", "pending", "backing-up"})
SNAPSHOT_WAIT_S = 3 * 3600.0
COPY_LIMIT_PER_REGION = 20  # AWS: 20 concurrent cross-region copies per destination region
MIN_PITR_DAYS = 7


@dataclass
class Outcome:
    """What one job did to one resource, for the CLI and the scheduler's alerts."""

    resource: str
    kind: str
    action: str  # "created" | "exists" | "in-progress" | "deferred" | "skipped"
    snapshot_id: str | None = None
    region: str | None = None
    warnings: list[str] = field(default_factory=list)


def factory_for(ctx: Context, schedule: str) -> Any:
    """One SessionFactory per schedule and run (its session is built once, lazily)."""
    from drkit.aws.session import SessionFactory

    key = ("aws-factory", schedule)
    if key not in ctx.cache:
        ctx.cache[key] = SessionFactory.from_schedule(ctx.config().schedule(schedule))
    return ctx.cache[key]


def _api(ctx: Context, schedule: str, region: str) -> Any:
    """The RdsApi of a schedule's account in `region`, built once per run."""
    from drkit.aws.rds import RdsApi

    key = ("rds-api", schedule, region)
    if key not in ctx.cache:
        ctx.cache[key] = RdsApi(factory_for(ctx, schedule), region, clock=ctx.clock)
    return ctx.cache[key]


def rds_resource(ctx: Context, schedule: str, resource: str) -> Any:
    sched = ctx.config().schedule(schedule)
    for res in sched.rds:
        if res.name == resource:
            if sched.aws is None:
                raise UsageError(f"schedules/{schedule}.yaml: an rds section needs aws.region")
            return res
    have = ", ".join(r.name for r in sched.rds) or "none"
    raise UsageError(f"schedule {schedule} has no rds resource named {resource!r} (have: {have})")


def kind_of(res: Any) -> tuple[str, str]:
    """('instance' | 'cluster', its AWS identifier)."""
    return ("cluster", str(res.cluster)) if res.cluster else ("instance", str(res.instance))


def managed_tags(schedule: str, res: Any, kind: str, region: str, keep_hint: timedelta | None) -> dict[str, str]:
    tags = {MANAGED: "drkit", TAG_SCHEDULE: schedule, TAG_RESOURCE: str(res.name), TAG_KIND: kind,
            TAG_SOURCE_REGION: region}
    if keep_hint is not None:
        # informative only: `drkit prune` decides with the keep policy, never from this tag
        tags[TAG_EXPIRES] = f"{int(keep_hint.total_seconds() // 86400)}d"
    return tags


def keep_hint(keep: Any) -> timedelta | None:
    """The longest span a keep policy can hold a point for, for the tag a console user sees."""
    days = {"hourly": 1 / 24, "daily": 1, "weekly": 7, "monthly": 31, "yearly": 366, "last": 0}
    spans = [timedelta(days=days[k] * v) for k, v in keep.model_dump().items() if k in days and isinstance(v, int)
             and v > 0]
    spans += [v for k, v in keep.model_dump().items() if k.startswith("within") and isinstance(v, timedelta)]
    return max(spans) if spans else None


def is_managed(snap: Any, schedule: str, resource: str, kind: str) -> bool:
    tags = snap.tags
    return (tags.get(MANAGED) == "drkit" and tags.get(TAG_SCHEDULE) == schedule
            and tags.get(TAG_RESOURCE) == resource and tags.get(TAG_KIND) == kind)


def check_instance(api: Any, kind: str, ident: str) -> list[str]:
    """Problems that make a snapshot impossible (raised) or a resource under-protected (returned)."""
    found = [d for d in (api.clusters() if kind == "cluster" else api.instances()) if d.id == ident]
    if not found:
        raise DrkitError(f"no RDS {kind} {ident} in {api.region}: check the schedule's rds entry")
    db = found[0]
    if db.status != "available":
        raise DrkitError(f"RDS {kind} {ident} is {db.status!r}, not available: no snapshot taken; retry when it is")
    warnings = []
    if db.backup_retention_days == 0:
        warnings.append(f"{ident}: automated backups (PITR) are OFF: point-in-time restore is impossible")
    elif db.backup_retention_days < MIN_PITR_DAYS:
        warnings.append(f"{ident}: automated backups are kept {db.backup_retention_days} days (< {MIN_PITR_DAYS})")
    return warnings


def _record(ctx: Context, schedule: str, res: Any, snap: Any, kind: str) -> None:
    ctx.catalog().add_recovery_point(RecoveryPointRecord(
        id=f"{snap.region}:{snap.id}", resource=str(res.name), schedule=schedule, engine="rds",
        kind="snapshot" if kind == DAILY else "copy", created_at=snap.created_at or ctx.clock.now(),
        region=snap.region, location=snap.arn, size_bytes=(snap.size_gb or 0) * 1024**3 or None,
        encrypted=bool(snap.encrypted), key_id=snap.kms_key_id, status="available", manifest={"tags": dict(snap.tags)},
    ))


def snapshot_resource(ctx: Context, schedule: str, resource: str, *, at: datetime | None = None) -> Outcome:
    """Take the snapshot of the current slot of `snapshots.cron` (idempotent), tag it once
    it is available, record it. Raises when the instance cannot be snapshotted."""
    sched = ctx.config().schedule(schedule)
    res = rds_resource(ctx, schedule, resource)
    assert sched.aws is not None  # rds_resource checked it
    if res.snapshots is None:
        raise UsageError(f"rds resource {resource} has no snapshots: section")
    region = str(sched.aws.region)
    api = _api(ctx, schedule, region)
    kind, ident = kind_of(res)
    slot = last_slot(res.snapshots.cron, sched.timezone, at or ctx.clock.now())
    sid = snapshot_id(str(res.name), DAILY, slot)
    out = Outcome(resource, DAILY, "exists", sid, region)
    snap = api.describe_snapshot(kind, sid)
    if snap is None:
        out.warnings = check_instance(api, kind, ident)
        snap = api.create_snapshot(kind=kind, resource=ident, snapshot_id=sid)
        out.action = "created"
    if snap.status != "available":
        snap = api.wait_available(snap, timeout_s=SNAPSHOT_WAIT_S)
    if not is_managed(snap, schedule, resource, DAILY):
        # Tagged only once it exists and is available, so alarms never see a half-made point.
        api.add_tags(snap.arn, managed_tags(schedule, res, DAILY, region, keep_hint(res.snapshots.keep)))
    _record(ctx, schedule, res, snap, DAILY)
    ctx.catalog().audit("rds-snapshot", resource, {"id": sid, "region": region, "action": out.action})
    return out


def copy_resource(ctx: Context, schedule: str, resource: str, *, at: datetime | None = None,
                  limit_per_region: int = COPY_LIMIT_PER_REGION) -> Outcome:
    """Copy the newest drkit snapshot into the DR region, re-encrypted with the key there."""
    from drkit.aws.kmskeys import resolve_key

    sched = ctx.config().schedule(schedule)
    res = rds_resource(ctx, schedule, resource)
    assert sched.aws is not None  # rds_resource checked it
    if res.copies is None:
        raise UsageError(f"rds resource {resource} has no copies: section")
    src_region, dst_region = str(sched.aws.region), str(res.copies.region)
    if src_region == dst_region:
        raise UsageError(f"rds {resource}: copies.region {dst_region} is the source region; name the DR region")
    kind, _ident = kind_of(res)
    slot = last_slot(res.copies.cron, sched.timezone, at or ctx.clock.now())
    target = snapshot_id(str(res.name), COPY, slot)
    dst = _api(ctx, schedule, dst_region)
    out = Outcome(resource, COPY, "exists", target, dst_region)
    existing = dst.describe_snapshot(kind, target)
    if existing is not None:
        if existing.status in IN_FLIGHT:
            out.action = "in-progress"
        else:
            _record(ctx, schedule, res, existing, COPY)
        return out
    key = resolve_key(factory_for(ctx, schedule), dst_region, str(res.copies.kms_key))
    src = _api(ctx, schedule, src_region)
    sources = [s for s in src.snapshots(kind=kind) if is_managed(s, schedule, resource, DAILY)
               and s.status == "available" and s.created_at is not None]
    if not sources:
        raise DrkitError(
            f"rds {resource}: no available drkit snapshot in {src_region} to copy; run the snapshots first"
        )
    source = max(sources, key=lambda s: s.created_at)
    in_flight = [s for s in dst.snapshots(kind=kind) if s.status in IN_FLIGHT and s.tags.get(MANAGED) == "drkit"]
    if any(s.tags.get(TAG_RESOURCE) == resource for s in in_flight):
        out.action = "deferred"  # copies of one source run one at a time
        return out
    if len(in_flight) >= limit_per_region:
        out.action = "deferred"
        out.warnings.append(f"{len(in_flight)} copies in flight into {dst_region} (limit {limit_per_region})")
        return out
    tags = managed_tags(schedule, res, COPY, src_region, keep_hint(res.copies.keep)) | {TAG_SOURCE: source.id}
    copy = dst.copy_snapshot(kind=kind, source=source, target_id=target, kms_key_id=key.arn, tags=tags)
    out.action = "created" if copy.status not in IN_FLIGHT else "in-progress"
    if copy.status == "available":
        _record(ctx, schedule, res, copy, COPY)
    ctx.catalog().audit("rds-copy", resource, {"id": target, "from": source.id, "region": dst_region,
                                                "kms_key": key.arn})
    return out
