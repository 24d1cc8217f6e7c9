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
from drkit.jobs.rds import (
    COPY,
    DAILY,
    IN_FLIGHT,
    MANAGED,
    TAG_KIND,
    TAG_RESOURCE,
    TAG_SCHEDULE,
    TAG_SOURCE,
    _api,
    kind_of,
)

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


def plan_rds_prune(
    ctx: Context, schedule: str, *, only: str | None = None, listings: dict[tuple[str, str], list[Any]] | None = None,
) -> tuple[list[RdsPruneItem], list[str]]:
    """Decisions for every rds resource of a schedule, and warnings (quota).

    `listings` ((region, kind) -> snapshots) may come from `rds_due` of the same run, so a
    run lists each region and kind once; what is missing is listed here. Any listing
    failure raises: nothing is deleted on a partial view."""
    sched = ctx.config().schedule(schedule)
    if not sched.rds:
        return [], []
    assert sched.aws is not None
    listings = {} if listings is None else listings
    wanted: set[tuple[str, str]] = set()
    for res in sched.rds:
        kind, _ = kind_of(res)
        if res.snapshots is not None:
            wanted.add((str(sched.aws.region), kind))
        if res.copies is not None:
            wanted.add((str(res.copies.region), kind))
    for region, kind in sorted(wanted - set(listings)):
        listings[(region, kind)] = _api(ctx, schedule, region).snapshots(kind=kind)
    warnings = _quota_warnings({k: v for k, v in listings.items() if k in wanted})
    in_flight_sources = {s.tags.get(TAG_SOURCE) for key in wanted for s in listings[key]
                         if s.status in IN_FLIGHT and s.tags.get(TAG_SOURCE)}
    # One pass over each listing: drkit's available manual snapshots by (region, kind, resource, tag kind).
    groups: dict[tuple[str, str, str, str], list[Any]] = {}
    for region, kind in wanted:
        for s in listings[(region, kind)]:
            tags = s.tags
            if (tags.get(MANAGED) == "drkit" and tags.get(TAG_SCHEDULE) == schedule and s.snapshot_type == "manual"
                    and s.status == "available" and s.created_at is not None):
                groups.setdefault((region, kind, tags.get(TAG_RESOURCE, ""), tags.get(TAG_KIND, "")), []).append(s)
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
            done = {s.id: s for s in groups.get((region, kind, str(res.name), tag_kind), [])}
            if not done:
                continue
            protected = {i for i, s in done.items() if i in in_flight_sources or s.tags.get(TAG_IN_USE)}
            points = [Point(id=s.id, created_at=s.created_at) for s in done.values()]
            for d in plan_retention(points, keep.to_policy(), protected=protected):
                items.append(RdsPruneItem(str(res.name), tag_kind, region, done[d.point.id], d.keep, d.reasons))
    return items, warnings


def _quota_warnings(listings: dict[tuple[str, str], list[Any]]) -> list[str]:
    """Manual instance and cluster snapshots have separate quotas (100 each by default)."""
    out = []
    for (region, kind), snaps in sorted(listings.items()):
        manual = sum(1 for s in snaps if s.snapshot_type == "manual")
        if manual >= QUOTA_WARN * QUOTA_MANUAL_SNAPSHOTS:
            out.append(f"{region}: {manual} manual {kind} snapshots, {manual * 100 // QUOTA_MANUAL_SNAPSHOTS}% of "
                       f"the default quota of {QUOTA_MANUAL_SNAPSHOTS}: prune, or ask AWS for a higher quota")
    return out


def apply_rds_prune(ctx: Context, schedule: str, items: list[RdsPruneItem]) -> list[RdsPruneItem]:
    deleted = []
    for item in items:
        if item.keep:
            continue
        api = _api(ctx, schedule, item.region)  # built once per run and region
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
