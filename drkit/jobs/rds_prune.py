"""Retention for RDS snapshots, per resource and kind, in the source and the DR region.

Never deleted, whatever the policy says: snapshots without drkit's tags, automated
snapshots, the newest completed point of a resource and kind, a snapshot that is the
source of a copy still running, one a drill marks as in use, and anything at all when a
listing failed (a partial listing could make an old point look like the newest).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from drkit.domain.retention import Point, plan_retention
from drkit.jobs.context import Context
from drkit.jobs.rds import COPY, DAILY, IN_FLIGHT, TAG_SOURCE, _api, is_managed, kind_of

log = logging.getLogger("drkit.rds")
TAG_IN_USE = "drkit:in-use"
QUOTA_MANUAL_SNAPSHOTS = 100
QUOTA_WARN = 0.8


@dataclass(frozen=True)
class RdsPruneItem:
    resource: str
    kind: str
    region: str
    snapshot: Any
    keep: bool
    reasons: tuple[str, ...]


def plan_rds_prune(ctx: Context, schedule: str, *, only: str | None = None) -> tuple[list[RdsPruneItem], list[str]]:
    """Decisions for every rds resource of a schedule, and warnings (quota)."""
    sched = ctx.config().schedule(schedule)
    if not sched.rds:
        return [], []
    assert sched.aws is not None
    regions = {str(sched.aws.region)} | {str(r.copies.region) for r in sched.rds if r.copies is not None}
    listings: dict[tuple[str, str], list[Any]] = {}
    for region in sorted(regions):
        api = _api(ctx, schedule, region)
        for kind in ("instance", "cluster"):
            listings[(region, kind)] = api.snapshots(kind=kind)  # raises on any failure: nothing is deleted
    warnings = _quota_warnings(listings)
    in_flight_sources = {s.tags.get(TAG_SOURCE) for snaps in listings.values() for s in snaps
                         if s.status in IN_FLIGHT and s.tags.get(TAG_SOURCE)}
    items: list[RdsPruneItem] = []
    for res in sched.rds:
        if only is not None and res.name != only:
            continue
        kind, _ = kind_of(res)
        plans = []
        if res.snapshots is not None:
            plans.append((DAILY, str(sched.aws.region), res.snapshots.keep))
        if res.copies is not None:
            plans.append((COPY, str(res.copies.region), res.copies.keep))
        for tag_kind, region, keep in plans:
            mine = [s for s in listings[(region, kind)] if is_managed(s, schedule, str(res.name), tag_kind)
                    and s.snapshot_type == "manual"]
            done = {s.id: s for s in mine if s.status == "available" and s.created_at is not None}
            protected = {s.id for s in done.values() if s.id in in_flight_sources or s.tags.get(TAG_IN_USE)}
            points = [Point(id=s.id, created_at=s.created_at) for s in done.values()]
            for d in plan_retention(points, keep.to_policy(), protected=protected) if points else []:
                items.append(RdsPruneItem(str(res.name), tag_kind, region, done[d.point.id], d.keep, d.reasons))
    return items, warnings


def _quota_warnings(listings: dict[tuple[str, str], list[Any]]) -> list[str]:
    out = []
    for region in sorted({r for r, _ in listings}):
        manual = sum(1 for (r, _), snaps in listings.items() if r == region for s in snaps
                     if s.snapshot_type == "manual")
        if manual >= QUOTA_WARN * QUOTA_MANUAL_SNAPSHOTS:
            out.append(f"{region}: {manual} manual snapshots, {manual * 100 // QUOTA_MANUAL_SNAPSHOTS}% of the "
                       f"default quota of {QUOTA_MANUAL_SNAPSHOTS}: prune, or ask AWS for a higher quota")
    return out


def apply_rds_prune(ctx: Context, schedule: str, items: list[RdsPruneItem]) -> list[RdsPruneItem]:
    deleted = []
    apis: dict[str, Any] = {}
    for item in items:
        if item.keep:
            continue
        api = apis.setdefault(item.region, _api(ctx, schedule, item.region))
        api.delete_snapshot(item.snapshot)
        ctx.catalog().mark_deleted(f"{item.region}:{item.snapshot.id}", ctx.clock.now())
        ctx.catalog().audit("prune", item.resource, {"id": item.snapshot.id, "region": item.region})
        deleted.append(item)
    return deleted


def prune_resource(ctx: Context, schedule: str, resource: str) -> list[RdsPruneItem]:
    """The scheduler's prune after a snapshot or copy: apply the policy to one resource."""
    items, warnings = plan_rds_prune(ctx, schedule, only=resource)
    for w in warnings:
        log.warning("%s", w)
    return apply_rds_prune(ctx, schedule, items)
