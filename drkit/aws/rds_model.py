"""Values the RDS adapter returns, and how each is read from what the RDS API answers.

Frozen dataclasses, not the raw dicts boto3 gives (ARCHITECTURE.md): callers get one shape for
DB snapshots and DB cluster snapshots alike, times in UTC, tags as a mapping (AWS refuses tag
filters on describe_db_snapshots, so TagList is where tags are read), and `kms_key_id` only
where the thing is encrypted (moto reports a placeholder key on unencrypted clusters; AWS
reports nothing). `_Ops` holds the per-kind API names so drkit/aws/rds.py has one code path
for both kinds instead of an if/else in every method.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

KINDS = ("instance", "cluster")


@dataclass(frozen=True)
class Snapshot:
    """One DB snapshot (kind "instance") or DB cluster snapshot (kind "cluster") in one region."""

    id: str
    arn: str
    kind: str  # "instance" | "cluster"
    resource: str  # the DB instance or cluster id it was taken from
    snapshot_type: str  # "manual" | "automated" | "awsbackup" | ...
    status: str  # "available" | "creating" | "copying" | ... (lower-case, as AWS returns)
    created_at: datetime | None  # SnapshotCreateTime; None while AWS has not set it
    region: str
    encrypted: bool
    kms_key_id: str | None
    size_gb: int | None
    progress: int | None
    tags: Mapping[str, str] = field(hash=False)
    source_arn: str | None  # the snapshot this one was copied from (cross-region/account copies)


@dataclass(frozen=True)
class DbInstance:
    """A DB instance as drkit needs it: can it be snapshotted, and is point-in-time recovery on."""

    id: str
    arn: str
    status: str
    engine: str
    backup_retention_days: int
    encrypted: bool
    kms_key_id: str | None
    cluster: str | None  # the Aurora cluster it belongs to (snapshot the cluster, not the instance)
    latest_restorable_time: datetime | None
    tags: Mapping[str, str] = field(hash=False)


@dataclass(frozen=True)
class DbCluster:
    """A DB cluster (Aurora or Multi-AZ cluster)."""

    id: str
    arn: str
    status: str
    engine: str
    backup_retention_days: int
    encrypted: bool
    kms_key_id: str | None
    latest_restorable_time: datetime | None
    tags: Mapping[str, str] = field(hash=False)


@dataclass(frozen=True)
class _Ops:
    """The RDS API names for one kind of snapshot."""

    kind: str
    describe: str  # boto3 method / paginator name
    describe_op: str  # the API operation (its IAM action is "rds:" + this)
    list_key: str  # list in a describe answer
    item_key: str  # single item in a create/copy answer
    id_param: str
    resource_param: str
    create: str
    copy: str
    copy_source_param: str
    copy_target_param: str
    delete: str
    waiter: str
    exists_codes: frozenset[str]
    not_found_codes: frozenset[str]


OPS: dict[str, _Ops] = {
    "instance": _Ops(
        kind="instance",
        describe="describe_db_snapshots",
        describe_op="DescribeDBSnapshots",
        list_key="DBSnapshots",
        item_key="DBSnapshot",
        id_param="DBSnapshotIdentifier",
        resource_param="DBInstanceIdentifier",
        create="create_db_snapshot",
        copy="copy_db_snapshot",
        copy_source_param="SourceDBSnapshotIdentifier",
        copy_target_param="TargetDBSnapshotIdentifier",
        delete="delete_db_snapshot",
        waiter="db_snapshot_available",
        exists_codes=frozenset({"DBSnapshotAlreadyExists", "DBSnapshotAlreadyExistsFault"}),
        not_found_codes=frozenset({"DBSnapshotNotFound", "DBSnapshotNotFoundFault"}),
    ),
    "cluster": _Ops(
        kind="cluster",
        describe="describe_db_cluster_snapshots",
        describe_op="DescribeDBClusterSnapshots",
        list_key="DBClusterSnapshots",
        item_key="DBClusterSnapshot",
        id_param="DBClusterSnapshotIdentifier",
        resource_param="DBClusterIdentifier",
        create="create_db_cluster_snapshot",
        copy="copy_db_cluster_snapshot",
        copy_source_param="SourceDBClusterSnapshotIdentifier",
        copy_target_param="TargetDBClusterSnapshotIdentifier",
        delete="delete_db_cluster_snapshot",
        waiter="db_cluster_snapshot_available",
        exists_codes=frozenset({"DBClusterSnapshotAlreadyExistsFault", "DBClusterSnapshotAlreadyExists"}),
        not_found_codes=frozenset({"DBClusterSnapshotNotFoundFault", "DBClusterSnapshotNotFound"}),
    ),
}


def ops(kind: str) -> _Ops:
    """The API names for `kind`; a wrong kind is a programming error, not a user's."""
    try:
        return OPS[kind]
    except KeyError:
        raise ValueError(f"snapshot kind must be one of {KINDS}, not {kind!r}") from None


def arn_region(arn: str) -> str | None:
    """The region field of an ARN (arn:PARTITION:SERVICE:REGION:ACCOUNT:...), or None."""
    parts = arn.split(":")
    if len(parts) >= 6 and parts[0] == "arn":
        return parts[3] or None
    return None


def tags_of(item: Mapping[str, Any]) -> dict[str, str]:
    return {str(t["Key"]): str(t.get("Value", "")) for t in item.get("TagList") or ()}


def tag_list(tags: Mapping[str, str]) -> list[dict[str, str]]:
    return [{"Key": k, "Value": v} for k, v in tags.items()]


def utc(value: Any) -> datetime | None:
    """botocore's datetimes carry the local zone (tzlocal); drkit compares in UTC."""
    if not isinstance(value, datetime):
        return None
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def _int(value: Any) -> int | None:
    return int(value) if value is not None else None


def _key(item: Mapping[str, Any], encrypted: bool) -> str | None:
    key = item.get("KmsKeyId")
    return str(key) if encrypted and key else None


def snapshot_from(kind: str, region: str, item: Mapping[str, Any]) -> Snapshot:
    """A Snapshot from one entry of DBSnapshots / DBClusterSnapshots (or a create/copy answer)."""
    if kind == "instance":
        arn = str(item.get("DBSnapshotArn", ""))
        sid, resource = item["DBSnapshotIdentifier"], item.get("DBInstanceIdentifier", "")
        encrypted = bool(item.get("Encrypted", False))
        source = item.get("SourceDBSnapshotIdentifier")
    else:
        arn = str(item.get("DBClusterSnapshotArn", ""))
        sid, resource = item["DBClusterSnapshotIdentifier"], item.get("DBClusterIdentifier", "")
        encrypted = bool(item.get("StorageEncrypted", False))
        source = item.get("SourceDBClusterSnapshotArn")
    return Snapshot(
        id=str(sid),
        arn=arn,
        kind=kind,
        resource=str(resource),
        snapshot_type=str(item.get("SnapshotType", "")),
        status=str(item.get("Status", "")),
        created_at=utc(item.get("SnapshotCreateTime")),
        # The ARN says where the snapshot lives; the client's region is the fallback.
        region=arn_region(arn) or region,
        encrypted=encrypted,
        kms_key_id=_key(item, encrypted),
        size_gb=_int(item.get("AllocatedStorage")),
        progress=_int(item.get("PercentProgress")),
        tags=tags_of(item),
        source_arn=str(source) if source else None,
    )


def instance_from(item: Mapping[str, Any]) -> DbInstance:
    encrypted = bool(item.get("StorageEncrypted", False))
    return DbInstance(
        id=str(item["DBInstanceIdentifier"]),
        arn=str(item.get("DBInstanceArn", "")),
        status=str(item.get("DBInstanceStatus", "")),
        engine=str(item.get("Engine", "")),
        backup_retention_days=int(item.get("BackupRetentionPeriod") or 0),
        encrypted=encrypted,
        kms_key_id=_key(item, encrypted),
        cluster=item.get("DBClusterIdentifier") or None,
        latest_restorable_time=utc(item.get("LatestRestorableTime")),
        tags=tags_of(item),
    )


def cluster_from(item: Mapping[str, Any]) -> DbCluster:
    encrypted = bool(item.get("StorageEncrypted", False))
    return DbCluster(
        id=str(item["DBClusterIdentifier"]),
        arn=str(item.get("DBClusterArn", "")),
        status=str(item.get("Status", "")),
        engine=str(item.get("Engine", "")),
        backup_retention_days=int(item.get("BackupRetentionPeriod") or 0),
        encrypted=encrypted,
        kms_key_id=_key(item, encrypted),
        latest_restorable_time=utc(item.get("LatestRestorableTime")),
        tags=tags_of(item),
    )
