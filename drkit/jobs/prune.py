"""`drkit prune SCHEDULE [--apply]`: restic-style retention over what the store holds.

Decisions are made from the store's own listing (the source of truth), never from the
catalog alone: losing the catalog must not make drkit delete the wrong thing. The newest
good backup of a resource is always kept, whatever the policy says.
"""

from __future__ import annotations

from dataclasses import dataclass

from drkit.domain.retention import Point, plan_retention
from drkit.errors import UsageError
from drkit.jobs.context import Context
from drkit.jobs.pgwiring import iter_pg_resources, open_store
from drkit.pg.engine import delete_backup, list_backups
from drkit.pg.manifest import BackupManifest


@dataclass(frozen=True)
class PruneItem:
    resource: str
    manifest: BackupManifest
    keep: bool
    reasons: tuple[str, ...]


def plan_prune(ctx: Context, schedule: str, *, only: str | None = None) -> list[PruneItem]:
    cfg = ctx.config()
    items: list[PruneItem] = []
    resources = [r for r in iter_pg_resources(cfg, schedule) if only is None or r.name == only]
    if only is not None and not resources:
        raise UsageError(f"schedule {schedule} has no postgres resource named {only!r}")
    for res in resources:
        manifests = {m.id: m for m in list_backups(open_store(cfg, res), res.name)}
        policy = res.spec.backups.keep.to_policy()
        points = [Point(id=m.id, created_at=m.created_at) for m in manifests.values()]
        for decision in plan_retention(points, policy):
            items.append(PruneItem(res.name, manifests[decision.point.id], decision.keep, decision.reasons))
    return items


def apply_prune(ctx: Context, schedule: str, items: list[PruneItem]) -> list[PruneItem]:
    """Delete what the plan expires; returns what was deleted."""
    cfg = ctx.config()
    stores = {r.name: open_store(cfg, r) for r in iter_pg_resources(cfg, schedule)}
    catalog = ctx.catalog()
    deleted = []
    for item in items:
        if item.keep:
            continue
        delete_backup(stores[item.resource], item.manifest)
        catalog.mark_deleted(item.manifest.id, ctx.clock.now())
        catalog.audit("prune", item.resource, {"id": item.manifest.id, "schedule": schedule})
        deleted.append(item)
    return deleted
