"""What RDS work is due at a time, decided from one listing per region and kind.

This is what keeps a no-op run cheap on a large fleet: listing cost grows with pages,
not with instances, and nothing is described per instance unless work is due for it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from drkit.domain.schedule import last_slot, snapshot_id
from drkit.jobs.context import Context
from drkit.jobs.rds import COPY, DAILY, IN_FLIGHT, _api, is_managed, kind_of


@dataclass(frozen=True)
class DueWork:
    resource: str
    kind: str  # "daily" | "copy"
    region: str
    target_id: str
    slot: datetime
    state: str  # "due" | "in-progress" | "done"
    reason: str


def rds_due(ctx: Context, schedule: str, at: datetime, *, listings: dict[tuple[str, str], list[Any]] | None = None
            ) -> list[DueWork]:
    sched = ctx.config().schedule(schedule)
    if not sched.rds:
        return []
    assert sched.aws is not None
    listings = {} if listings is None else listings

    by_id: dict[tuple[str, str], dict[str, Any]] = {}

    def ids(region: str, kind: str) -> dict[str, Any]:
        if (region, kind) not in by_id:
            if (region, kind) not in listings:
                listings[(region, kind)] = _api(ctx, schedule, region).snapshots(kind=kind)
            by_id[(region, kind)] = {s.id: s for s in listings[(region, kind)]}
        return by_id[(region, kind)]

    out: list[DueWork] = []
    for res in sched.rds:
        kind, ident = kind_of(res)
        work = []
        if res.snapshots is not None:
            work.append((DAILY, str(sched.aws.region), res.snapshots.cron, f"snapshot of {kind} {ident}"))
        if res.copies is not None:
            work.append((COPY, str(res.copies.region), res.copies.cron,
                         f"copy to {res.copies.region} re-encrypted with {res.copies.kms_key}"))
        for tag_kind, region, cron, what in work:
            slot = last_slot(cron, sched.timezone, at)
            target = snapshot_id(str(res.name), tag_kind, slot)
            found = ids(region, kind).get(target)
            if found is None:
                state, reason = "due", f"{what}: slot {slot:%Y-%m-%d %H:%M} UTC has none"
            elif found.status in IN_FLIGHT:
                state, reason = "in-progress", f"{what}: {target} is {found.status}"
            elif tag_kind == DAILY and not is_managed(found, schedule, str(res.name), DAILY):
                # Taken, but its tagging failed (e.g. AccessDenied): prune and copies ignore it until
                # it is drkit's, so it is due again (snapshot_resource tags the existing snapshot).
                state, reason = "due", f"{what}: {target} exists but is not tagged as drkit's yet"
            else:
                state, reason = "done", f"{what}: {target} exists ({found.status})"
            out.append(DueWork(str(res.name), tag_kind, region, target, slot, state, reason))
    return out


def rds_points(ctx: Context, *, resource: str | None = None) -> list[dict[str, Any]]:
    """Recovery points of every configured RDS resource, in its source and DR regions:
    drkit's snapshots and copies, and the automated snapshots (PITR base)."""
    from drkit.jobs.rds import TAG_KIND, TAG_RESOURCE, is_managed

    cfg = ctx.config()
    now = ctx.clock.now()
    rows: list[dict[str, Any]] = []
    seen: set[tuple[str, str]] = set()
    listings: dict[tuple[str, str, str], list[Any]] = {}
    for name, sched in sorted(cfg.schedules.items()):
        if not sched.rds or sched.aws is None:
            continue
        for res in sched.rds:
            if resource is not None and res.name != resource:
                continue
            kind, ident = kind_of(res)
            regions = [str(sched.aws.region)] + ([str(res.copies.region)] if res.copies is not None else [])
            for region in regions:
                key = (name, region, kind)
                if key not in listings:
                    listings[key] = _api(ctx, name, region).snapshots(kind=kind, snapshot_type=None)
                for s in listings[key]:
                    mine = is_managed(s, name, str(res.name), s.tags.get(TAG_KIND, ""))
                    automated = s.snapshot_type == "automated" and s.resource == ident
                    if not (mine or automated) or (region, s.id) in seen:
                        continue
                    seen.add((region, s.id))
                    rows.append({
                        "id": s.id, "resource": str(res.name), "schedule": name, "engine": "rds",
                        "kind": "automated" if automated else ("copy" if s.tags.get(TAG_KIND) == COPY else "snapshot"),
                        "created_at": s.created_at.isoformat().replace("+00:00", "Z") if s.created_at else None,
                        "age_s": round((now - s.created_at).total_seconds(), 1) if s.created_at else None,
                        "region": region, "encrypted": bool(s.encrypted), "key_id": s.kms_key_id,
                        "size_bytes": (s.size_gb or 0) * 1024**3, "status": s.status, "location": s.arn,
                        "source_resource": s.tags.get(TAG_RESOURCE, s.resource),
                    })
    return rows
