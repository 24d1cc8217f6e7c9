"""The thin RDS adapter: list, snapshot, copy across regions with a destination key, tag, delete, wait.

One RdsApi per region, built from the SessionFactory (the one seam for AWS):

    src = RdsApi(factory, "us-east-1")
    snap = src.create_snapshot(kind="instance", resource="orders-prod",
                               snapshot_id="drkit-orders-20260101")
    snap = src.wait_available(snap, timeout_s=1800)
    src.add_tags(snap.arn, {"drkit:managed-by": "drkit"})       # tag only once it exists
    dst = RdsApi(factory, "us-west-2")
    key = resolve_key(factory, "us-west-2", "alias/drkit-dr")   # drkit/aws/kmskeys.py
    copy = dst.copy_snapshot(kind="instance", source=snap, target_id="drkit-orders-20260101",
                             kms_key_id=key.arn, tags={"drkit:managed-by": "drkit"})

What it guarantees, because moto does not check it and AWS's failures come late:
- lists are whole or an error: one paginated listing per region (100 per page), never a
  per-instance call, and never a partial list handed back after a failed page;
- "already exists" under drkit's deterministic id is success (the existing snapshot is
  returned), so a re-run or a retry never makes a second one;
- a copy names a destination KMS key and really crosses regions, or it is refused;
- only manual snapshots are deleted (checked against AWS, not the caller's copy);
- SnapshotQuotaExceeded and throttling are retried with backoff (drkit/aws/rds_errors.py);
  AccessDenied is one line naming the IAM action to grant. `RdsApi.IAM` declares every action.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from botocore.exceptions import BotoCoreError, ClientError, WaiterError

from drkit.aws.rds_errors import Retrier, SnapshotTimeout, code_of, failure
from drkit.aws.rds_model import (
    DbCluster,
    DbInstance,
    Snapshot,
    arn_region,
    cluster_from,
    instance_from,
    ops,
    snapshot_from,
    tag_list,
)
from drkit.aws.session import SessionFactory
from drkit.clock import Clock, SystemClock
from drkit.errors import DrkitError, UsageError

__all__ = ["IAM_ACTIONS", "PAGE_SIZE", "DbCluster", "DbInstance", "RdsApi", "Snapshot", "SnapshotTimeout"]

PAGE_SIZE = 100  # RDS's MaxRecords ceiling: fewest calls per listing

_DESCRIBE_SNAPSHOTS = ("rds:DescribeDBSnapshots", "rds:DescribeDBClusterSnapshots")


class RdsApi:
    """RDS in one region. Nothing is cached: every method asks AWS (the cloud is the truth)."""

    # Declared permissions (ARCHITECTURE.md): method -> the IAM actions it may use.
    IAM: ClassVar[dict[str, tuple[str, ...]]] = {
        "instances": ("rds:DescribeDBInstances",),
        "clusters": ("rds:DescribeDBClusters",),
        "snapshots": _DESCRIBE_SNAPSHOTS,
        "describe_snapshot": _DESCRIBE_SNAPSHOTS,
        # Tags given at create time are authorised as AddTagsToResource; "already exists"
        # describes the existing snapshot.
        "create_snapshot": (
            "rds:CreateDBSnapshot",
            "rds:CreateDBClusterSnapshot",
            "rds:AddTagsToResource",
            *_DESCRIBE_SNAPSHOTS,
        ),
        "add_tags": ("rds:AddTagsToResource",),
        # RDS uses the destination key on the caller's behalf: it needs a grant on it.
        "copy_snapshot": (
            "rds:CopyDBSnapshot",
            "rds:CopyDBClusterSnapshot",
            "rds:AddTagsToResource",
            *_DESCRIBE_SNAPSHOTS,
            "kms:CreateGrant",
            "kms:DescribeKey",
        ),
        "delete_snapshot": ("rds:DeleteDBSnapshot", "rds:DeleteDBClusterSnapshot", *_DESCRIBE_SNAPSHOTS),
        "wait_available": _DESCRIBE_SNAPSHOTS,
    }

    def __init__(
        self,
        factory: SessionFactory,
        region: str,
        *,
        clock: Clock | None = None,
        sleep: Callable[[float], None] | None = None,
        retry_attempts: int = 5,
        retry_base_s: float = 2.0,
    ) -> None:
        if not region:
            raise UsageError("RDS needs a region: set aws.region in the schedule")
        self.region = region
        self.clock: Clock = SystemClock() if clock is None else clock
        # The boto3 client (public so tests can hook botocore events on exactly this client).
        self.client: Any = factory.client("rds", region=region)
        self._retry = Retrier(time.sleep if sleep is None else sleep, attempts=retry_attempts, base_s=retry_base_s)

    def __repr__(self) -> str:
        return f"RdsApi(region={self.region!r})"

    # -- listings -------------------------------------------------------------------------

    def instances(self) -> list[DbInstance]:
        """Every DB instance in the region, in one paginated listing."""
        return [instance_from(i) for i in self._list("describe_db_instances", "DBInstances", "list DB instances")]

    def clusters(self) -> list[DbCluster]:
        """Every DB cluster in the region, in one paginated listing."""
        return [cluster_from(c) for c in self._list("describe_db_clusters", "DBClusters", "list DB clusters")]

    def snapshots(self, *, kind: str = "instance", snapshot_type: str | None = "manual") -> list[Snapshot]:
        """Every snapshot of `kind` (and `snapshot_type`; None: manual and automated) in the
        region, in one paginated listing for all resources. Shared and public snapshots of
        other accounts are left out: drkit never manages those."""
        o = ops(kind)
        params: dict[str, Any] = {"IncludeShared": False, "IncludePublic": False}
        if snapshot_type is not None:
            params["SnapshotType"] = snapshot_type
        items = self._list(o.describe, o.list_key, f"list {kind} snapshots", **params)
        return [snapshot_from(kind, self.region, item) for item in items]

    def describe_snapshot(self, kind: str, snapshot_id: str) -> Snapshot | None:
        """The snapshot `snapshot_id` of `kind` in this region, or None if there is none."""
        o = ops(kind)
        try:
            items = getattr(self.client, o.describe)(**{o.id_param: snapshot_id})[o.list_key]
        except ClientError as exc:
            if code_of(exc) in o.not_found_codes:
                return None
            raise failure(exc, f"describe {kind} snapshot {snapshot_id}", self.region) from None
        except BotoCoreError as exc:
            raise failure(exc, f"describe {kind} snapshot {snapshot_id}", self.region) from None
        return snapshot_from(kind, self.region, items[0]) if items else None

    def _list(self, method: str, key: str, doing: str, **params: Any) -> list[dict[str, Any]]:
        # Whole or nothing: a failed page raises, so nobody prunes from half a listing.
        items: list[dict[str, Any]] = []
        try:
            pages = self.client.get_paginator(method).paginate(**params, PaginationConfig={"PageSize": PAGE_SIZE})
            for page in pages:
                items.extend(page.get(key, ()))
        except (ClientError, BotoCoreError) as exc:
            raise failure(exc, doing, self.region) from None
        return items

    # -- changes --------------------------------------------------------------------------

    def create_snapshot(
        self, *, kind: str, resource: str, snapshot_id: str, tags: Mapping[str, str] | None = None
    ) -> Snapshot:
        """Start a manual snapshot of `resource`; if `snapshot_id` exists already, return it.

        Pass no `tags` to tag later with add_tags once the snapshot is available (tags that
        alarms and retention read should not appear on a snapshot that may still fail).
        """
        o = ops(kind)
        doing = f"snapshot {kind} {resource} as {snapshot_id}"
        params: dict[str, Any] = {o.resource_param: resource, o.id_param: snapshot_id}
        if tags:
            params["Tags"] = tag_list(tags)
        try:
            answer = self._retry.run(lambda: getattr(self.client, o.create)(**params), doing, self.region)
        except ClientError as exc:
            if code_of(exc) not in o.exists_codes:
                raise failure(exc, doing, self.region) from None
            return self._existing(kind, snapshot_id, resource, doing)
        except BotoCoreError as exc:
            raise failure(exc, doing, self.region) from None
        return snapshot_from(kind, self.region, answer[o.item_key])

    def add_tags(self, arn: str, tags: Mapping[str, str]) -> None:
        """Set `tags` on the RDS resource `arn` (in this region); other tags are left alone."""
        if not tags:
            return
        where = arn_region(arn)
        if where and where != self.region:
            raise UsageError(f"cannot tag {arn} through RDS in {self.region}: it is in {where}")
        doing = f"tag {arn}"
        try:
            self._retry.run(
                lambda: self.client.add_tags_to_resource(ResourceName=arn, Tags=tag_list(tags)),
                doing,
                self.region,
            )
        except (ClientError, BotoCoreError) as exc:
            raise failure(exc, doing, self.region) from None

    def copy_snapshot(
        self,
        *,
        kind: str,
        source: Snapshot,
        target_id: str,
        kms_key_id: str,
        tags: Mapping[str, str],
        cross_region: bool = True,
    ) -> Snapshot:
        """Copy `source` into this (the destination) region as `target_id`, encrypted with
        `kms_key_id` (a key in this region: resolve aliases with drkit.aws.kmskeys first).
        Source tags are not copied; `tags` are set on the copy. If `target_id` exists, it is
        returned: a copy still running from an earlier run is picked up, not duplicated."""
        o = ops(kind)
        self._check_copy(kind, source, kms_key_id, cross_region)
        doing = f"copy {kind} snapshot {source.id} from {source.region} as {target_id}"
        params: dict[str, Any] = {
            o.copy_source_param: source.arn,
            o.copy_target_param: target_id,
            "KmsKeyId": kms_key_id,
            "CopyTags": False,
            "Tags": tag_list(tags),
        }
        if cross_region:
            # botocore presigns the source-region request from SourceRegion.
            params["SourceRegion"] = source.region
        try:
            answer = self._retry.run(lambda: getattr(self.client, o.copy)(**params), doing, self.region)
        except ClientError as exc:
            if code_of(exc) not in o.exists_codes:
                raise failure(exc, doing, self.region) from None
            return self._existing(kind, target_id, source.resource, doing)
        except BotoCoreError as exc:
            raise failure(exc, doing, self.region) from None
        return snapshot_from(kind, self.region, answer[o.item_key])

    def _check_copy(self, kind: str, source: Snapshot, kms_key_id: str, cross_region: bool) -> None:
        # AWS checks some of these only after the copy started (moto never): drkit checks first.
        what = f"{kind} snapshot {source.id}"
        if source.kind != kind:
            raise UsageError(f"cannot copy {source.kind} snapshot {source.id} as a {kind} snapshot")
        if not (kms_key_id or "").strip():
            raise UsageError(
                f"refusing to copy {what} to {self.region} without a KMS key there: "
                f"set copies.kms_key to a key in {self.region}"
            )
        key_region = arn_region(kms_key_id)
        if key_region and key_region != self.region:
            raise UsageError(
                f"refusing to copy {what} to {self.region} with KMS key {kms_key_id}: that key is in "
                f"{key_region}; copies.kms_key must be a key in {self.region}"
            )
        if cross_region and source.region == self.region:
            raise UsageError(
                f"refusing a cross-region copy of {what}: source and destination are both {self.region}; "
                "set copies.region to the disaster-recovery region"
            )
        if not cross_region and source.region != self.region:
            raise UsageError(f"{what} is in {source.region}, not {self.region}: that is a cross-region copy")
        if source.status != "available":
            raise DrkitError(f"cannot copy {what} yet: it is {source.status}, not available; copy it on a later run")
        if kind == "cluster" and not source.encrypted:
            raise UsageError(
                f"cannot copy {what} encrypted: RDS cannot encrypt an unencrypted cluster snapshot while "
                "copying it; encrypt the cluster first (restore it from a snapshot with a KMS key)"
            )

    def delete_snapshot(self, snap: Snapshot) -> None:
        """Delete a manual snapshot. Anything else (automated, AWS Backup, shared) is refused,
        judged on what AWS says now rather than on `snap`. Already gone counts as deleted."""
        if snap.region != self.region:
            raise UsageError(
                f"cannot delete {snap.kind} snapshot {snap.id} through RDS in {self.region}: it is in {snap.region}"
            )
        _refuse_unmanaged(snap)
        current = self.describe_snapshot(snap.kind, snap.id)
        if current is None:
            return
        _refuse_unmanaged(current)
        o = ops(snap.kind)
        doing = f"delete {snap.kind} snapshot {snap.id}"
        try:
            self._retry.run(lambda: getattr(self.client, o.delete)(**{o.id_param: snap.id}), doing, self.region)
        except ClientError as exc:
            if code_of(exc) in o.not_found_codes:
                return
            raise failure(exc, doing, self.region) from None
        except BotoCoreError as exc:
            raise failure(exc, doing, self.region) from None

    # -- waiting --------------------------------------------------------------------------

    def wait_available(self, snap: Snapshot, *, timeout_s: float, poll_s: float = 15.0) -> Snapshot:
        """Wait (botocore's waiter, polling every `poll_s`) until `snap` is available, at most
        about `timeout_s` (never longer); return it as AWS now describes it.

        Raises SnapshotTimeout if it is still in progress at the end, DrkitError if it failed
        or disappeared (the waiter's terminal states: failed, deleting, deleted, ...)."""
        if poll_s <= 0:
            raise ValueError(f"poll_s must be positive, not {poll_s}")
        o = ops(snap.kind)
        # The first look is immediate; n looks sleep n-1 times: stay within the budget.
        attempts = math.floor(max(timeout_s, 0.0) / poll_s + 1e-9) + 1  # 1e-9: 0.3 / 0.05 is 5.999...
        started = self.clock.monotonic()
        try:
            self.client.get_waiter(o.waiter).wait(
                **{o.id_param: snap.id}, WaiterConfig={"Delay": poll_s, "MaxAttempts": attempts}
            )
        except WaiterError as exc:
            raise self._wait_failure(snap, exc, self.clock.monotonic() - started) from None
        except (ClientError, BotoCoreError) as exc:
            raise failure(exc, f"wait for {snap.kind} snapshot {snap.id}", self.region) from None
        now = self.describe_snapshot(snap.kind, snap.id)
        if now is None:
            raise DrkitError(
                f"{snap.kind} snapshot {snap.id} in {self.region} disappeared right after it became available"
            )
        return now

    def _wait_failure(self, snap: Snapshot, exc: WaiterError, waited_s: float) -> DrkitError:
        o = ops(snap.kind)
        response: dict[str, Any] = exc.last_response or {}
        what = f"{snap.kind} snapshot {snap.id} in {self.region}"
        if "Error" in response:
            error = ClientError(response, o.describe_op)
            if code_of(error) in o.not_found_codes:
                return DrkitError(f"{what} disappeared while drkit waited for it: it was deleted or failed")
            return failure(error, f"wait for {snap.kind} snapshot {snap.id}", self.region)
        items = response.get(o.list_key) or []
        last = snapshot_from(snap.kind, self.region, items[0]) if items else snap
        if str(exc.kwargs.get("reason", "")).startswith("Max attempts exceeded"):
            return SnapshotTimeout(last, waited_s)
        return DrkitError(
            f"{what} is {last.status}: it will not become available; look at the RDS events for "
            f"{snap.resource}, then take a new snapshot"
        )

    def _existing(self, kind: str, snapshot_id: str, resource: str, doing: str) -> Snapshot:
        """The snapshot that answered "already exists": ours if it was taken of the same resource."""
        found = self.describe_snapshot(kind, snapshot_id)
        if found is None:
            raise DrkitError(f"cannot {doing} in {self.region}: AWS says it exists but cannot describe it; run again")
        if resource and found.resource and found.resource != resource:
            raise DrkitError(
                f"cannot {doing} in {self.region}: snapshot {snapshot_id} already exists but was taken "
                f"of {found.resource}, not {resource}; rename one of them"
            )
        return found


def _refuse_unmanaged(snap: Snapshot) -> None:
    # Automated snapshots belong to RDS's own retention (deleting them loses PITR history);
    # awsbackup ones to AWS Backup; shared/public ones to another account. moto would delete them.
    if snap.snapshot_type != "manual":
        raise DrkitError(
            f"refusing to delete {snap.kind} snapshot {snap.id} in {snap.region}: it is a "
            f"{snap.snapshot_type or 'non-manual'} snapshot, not a manual one drkit may delete"
        )


# `drkit iam-policy` unions these (the house's IAM_ACTIONS constant).
IAM_ACTIONS: tuple[str, ...] = tuple(sorted({a for actions in RdsApi.IAM.values() for a in actions}))
