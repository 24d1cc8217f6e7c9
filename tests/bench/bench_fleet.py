"""Benchmark: what a large RDS fleet costs drkit in API calls, wall time and planning CPU (issue #3).

A plain script (run by tests/bench/run.py, or on its own; not collected by pytest):

    .venv/bin/python tests/bench/bench_fleet.py [--instances 200] [--days 30] [--weeks 4]
        [--cpu-instances 200,1000] [--repeat 1] [--prune-run] [--skip-moto] [--skip-cpu] [--out FILE.json]

Fleet (moto, in-process `mock_aws`): INSTANCES DB instances orders-000.. in us-east-1
(BackupRetentionPeriod 7), a schedule `production` with one rds entry each (snapshots
"0 3 * * *" keep daily 7; copies "0 4 * * 0" to us-west-2 with alias/drkit-dr, keep weekly 4),
and history: DAYS daily drkit snapshots per instance (the ids and tags drkit itself gives,
backdated) and WEEKS weekly copies in us-west-2 re-encrypted with the DR key. They are put
into moto's backend through the same backend methods moto's API handlers call (the API is
~200 calls/s); one of each kind is also made through the API and described side by side
with an injected one, and the benchmark stops if their shapes differ.

moto 5.2.5 answers DescribeDBSnapshots in one page whatever MaxRecords says; as in
tests/aws/test_rds.py (fixture `aws_like_pagination`), moto is patched to page it by
MaxRecords/Marker as AWS does, so the calls counted here are the calls AWS would see.

Measured, with a botocore `before-call` counter on every client drkit's SessionFactory makes
(per operation and region; describes by identifier are told apart from listing pages), at a
time when every slot's snapshot and copy exist:
  1. `drkit plan production --at T`            (drkit.jobs.plan.plan)
  2. `drkit backup run production` at T (drkit.jobs.rds_backup.run_rds_backups). Nothing is
     due, but keep daily 7 expires most of a DAYS-day history, so a first run prunes. That run
     is measured for one resource (`--only orders-000`; the whole fleet with --prune-run,
     slow), then what retention expires is removed from moto directly (the steady state a
     daily prune keeps) and the true no-op is measured: nothing due, nothing to prune.
     `drkit plan` is measured again in that steady state.
Targets: no per-instance/per-snapshot calls when nothing is due; listing pages =
ceil(n/100) per listing; and, stricter, one listing per region and kind.
As a floor, the same listings made once per region and kind with a bare boto3 paginator
("bare listings"): in moto most of the wall time is moto serializing snapshots, so compare
drkit's columns with that one, not with AWS's latency.
  3. CPU (time.process_time) of the decisions for each of --cpu-instances instances with 30 daily
     snapshots each (plus 4 copies each in the DR region), built in memory as
     drkit.aws.rds_model.Snapshot values, no AWS: rds_due with `listings=` pre-filled;
     plan_rds_prune (which has no `listings=`: its `_api` is pointed at the same in-memory
     listings); the retention functions alone (grouped once, plan_retention per resource);
     and the whole jobs.plan.plan. Target: the plan in under 2 s of CPU.

Benchmarks inform, they do not gate: each target prints PASS or MISS; the exit status is 0
unless something errored (1) or the run was interrupted (130).
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(HERE))

from benchproc import save_results  # noqa: E402

SCHEDULE = "production"
SRC, DST = "us-east-1", "us-west-2"
ACCOUNT = "123456789012"  # moto's default account
DAILY_CRON, COPY_CRON = "0 3 * * *", "0 4 * * 0"
KEY_ALIAS = "alias/drkit-dr"
CPU_TARGET_S = 2.0
# Calls that act on (or describe) one resource or snapshot: none may happen when nothing is due.
PER_RESOURCE_OPS = frozenset({
    "DescribeDBInstances", "DescribeDBClusters", "CreateDBSnapshot", "CreateDBClusterSnapshot",
    "CopyDBSnapshot", "CopyDBClusterSnapshot", "AddTagsToResource", "DeleteDBSnapshot",
    "DeleteDBClusterSnapshot", "DescribeKey",
})
LISTING_OPS = {"DescribeDBSnapshots": "DBSnapshotIdentifier",
               "DescribeDBClusterSnapshots": "DBClusterSnapshotIdentifier"}


# -- environment ------------------------------------------------------------------------------

@contextlib.contextmanager
def fake_aws_env(home: Path) -> Iterator[None]:
    """Fake credentials, no profile or endpoint, moto's snapshot quota out of the way; restored after."""
    saved = dict(os.environ)
    for var in [v for v in os.environ if v.startswith(("AWS_ENDPOINT_URL", "AWS_PROFILE", "AWS_DEFAULT_PROFILE"))]:
        del os.environ[var]
    for var in ("AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
                "AWS_CONTAINER_CREDENTIALS_FULL_URI"):
        os.environ.pop(var, None)
    os.environ.update({
        "AWS_CONFIG_FILE": str(home / "config"), "AWS_SHARED_CREDENTIALS_FILE": str(home / "credentials"),
        "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_SESSION_TOKEN": "testing",
        "AWS_REGION": SRC, "AWS_DEFAULT_REGION": SRC, "AWS_EC2_METADATA_DISABLED": "true",
        # moto refuses more than 1,000 snapshots per region (AWS's default quota is 100 manual ones:
        # a fleet this size needs a quota increase there, and drkit warns about it).
        "MOTO_RDS_SNAPSHOT_LIMIT": "1000000",
    })
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


@contextlib.contextmanager
def aws_like_pagination() -> Iterator[None]:
    """moto pages DescribeDBSnapshots/DescribeDBClusterSnapshots/DescribeDBClusters by MaxRecords
    and Marker, as AWS does (the same patch as tests/aws/test_rds.py's autouse fixture)."""
    from moto.core.responses import ActionResult, PaginatedResult
    from moto.core.utils import get_pagination_model
    from moto.rds.responses import RDSResponse

    model = get_pagination_model("rds")
    saved: list[tuple[str, Any, str, Any]] = []
    for op, name in (("DescribeDBSnapshots", "describe_db_snapshots"),
                     ("DescribeDBClusterSnapshots", "describe_db_cluster_snapshots"),
                     ("DescribeDBClusters", "describe_db_clusters")):
        old_attr = model[op].get("unique_attribute")
        model[op]["unique_attribute"] = "resource_id"
        original = getattr(RDSResponse, name)

        def paged(self: Any, _original: Any = original) -> ActionResult:
            return PaginatedResult(_original(self).result)

        setattr(RDSResponse, name, paged)
        saved.append((op, old_attr, name, original))
    try:
        yield
    finally:
        for op, old_attr, name, original in saved:
            model[op]["unique_attribute"] = old_attr
            setattr(RDSResponse, name, original)


# -- counting ---------------------------------------------------------------------------------

@dataclass
class CallCounter:
    """Every AWS call drkit makes, from botocore's `before-call` event on each client it builds."""

    calls: Counter[tuple[str, str, str]] = field(default_factory=Counter)  # (region, op, "page"|"by-id"|"")
    clients: int = 0
    client_s: float = 0.0  # wall time inside SessionFactory.client (session + client construction)

    def reset(self) -> None:
        self.calls.clear()
        self.clients, self.client_s = 0, 0.0

    def attach(self, client: Any) -> None:
        region = str(client.meta.region_name)

        def count(model: Any, params: dict[str, Any], **_: Any) -> None:
            # `params` is the request dict; RDS speaks the query protocol, so its body is the
            # serialized parameters (MaxRecords, Marker, DBSnapshotIdentifier, ...).
            op, body = str(model.name), params.get("body")
            how = ""
            if op in LISTING_OPS and isinstance(body, dict):
                how = "by-id" if body.get(LISTING_OPS[op]) else ("next-page" if body.get("Marker") else "first-page")
            self.calls[(region, op, how)] += 1

        client.meta.events.register("before-call", count)

    def by_op(self) -> dict[str, int]:
        out: Counter[str] = Counter()
        for (_, op, how), n in self.calls.items():
            out[op + (f" ({'by id' if how == 'by-id' else 'listing page'})" if how else "")] += n
        return dict(sorted(out.items()))

    def total(self) -> int:
        return sum(self.calls.values())


@contextlib.contextmanager
def counting(counter: CallCounter) -> Iterator[None]:
    """Route every client drkit's SessionFactory makes through `counter`."""
    from drkit.aws.session import SessionFactory

    original = SessionFactory.client

    def client(self: SessionFactory, service: str, region: str | None = None) -> Any:
        start = time.perf_counter()
        made = original(self, service, region)
        counter.client_s += time.perf_counter() - start
        counter.clients += 1
        counter.attach(made)
        return made

    SessionFactory.client = client  # type: ignore[method-assign]
    try:
        yield
    finally:
        SessionFactory.client = original  # type: ignore[method-assign]


# -- the fleet --------------------------------------------------------------------------------

def write_schedule(config_dir: Path, names: list[str]) -> None:
    """schedules/production.yaml with one rds entry per instance (CONTRACT.md's rds: section)."""
    (config_dir / "schedules").mkdir(parents=True, exist_ok=True)
    lines = ["environment: production", "targets: {rto: 1h, rpo: 15m}", "timezone: UTC",
             f"aws: {{region: {SRC}, dr_region: {DST}}}", "rds:"]
    for name in names:
        lines += [f"  - name: {name}", f"    instance: {name}",
                  f"    snapshots: {{cron: \"{DAILY_CRON}\", keep: {{daily: 7}}}}",
                  f"    copies: {{cron: \"{COPY_CRON}\", region: {DST}, kms_key: {KEY_ALIAS}, keep: {{weekly: 4}}}}"]
    (config_dir / "schedules" / f"{SCHEDULE}.yaml").write_text("\n".join(lines) + "\n")


def history_slots(at: datetime, days: int, weeks: int) -> tuple[list[datetime], list[datetime]]:
    """The last `days` daily slots and `weeks` copy slots at or before `at`, oldest first."""
    from drkit.domain.schedule import last_slot

    daily = [last_slot(DAILY_CRON, "UTC", at)]
    while len(daily) < days:
        daily.append(last_slot(DAILY_CRON, "UTC", daily[-1] - timedelta(seconds=1)))
    copies = [last_slot(COPY_CRON, "UTC", at)]
    while len(copies) < weeks:
        copies.append(last_slot(COPY_CRON, "UTC", copies[-1] - timedelta(seconds=1)))
    return daily[::-1], copies[::-1]


def _naive(t: datetime) -> datetime:
    return t.astimezone(UTC).replace(tzinfo=None)  # moto keeps times as naive UTC


def _shape(value: Any) -> Any:
    """A describe answer with the values that differ per snapshot reduced to their types."""
    if isinstance(value, dict):
        return {k: _shape(v) for k, v in sorted(value.items())}
    if isinstance(value, list):
        return [_shape(v) for v in value[:1]]
    return type(value).__name__


@dataclass
class Fleet:
    names: list[str]
    daily_slots: list[datetime]
    copy_slots: list[datetime]
    key_arn: str
    counts: dict[str, int]
    setup_s: float


def build_fleet(ctx: Any, n: int, at: datetime, days: int, weeks: int, say: Callable[[str], None]) -> Fleet:
    """Instances through the API; history through moto's backend (checked against API-made ones)."""
    import boto3
    from moto.rds.models import rds_backends

    from drkit.domain.schedule import last_slot, snapshot_id
    from drkit.jobs.rds import COPY, DAILY, TAG_SOURCE, keep_hint, managed_tags

    start = time.monotonic()
    sched = ctx.config().schedule(SCHEDULE)
    src, dst = boto3.client("rds", region_name=SRC), boto3.client("rds", region_name=DST)
    kms = boto3.client("kms", region_name=DST)
    key_arn = kms.create_key(Description="drkit DR")["KeyMetadata"]["Arn"]
    kms.create_alias(AliasName=KEY_ALIAS, TargetKeyId=key_arn)
    for res in sched.rds:
        src.create_db_instance(DBInstanceIdentifier=str(res.instance), DBInstanceClass="db.t3.micro",
                               Engine="postgres", MasterUsername="app", MasterUserPassword="not-a-secret-1",
                               AllocatedStorage=20, BackupRetentionPeriod=7)
    say(f"  {n} instances created through the API ({time.monotonic() - start:.1f} s)")

    east, west = rds_backends[ACCOUNT][SRC], rds_backends[ACCOUNT][DST]
    daily_slots, copy_slots = history_slots(at, days, weeks)

    def tags(res: Any, kind: str, keep: Any, extra: dict[str, str] | None = None) -> list[dict[str, str]]:
        t = managed_tags(SCHEDULE, res, kind, SRC, keep_hint(keep)) | (extra or {})
        return [{"Key": k, "Value": v} for k, v in t.items()]

    def backdate(snap: Any, when: datetime) -> None:
        snap.created = _naive(when)
        snap.original_snapshot_create_time = _naive(when)

    # One of each through the API, as references for what the injected ones must look like.
    first = sched.rds[0]
    ref = src.create_db_snapshot(DBInstanceIdentifier=str(first.instance), DBSnapshotIdentifier="bench-reference",
                                 Tags=tags(first, DAILY, first.snapshots.keep))["DBSnapshot"]
    dst.copy_db_snapshot(SourceDBSnapshotIdentifier=ref["DBSnapshotArn"], SourceRegion=SRC,
                         TargetDBSnapshotIdentifier="bench-reference-copy", KmsKeyId=key_arn, CopyTags=False,
                         Tags=tags(first, COPY, first.copies.keep, {TAG_SOURCE: "bench-reference"}))
    t0 = time.monotonic()
    for res in sched.rds:
        for slot in daily_slots:
            sid = snapshot_id(str(res.name), DAILY, slot)
            snap = east.create_db_snapshot(db_instance_identifier=str(res.instance), db_snapshot_identifier=sid,
                                           tags=tags(res, DAILY, res.snapshots.keep))
            backdate(snap, min(slot + timedelta(minutes=5), at))
        for slot in copy_slots:
            source = snapshot_id(str(res.name), DAILY, last_slot(DAILY_CRON, "UTC", slot))
            copy = west.copy_db_snapshot(
                source_db_snapshot_identifier=east.database_snapshots[source].arn,
                target_db_snapshot_identifier=snapshot_id(str(res.name), COPY, slot), kms_key_id=key_arn,
                tags=tags(res, COPY, res.copies.keep, {TAG_SOURCE: source}), copy_tags=False)
            backdate(copy, min(slot + timedelta(minutes=20), at))
    say(f"  {n * days} daily snapshots + {n * weeks} copies injected into moto's backend "
        f"({time.monotonic() - t0:.1f} s)")

    # Injected and API-made snapshots must be indistinguishable through the API.
    sample = snapshot_id(str(first.name), DAILY, daily_slots[0])
    got = src.describe_db_snapshots(DBSnapshotIdentifier=sample)["DBSnapshots"][0]
    got_copy = dst.describe_db_snapshots(
        DBSnapshotIdentifier=snapshot_id(str(first.name), COPY, copy_slots[0]))["DBSnapshots"][0]
    want = src.describe_db_snapshots(DBSnapshotIdentifier="bench-reference")["DBSnapshots"][0]
    want_copy = dst.describe_db_snapshots(DBSnapshotIdentifier="bench-reference-copy")["DBSnapshots"][0]
    for label, a, b in (("daily", got, want), ("copy", got_copy, want_copy)):
        if _shape(a) != _shape(b) or a["TagList"][:4] != b["TagList"][:4]:
            raise RuntimeError(f"an injected {label} snapshot does not look like an API-made one:\n{a}\n{b}")
    if got["SnapshotCreateTime"].astimezone(UTC) != min(daily_slots[0] + timedelta(minutes=5), at):
        raise RuntimeError(f"backdating did not show through the API: {got['SnapshotCreateTime']}")
    if got_copy["KmsKeyId"] != key_arn or not got_copy["Encrypted"]:
        raise RuntimeError(f"an injected copy is not encrypted with the DR key: {got_copy}")
    src.delete_db_snapshot(DBSnapshotIdentifier="bench-reference")
    dst.delete_db_snapshot(DBSnapshotIdentifier="bench-reference-copy")
    say(f"  injected snapshots describe exactly like API-made ones (daily {sample})")

    counts = {"src_manual": sum(1 for s in east.database_snapshots.values() if s.snapshot_type == "manual"),
              "src_automated": sum(1 for s in east.database_snapshots.values() if s.snapshot_type == "automated"),
              "dst_manual": sum(1 for s in west.database_snapshots.values() if s.snapshot_type == "manual")}
    return Fleet([str(r.name) for r in sched.rds], daily_slots, copy_slots, key_arn, counts,
                 time.monotonic() - start)


def expire_in_moto(ctx: Any) -> int:
    """Delete from moto's backend what drkit's retention (plan_rds_prune) expires; the count."""
    from moto.rds.models import rds_backends

    from drkit.jobs.rds_prune import plan_rds_prune

    items, _ = plan_rds_prune(ctx, SCHEDULE)
    for item in items:
        if not item.keep:
            rds_backends[ACCOUNT][item.region].delete_db_snapshot(item.snapshot.id)
    return sum(1 for i in items if not i.keep)


def pages(n: int) -> int:
    """Calls a paginated listing of n items costs at PAGE_SIZE per page (an empty listing: one call)."""
    from drkit.aws.rds import PAGE_SIZE

    return max(1, math.ceil(n / PAGE_SIZE))


def measure(label: str, counter: CallCounter, fn: Callable[[], Any], manual: dict[str, int]) -> dict[str, Any]:
    """Run fn with the counter reset; judge its calls against the listings' page counts."""
    counter.reset()
    wall0, cpu0 = time.perf_counter(), time.process_time()
    result = fn()
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    region_items = {(SRC, "DescribeDBSnapshots"): manual["src"], (DST, "DescribeDBSnapshots"): manual["dst"],
                    (SRC, "DescribeDBClusterSnapshots"): 0, (DST, "DescribeDBClusterSnapshots"): 0}
    listings: Counter[tuple[str, str]] = Counter()
    page_calls: Counter[tuple[str, str]] = Counter()
    by_id = 0
    for (region, op, how), n in counter.calls.items():
        if how == "by-id":
            by_id += n
        elif how:
            page_calls[(region, op)] += n
            if how == "first-page":
                listings[(region, op)] += n
    per_resource = {op: n for (_, op, _), n in counter.calls.items() if op in PER_RESOURCE_OPS}
    expected_pages = sum(listings[k] * pages(region_items.get(k, 0)) for k in listings)
    minimal_pages = sum(pages(region_items.get(k, 0)) for k in listings)
    return {
        "label": label, "wall_s": wall, "cpu_s": cpu, "calls_total": counter.total(), "calls": counter.by_op(),
        "calls_by_region": {f"{r} {op}{' ' + how if how else ''}": n for (r, op, how), n in
                            sorted(counter.calls.items())},
        "listings": {f"{r} {op}": n for (r, op), n in sorted(listings.items())},
        "listing_pages": sum(page_calls.values()), "expected_pages": expected_pages,
        "pages_one_listing_each": minimal_pages, "describe_by_id": by_id,
        "per_resource_calls": sum(per_resource.values()) + by_id,
        "clients_made": counter.clients, "client_construction_s": counter.client_s, "result": result,
    }


def run_moto(args: argparse.Namespace, say: Callable[[str], None]) -> dict[str, Any]:
    from moto import mock_aws

    from drkit.clock import FakeClock
    from drkit.jobs.context import Context
    from drkit.jobs.plan import plan
    from drkit.jobs.rds_backup import run_rds_backups

    # A time when every slot is done: yesterday noon UTC (after the 03:00 snapshot and the
    # Sunday 04:00 copy slot), in the past so nothing in moto is dated in the future.
    at = datetime.now(UTC).replace(hour=12, minute=0, second=0, microsecond=0) - timedelta(days=1)
    names = [f"orders-{i:03d}" for i in range(args.instances)]
    out: dict[str, Any] = {"at": at.isoformat(), "instances": args.instances, "days": args.days,
                           "weeks": args.weeks}
    with tempfile.TemporaryDirectory(prefix="drkit-bench-fleet-") as tmp:
        work = Path(tmp)
        write_schedule(work / "config", names)
        (work / "home").mkdir()
        with fake_aws_env(work / "home"), mock_aws(), aws_like_pagination():
            ctx = Context(config_dir=work / "config", catalog_url=f"sqlite:///{work / 'catalog.db'}",
                          clock=FakeClock(at))
            say(f"fleet: {args.instances} instances, {args.days} days of history, at {at.isoformat()}")
            fleet = build_fleet(ctx, args.instances, at, args.days, args.weeks, say)
            out["fleet"] = {"counts": fleet.counts, "setup_s": fleet.setup_s}
            counter = CallCounter()

            def manual() -> dict[str, int]:
                from moto.rds.models import rds_backends

                return {r: sum(1 for s in rds_backends[ACCOUNT][region].database_snapshots.values()
                               if s.snapshot_type == "manual") for r, region in (("src", SRC), ("dst", DST))}

            ctx.catalog()  # open (and migrate) the catalog outside the measurements

            def bare_listings() -> dict[str, Any]:
                from drkit.aws.session import SessionFactory

                listed = {}
                for region in (SRC, DST):
                    client = SessionFactory(region=region).client("rds", region=region)  # counted like drkit's
                    for op, key in (("describe_db_snapshots", "DBSnapshots"),
                                    ("describe_db_cluster_snapshots", "DBClusterSnapshots")):
                        pager = client.get_paginator(op).paginate(
                            SnapshotType="manual", IncludeShared=False, IncludePublic=False,
                            PaginationConfig={"PageSize": 100})
                        listed[f"{region} {key}"] = sum(len(page[key]) for page in pager)
                return {"listed": listed}

            with counting(counter):
                def do_plan() -> dict[str, Any]:
                    actions, warnings = plan(ctx, SCHEDULE, at)
                    return {"actions": dict(Counter(a.action for a in actions)), "warnings": warnings}

                def do_run(only: str | None = None) -> dict[str, Any]:
                    run = run_rds_backups(ctx, SCHEDULE, at=at, only=only)
                    return {"outcomes": dict(Counter(o.action for o in run.outcomes)), "errors": run.errors,
                            "deleted": len(run.deleted), "warnings": run.warnings}

                say("measuring: bare listings, once per region and kind (the floor)")
                out["bare"] = measure("bare listings (30-day)", counter, bare_listings, manual())
                say("measuring: drkit plan (full history)")
                out["plan"] = measure("plan (30-day history)", counter, do_plan, manual())
                if args.prune_run:
                    say("measuring: drkit backup run with retention to apply to the whole fleet (slow)")
                    out["run_prune"] = measure("backup run (prunes all)", counter, do_run, manual())
                else:
                    say(f"measuring: drkit backup run --only {names[0]} (nothing due; its retention is)")
                    out["run_prune"] = measure(f"run --only {names[0]}", counter, lambda: do_run(names[0]),
                                               manual())
            if not args.prune_run:
                # The steady state a daily prune keeps: what drkit's own retention expires, removed
                # from moto directly (not measured), so the next run is the true no-op.
                expired = expire_in_moto(ctx)
                say(f"steady state: {expired} snapshots drkit's retention expires removed from moto")
            with counting(counter):
                out["bare_after"] = measure("bare listings (steady)", counter, bare_listings, manual())
                say("measuring: drkit backup run (no-op: nothing due, nothing to prune)")
                out["run_noop"] = measure("backup run (no-op)", counter, do_run, manual())
                say("measuring: drkit plan (steady state)")
                out["plan_after"] = measure("plan (steady state)", counter, do_plan, manual())
            ctx.close()
    return out


# -- CPU of the decisions, in memory ---------------------------------------------------------

def build_listings(names: list[str], at: datetime, days: int, weeks: int) -> dict[tuple[str, str], list[Any]]:
    """What RdsApi.snapshots() would return for the fleet, as drkit.aws.rds_model.Snapshot values."""
    from drkit.aws.rds_model import Snapshot
    from drkit.domain.schedule import last_slot, snapshot_id
    from drkit.jobs.rds import COPY, DAILY, MANAGED, TAG_KIND, TAG_RESOURCE, TAG_SCHEDULE, TAG_SOURCE

    daily_slots, copy_slots = history_slots(at, days, weeks)
    east: list[Any] = []
    west: list[Any] = []
    for name in names:
        base = {MANAGED: "drkit", TAG_SCHEDULE: SCHEDULE, TAG_RESOURCE: name, "drkit:source-region": SRC}
        for slot in daily_slots:
            sid = snapshot_id(name, DAILY, slot)
            east.append(Snapshot(
                id=sid, arn=f"arn:aws:rds:{SRC}:{ACCOUNT}:snapshot:{sid}", kind="instance", resource=name,
                snapshot_type="manual", status="available", created_at=slot + timedelta(minutes=5), region=SRC,
                encrypted=False, kms_key_id=None, size_gb=20, progress=100,
                tags=base | {TAG_KIND: DAILY, "drkit:expires-after": "7d"}, source_arn=None))
        for slot in copy_slots:
            sid = snapshot_id(name, COPY, slot)
            source = snapshot_id(name, DAILY, last_slot(DAILY_CRON, "UTC", slot))
            west.append(Snapshot(
                id=sid, arn=f"arn:aws:rds:{DST}:{ACCOUNT}:snapshot:{sid}", kind="instance", resource=name,
                snapshot_type="manual", status="available", created_at=slot + timedelta(minutes=20), region=DST,
                encrypted=True, kms_key_id=f"arn:aws:kms:{DST}:{ACCOUNT}:key/bench", size_gb=20, progress=100,
                tags=base | {TAG_KIND: COPY, "drkit:expires-after": "28d", TAG_SOURCE: source},
                source_arn=f"arn:aws:rds:{SRC}:{ACCOUNT}:snapshot:{source}"))
    return {(SRC, "instance"): east, (SRC, "cluster"): [], (DST, "instance"): west, (DST, "cluster"): []}


class _Listed:
    """Stands in for RdsApi in the CPU measurement: serves the pre-built listings (no AWS)."""

    def __init__(self, listings: dict[tuple[str, str], list[Any]], region: str) -> None:
        self.listings, self.region = listings, region

    def snapshots(self, *, kind: str = "instance", snapshot_type: str | None = "manual") -> list[Any]:
        return self.listings[(self.region, kind)]


@contextlib.contextmanager
def listings_served(listings: dict[tuple[str, str], list[Any]]) -> Iterator[None]:
    """Point rds_plan's and rds_prune's `_api` at in-memory listings, so only decisions are timed."""
    import drkit.jobs.rds_plan as rds_plan
    import drkit.jobs.rds_prune as rds_prune

    saved = rds_plan._api, rds_prune._api

    def fake(ctx: Any, schedule: str, region: str) -> _Listed:
        return _Listed(listings, region)

    rds_plan._api = rds_prune._api = fake
    try:
        yield
    finally:
        rds_plan._api, rds_prune._api = saved


def _cpu(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    best, result = math.inf, None
    for _ in range(repeat):
        start = time.process_time()
        result = fn()
        best = min(best, time.process_time() - start)
    return best, result


def run_cpu(size: int, args: argparse.Namespace, say: Callable[[str], None]) -> dict[str, Any]:
    from drkit.clock import FakeClock
    from drkit.domain.retention import Point, plan_retention
    from drkit.jobs.context import Context
    from drkit.jobs.plan import plan
    from drkit.jobs.rds import COPY, DAILY, TAG_KIND, TAG_RESOURCE
    from drkit.jobs.rds_plan import rds_due
    from drkit.jobs.rds_prune import plan_rds_prune

    at = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)
    names = [f"orders-{i:04d}" for i in range(size)]
    with tempfile.TemporaryDirectory(prefix="drkit-bench-cpu-") as tmp:
        write_schedule(Path(tmp) / "config", names)
        ctx = Context(config_dir=Path(tmp) / "config", clock=FakeClock(at))
        sched = ctx.config().schedule(SCHEDULE)  # loading the YAML is not part of the decision
        listings = build_listings(names, at, args.days, args.weeks)
    n_snaps = sum(len(v) for v in listings.values())
    say(f"cpu: {len(names)} instances, {n_snaps} snapshots in memory "
        f"({len(listings[(SRC, 'instance')])} daily + {len(listings[(DST, 'instance')])} copies)")
    policies = {(str(r.name), DAILY): r.snapshots.keep.to_policy() for r in sched.rds if r.snapshots} | {
        (str(r.name), COPY): r.copies.keep.to_policy() for r in sched.rds if r.copies}

    def retention_direct() -> int:
        # The lower bound: each listing grouped by resource once, then the domain's decision per group.
        groups: dict[tuple[str, str], list[Point]] = {}
        for snaps in listings.values():
            for s in snaps:
                key = (s.tags.get(TAG_RESOURCE, ""), s.tags.get(TAG_KIND, ""))
                if key in policies and s.status == "available" and s.created_at is not None:
                    groups.setdefault(key, []).append(Point(id=s.id, created_at=s.created_at))
        return sum(1 for key, pts in groups.items() for d in plan_retention(pts, policies[key]) if not d.keep)

    out: dict[str, Any] = {"instances": len(names), "snapshots": n_snaps, "repeat": args.repeat}
    with listings_served(listings):
        cpu, due = _cpu(lambda: rds_due(ctx, SCHEDULE, at, listings=dict(listings)), args.repeat)
        out["rds_due_s"] = cpu
        out["rds_due_states"] = dict(Counter(w.state for w in due))
        say(f"  rds_due (listings= pre-filled): {cpu:.2f} s CPU")
        cpu, (items, _) = _cpu(lambda: plan_rds_prune(ctx, SCHEDULE), args.repeat)
        out["plan_rds_prune_s"] = cpu
        out["prune_expired"] = sum(1 for i in items if not i.keep)
        say(f"  plan_rds_prune (listings served in memory): {cpu:.2f} s CPU")
        cpu, expired = _cpu(retention_direct, args.repeat)
        out["retention_direct_s"], out["retention_direct_expired"] = cpu, expired
        say(f"  retention alone (group once + plan_retention per resource): {cpu:.2f} s CPU")
        cpu, (actions, _) = _cpu(lambda: plan(ctx, SCHEDULE, at), args.repeat)
        out["plan_s"] = cpu
        out["plan_actions"] = dict(Counter(a.action for a in actions))
        say(f"  jobs.plan.plan (everything but AWS): {cpu:.2f} s CPU")
    if out["prune_expired"] != expired:
        raise RuntimeError(f"plan_rds_prune expires {out['prune_expired']}, the retention functions {expired}")
    return out


# -- report -----------------------------------------------------------------------------------

def targets(res: dict[str, Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []

    def add(target: str, ok: bool, figure: str, note: str = "") -> None:
        out.append({"target": target, "verdict": "PASS" if ok else "MISS", "figure": figure, "note": note})

    for key in ("plan", "run_noop"):
        m = res.get("moto", {}).get(key)
        if not m:
            continue
        name = "plan" if key == "plan" else "no-op backup run"
        add(f"{name}: no per-instance/per-snapshot calls", m["per_resource_calls"] == 0,
            f"{m['per_resource_calls']} calls", ", ".join(f"{op} {n}" for op, n in m["calls"].items()
                                                         if op.split(" ")[0] in PER_RESOURCE_OPS or "by id" in op))
        add(f"{name}: pages = ceil(n/100) per listing made", m["listing_pages"] == m["expected_pages"],
            f"{m['listing_pages']} of {m['expected_pages']}")
        twice = {k: v for k, v in m["listings"].items() if v > 1}
        add(f"{name}: one listing per region and kind", m["listing_pages"] == m["pages_one_listing_each"],
            f"{m['listing_pages']} calls vs {m['pages_one_listing_each']}",
            "listed more than once: " + ", ".join(f"{k} x{v}" for k, v in twice.items()) if twice else "")
    prune, noop = res.get("moto", {}).get("run_prune"), res.get("moto", {}).get("run_noop")
    if prune and noop:
        deleted = prune["result"]["deleted"]
        add(f"run that prunes {deleted}: clients do not grow with deletions",
            prune["clients_made"] <= noop["clients_made"] + 2, f"{prune['clients_made']} clients",
            f"{prune['client_construction_s']:.1f} s building them; the no-op run builds {noop['clients_made']}")
        add(f"run that prunes {deleted}: 2 calls per deletion (describe + delete)",
            prune["per_resource_calls"] == 2 * deleted, f"{prune['per_resource_calls']} calls")
    cpu = max(res.get("cpu") or [{}], key=lambda c: c.get("instances", 0))
    if cpu:
        add(f"plan of {cpu['instances']} instances, {cpu['snapshots']} snapshots < {CPU_TARGET_S:g} s CPU",
            cpu["plan_s"] < CPU_TARGET_S, f"{cpu['plan_s']:.2f} s",
            f"rds_due {cpu['rds_due_s']:.2f} s + plan_rds_prune {cpu['plan_rds_prune_s']:.2f} s; "
            f"retention alone {cpu['retention_direct_s']:.2f} s")
    return out


def _outcome(result: dict[str, Any]) -> str:
    if "listed" in result:
        return f"{sum(result['listed'].values())} listed"
    found = result.get("actions", result.get("outcomes")) or {}
    return ", ".join(f"{k} {v}" for k, v in found.items()) or "nothing"


def render(res: dict[str, Any]) -> str:
    lines: list[str] = []
    moto = res.get("moto")
    if moto:
        c = moto["fleet"]["counts"]
        lines += [f"RDS fleet in moto (in-process): {moto['instances']} instances in {SRC}, {moto['days']} days of "
                  f"history: {c['src_manual']} manual + {c['src_automated']} automated snapshots in {SRC}, "
                  f"{c['dst_manual']} copies in {DST}; at {moto['at']} (every slot done); setup "
                  f"{moto['fleet']['setup_s']:.1f} s", ""]
        cols = [k for k in ("bare", "plan", "run_prune", "bare_after", "run_noop", "plan_after") if k in moto]
        ops = sorted({op for k in cols for op in moto[k]["calls"]})
        lines.append(f"  {'API calls':48s}" + "".join(f" {moto[k]['label'][:22]:>24s}" for k in cols))
        for op in ops:
            lines.append(f"  {op:48s}" + "".join(f" {moto[k]['calls'].get(op, 0):>24d}" for k in cols))
        for label, key, fmt in (("total calls", "calls_total", "{:d}"), ("wall time (s)", "wall_s", "{:.2f}"),
                                ("CPU time (s)", "cpu_s", "{:.2f}"), ("clients made", "clients_made", "{:d}"),
                                ("  of which session+client construction (s)", "client_construction_s",
                                 "{:.2f}")):
            lines.append(f"  {label:48s}" + "".join(f" {fmt.format(moto[k][key]):>24s}" for k in cols))
        lines.append(f"  {'outcome':48s}" + "".join(
            f" {_outcome(moto[k]['result']):>24s}"
            for k in cols))
        lines.append(f"  {'pruned':48s}" + "".join(f" {moto[k]['result'].get('deleted', '-')!s:>24s}" for k in cols))
        lines.append("")
    sizes = res.get("cpu") or []
    if sizes:
        lines += [f"CPU of the decisions (time.process_time, best of {sizes[0]['repeat']}), snapshots built in "
                  "memory as rds_model.Snapshot, no AWS",
                  f"  {'instances / snapshots':48s}" + "".join(f" {c['instances']:>11d} / {c['snapshots']:<6d}"
                                                                for c in sizes)]
        for label, key in (("rds_due, listings= pre-filled (s)", "rds_due_s"),
                           ("plan_rds_prune, listings served in memory (s)", "plan_rds_prune_s"),
                           ("retention alone: group once + plan_retention (s)", "retention_direct_s"),
                           ("jobs.plan.plan, all of it but AWS (s)", "plan_s")):
            lines.append(f"  {label:48s}" + "".join(f" {c[key]:>20.2f}" for c in sizes))
        lines += [f"  {'points expired / actions':48s}" + "".join(
            f" {c['prune_expired']:>11d} / {sum(c['plan_actions'].values()):<6d}" for c in sizes), ""]
    lines.append("TARGETS")
    for t in res.get("targets", []):
        note = f"  ({t['note']})" if t["note"] else ""
        lines.append(f"  {t['verdict']:4s}  {t['target']:62s} {t['figure']}{note}")
    return "\n".join(lines)


def add_arguments(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--instances", type=int, default=200, help="DB instances in moto (default 200)")
    ap.add_argument("--days", type=int, default=30, help="daily snapshots of history per instance (default 30)")
    ap.add_argument("--weeks", type=int, default=4, help="weekly copies per instance in the DR region (default 4)")
    ap.add_argument("--cpu-instances", type=lambda t: [int(x) for x in t.split(",") if x.strip()],
                    default=[200, 1000], help="fleet sizes for the CPU measurement (default 200,1000; the "
                                              "target is judged on the largest)")
    ap.add_argument("--repeat", type=int, default=1, help="CPU measurement: best of N (default 1)")
    ap.add_argument("--prune-run", action="store_true",
                    help="measure a full `backup run` that applies retention to the whole history (slow: "
                         "drkit builds one RDS client per deleted snapshot); default: one resource's")
    ap.add_argument("--skip-moto", action="store_true", help="skip the moto fleet (API calls, wall time)")
    ap.add_argument("--skip-cpu", action="store_true", help="skip the in-memory CPU measurement")


def run(args: argparse.Namespace, say: Callable[[str], None] = print) -> tuple[dict[str, Any], str, int]:
    """The whole fleet benchmark; returns (figures, printed table, exit status)."""
    res: dict[str, Any] = {}
    status = 0
    try:
        if not args.skip_moto:
            res["moto"] = run_moto(args, say)
        if not args.skip_cpu:
            res["cpu"] = [run_cpu(size, args, say) for size in args.cpu_instances]
    except KeyboardInterrupt:
        res["error"], status = "interrupted", 130
    except Exception as exc:  # a benchmark reports what broke instead of a bare traceback
        import traceback

        res["error"], status = f"{type(exc).__name__}: {exc}", 1
        res["traceback"] = traceback.format_exc()
        say(res["traceback"])
    res["targets"] = targets(res)
    table = render(res)
    if res.get("error"):
        table += f"\n\nERROR: {res['error']}"
    return res, table, status


def run_into(results: dict[str, Any]) -> int:
    """For tests/bench/run.py: the default-size run, its table printed, figures under results["fleet"]."""
    ap = argparse.ArgumentParser()
    add_arguments(ap)
    data, table, status = run(ap.parse_args([]))
    print("\n" + table, flush=True)
    results["fleet"] = data
    return status


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    add_arguments(ap)
    ap.add_argument("--out", type=Path, help="JSON results file (default /tmp/drkit-bench/<timestamp>-fleet.json)")
    args = ap.parse_args()
    data, table, status = run(args)
    data["command"] = " ".join([sys.executable, *sys.argv])
    print("\n" + table)
    out = save_results(data, args.out, "fleet")
    print(f"\ncommand: {data['command']}\nresults: {out}")
    return status


if __name__ == "__main__":
    sys.exit(main())
