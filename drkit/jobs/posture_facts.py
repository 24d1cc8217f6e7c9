"""Live AWS settings for `drkit posture --with-aws`: the facts a schedule cannot declare.

drkit.domain.posture judges a schedule from its configuration; where the answer hangs on a
setting only AWS knows it says "unknown". This job reads those settings, read-only:

- RDS (the schedule's `aws.region`): one paginated DescribeDBInstances and/or
  DescribeDBClusters for the whole schedule, never one call per resource: backup retention
  (0 = no PITR), Multi-AZ, the latest restorable time.
- Cross-region automated backups of instances: one DescribeDBInstanceAutomatedBackups listing
  per other region (the schedule's `dr_region`, its copies' regions, and any region the
  instance itself names in DBInstanceAutomatedBackupsReplications). A replicated backup there
  carries the source instance's ARN in DBInstanceArn; it protects the instance while its
  Status is "replicating" (or "active"), not once it is "retained" (the source is gone) or
  while it is still "pending". Aurora has no such feature: that fact stays unknown.
- S3, per bucket: GetBucketVersioning, and GetBucketReplication (an enabled rule whose
  destination is the configured `replica_bucket`; Replication Time Control when such a rule
  has ReplicationTime Enabled). No replication configuration at all is a fact (False).

Anything that fails (AccessDenied, a missing resource, a network error) leaves exactly the
facts it would have given unknown and adds one warning line saying what and how to fix it:
`drkit posture` is a report and must still print; a wrong "fact" would be worse than none.

    facts = gather_facts(ctx, "production")
    for line in facts.warnings:
        ctx.say(line)
    lines = assess(ctx.config().schedule("production"), facts)

IAM (scheduler role, `drkit iam-policy --for scheduler`): IAM_ACTIONS below.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from drkit.aws.rds_errors import code_of, message_of
from drkit.aws.rds_model import arn_region, utc
from drkit.aws.session import SessionFactory
from drkit.config import Schedule
from drkit.domain.posture import Facts, RdsFacts, S3Facts
from drkit.errors import DrkitError
from drkit.jobs.context import Context

__all__ = ["IAM_ACTIONS", "GatheredFacts", "gather_facts"]

# Declared permissions (ARCHITECTURE.md): every call this module makes, as IAM actions.
IAM_ACTIONS = (
    "rds:DescribeDBInstances",
    "rds:DescribeDBClusters",
    "rds:DescribeDBInstanceAutomatedBackups",
    "s3:GetBucketVersioning",
    "s3:GetReplicationConfiguration",  # the GetBucketReplication call
)

PAGE_SIZE = 100  # RDS's MaxRecords ceiling: fewest calls per listing
REPLICATING = frozenset({"replicating", "active"})
_NO_REPLICATION = frozenset({"ReplicationConfigurationNotFoundError"})


@dataclass(frozen=True)
class GatheredFacts(Facts):
    """Facts, plus one line per thing that could not be read (its facts stay None = unknown)."""

    warnings: tuple[str, ...] = ()


class _Unreadable(Exception):
    """One read failed; `why` is a short reason for the warning line."""

    def __init__(self, why: str) -> None:
        super().__init__(why)
        self.why = why


def _why(exc: Exception, action: str) -> str:
    if isinstance(exc, ClientError):
        if code_of(exc) == "AccessDenied":
            return f"access denied: grant {action} (`drkit iam-policy --for scheduler`)"
        return f"{code_of(exc)}: {message_of(exc)}"
    return " ".join(str(exc).split())


def _read(call: Callable[[], Any], action: str) -> Any:
    """`call()`, with every AWS failure turned into _Unreadable (never a traceback)."""
    try:
        return call()
    except (ClientError, BotoCoreError, DrkitError) as exc:
        raise _Unreadable(_why(exc, action)) from None


def gather_facts(ctx: Context, schedule_name: str) -> GatheredFacts:
    """The live settings of `schedule_name`'s RDS and S3 resources, with a warning per gap.

    Raises UsageError only for an unknown schedule; AWS failures become warnings.
    """
    schedule = ctx.config().schedule(schedule_name)
    observed_at = ctx.clock.now()
    factory = SessionFactory.from_schedule(schedule)
    warnings: list[str] = []
    rds = _rds_facts(factory, schedule, warnings)
    s3 = _s3_facts(factory, schedule, warnings)
    for name, lag in measured_lags(ctx, [res.name for res in schedule.s3]).items():
        s3[name] = dataclasses.replace(s3.get(name, S3Facts()), lag=lag)
    return GatheredFacts(observed_at=observed_at, rds=rds, s3=s3, warnings=tuple(warnings))


def measured_lags(ctx: Context, names: list[str], *, max_age: timedelta = timedelta(days=1),
                  scan: int = 500) -> dict[str, timedelta]:
    """The replication lag the newest `drkit s3 verify` of each bucket measured (audit log),
    if it is recent enough to say something about now."""
    from drkit.jobs.s3 import VERIFY_ACTION

    wanted, found = set(names), {}
    if not wanted:
        return {}
    for event in ctx.catalog().audit_events(limit=scan):
        if event.action != VERIFY_ACTION or event.target not in wanted or event.target in found:
            continue
        if ctx.clock.now() - event.at <= max_age and event.detail.get("lag_s") is not None:
            found[event.target] = timedelta(seconds=float(event.detail["lag_s"]))
    return found


# --- RDS -------------------------------------------------------------------------------------


def _listing(factory: SessionFactory, region: str, method: str, key: str, action: str) -> list[dict[str, Any]]:
    """One whole paginated listing, or _Unreadable (a partial listing is no fact)."""

    def pages() -> list[dict[str, Any]]:
        paginator = factory.client("rds", region=region).get_paginator(method)
        return [item for page in paginator.paginate(PaginationConfig={"PageSize": PAGE_SIZE}) for item in page[key]]

    return list(_read(pages, action))


def _rds_facts(factory: SessionFactory, schedule: Schedule, warnings: list[str]) -> dict[str, RdsFacts]:
    if not schedule.rds or schedule.aws is None:
        return {}
    region = str(schedule.aws.region)
    facts: dict[str, RdsFacts] = {}
    kinds = (
        ("instance", "describe_db_instances", "DBInstances", "DBInstanceIdentifier", "rds:DescribeDBInstances"),
        ("cluster", "describe_db_clusters", "DBClusters", "DBClusterIdentifier", "rds:DescribeDBClusters"),
    )
    instance_items: dict[str, tuple[str, dict[str, Any]]] = {}  # resource name -> (identifier, item)
    for kind, method, key, id_key, action in kinds:
        wanted = {res.name: str(res.instance if kind == "instance" else res.cluster)
                  for res in schedule.rds if res.kind == kind}
        if not wanted:
            continue
        try:
            found = {str(item[id_key]): item for item in _listing(factory, region, method, key, action)}
        except _Unreadable as exc:
            names = ", ".join(sorted(wanted))
            warnings.append(f"cannot list RDS {kind}s in {region} ({exc.why}): backup retention, PITR and "
                            f"Multi-AZ of {names} stay unknown")
            continue
        for name, ident in wanted.items():
            item = found.get(ident)
            if item is None:
                warnings.append(f"rds {name}: no {kind} {ident} in {region}: its facts stay unknown; "
                                "check the schedule's rds entry")
                continue
            facts[name] = _rds_item_facts(item)
            if kind == "instance":
                instance_items[name] = (ident, item)
    if instance_items:
        _add_cross_region(factory, schedule, region, instance_items, facts, warnings)
    return facts


def _rds_item_facts(item: Mapping[str, Any]) -> RdsFacts:
    retention = item.get("BackupRetentionPeriod")
    multi_az = item.get("MultiAZ")
    return RdsFacts(
        backup_retention_days=None if retention is None else int(retention),
        multi_az=None if multi_az is None else bool(multi_az),
        latest_restorable_time=utc(item.get("LatestRestorableTime")),
    )


def _other_regions(schedule: Schedule, home: str, items: Iterable[Mapping[str, Any]]) -> list[str]:
    """Where replicated automated backups may live: the DR region, the copies' regions, and the
    regions the instances themselves name as replication targets."""
    assert schedule.aws is not None
    regions = {str(schedule.aws.dr_region)} if schedule.aws.dr_region else set()
    regions |= {str(res.copies.region) for res in schedule.rds if res.copies is not None and res.copies.region}
    for item in items:
        for replication in item.get("DBInstanceAutomatedBackupsReplications") or ():
            where = arn_region(str(replication.get("DBInstanceAutomatedBackupsArn", "")))
            if where:
                regions.add(where)
    regions.discard(home)
    return sorted(regions)


def _add_cross_region(
    factory: SessionFactory,
    schedule: Schedule,
    home: str,
    instances: Mapping[str, tuple[str, dict[str, Any]]],
    facts: dict[str, RdsFacts],
    warnings: list[str],
) -> None:
    """Set `cross_region_backups` on each instance's facts: True if a replicating automated backup
    of it is in another region; False only when every region that could hold one was read."""
    regions = _other_regions(schedule, home, (item for _, item in instances.values()))
    if not regions:
        return  # nowhere to look: unknown (the posture counts it as off and says so)
    protected: set[str] = set()
    complete = True
    for region in regions:
        try:
            backups = _listing(factory, region, "describe_db_instance_automated_backups",
                               "DBInstanceAutomatedBackups", "rds:DescribeDBInstanceAutomatedBackups")
        except _Unreadable as exc:
            complete = False
            warnings.append(f"cannot list automated backups in {region} ({exc.why}): cross-region automated "
                            f"backups of {', '.join(sorted(instances))} stay unknown")
            continue
        protected |= {str(b.get("DBInstanceArn")) for b in backups
                      if str(b.get("Status", "")).lower() in REPLICATING and b.get("DBInstanceArn")}
    for name, (_ident, item) in instances.items():
        replicated = str(item.get("DBInstanceArn", "")) in protected
        if replicated or complete:
            facts[name] = _with_cross_region(facts[name], replicated)


def _with_cross_region(facts: RdsFacts, value: bool) -> RdsFacts:
    return RdsFacts(
        backup_retention_days=facts.backup_retention_days,
        multi_az=facts.multi_az,
        cross_region_backups=value,
        latest_restorable_time=facts.latest_restorable_time,
    )


# --- S3 --------------------------------------------------------------------------------------


def _s3_facts(factory: SessionFactory, schedule: Schedule, warnings: list[str]) -> dict[str, S3Facts]:
    if not schedule.s3:
        return {}
    region = str(schedule.aws.region) if schedule.aws is not None else None
    try:
        client = factory.client("s3", region=region)
    except DrkitError as exc:
        names = ", ".join(res.name for res in schedule.s3)
        warnings.append(f"cannot reach S3 ({_why(exc, 's3')}): the facts of {names} stay unknown")
        return {}
    facts: dict[str, S3Facts] = {}
    for res in schedule.s3:
        versioning: bool | None = None
        replication: bool | None = None
        rtc: bool | None = None
        try:
            versioning = _versioning(client, res.bucket)
        except _Unreadable as exc:
            warnings.append(f"s3 {res.name}: cannot read versioning of bucket {res.bucket} ({exc.why}): "
                            "versioning stays unknown")
        try:
            replication, rtc = _replication(client, res.bucket, res.replica_bucket)
        except _Unreadable as exc:
            warnings.append(f"s3 {res.name}: cannot read the replication of bucket {res.bucket} ({exc.why}): "
                            "replication and Replication Time Control stay unknown")
        facts[res.name] = S3Facts(replication=replication, rtc=rtc, versioning=versioning)
    return facts


def _versioning(client: Any, bucket: str) -> bool:
    """Versioning is on ("Suspended" or never set: off)."""
    answer = _read(lambda: client.get_bucket_versioning(Bucket=bucket), "s3:GetBucketVersioning")
    return bool(answer.get("Status") == "Enabled")


def _replication(client: Any, bucket: str, replica: str) -> tuple[bool, bool]:
    """(an enabled rule replicates to `replica`, one of those rules has RTC on)."""
    try:
        config = client.get_bucket_replication(Bucket=bucket)["ReplicationConfiguration"]
    except ClientError as exc:
        if code_of(exc) in _NO_REPLICATION:
            return False, False
        raise _Unreadable(_why(exc, "s3:GetReplicationConfiguration")) from None
    except BotoCoreError as exc:
        raise _Unreadable(_why(exc, "s3:GetReplicationConfiguration")) from None
    target = {replica, f"arn:aws:s3:::{replica}"}
    rules = [r for r in config.get("Rules") or () if r.get("Status") == "Enabled"
             and (r.get("Destination") or {}).get("Bucket") in target]
    rtc = any(((r.get("Destination") or {}).get("ReplicationTime") or {}).get("Status") == "Enabled" for r in rules)
    return bool(rules), rtc
