"""`drkit s3 replicate NAME`: cross-region replication with KMS for a configured bucket, as a plan, then applied.

Like `terraform plan`: drkit reads what exists (the cloud is the truth), computes every change
with its concrete values, shows them ("+ create", "~ change", "= unchanged"), and only then acts.
Running it again when nothing drifted plans only "= unchanged" and sends nothing.

    s3:
      - name: assets
        bucket: acme-assets-prod          # must exist
        replica_bucket: acme-assets-prod-dr
        region: us-west-2                 # the replica's region (default: aws.dr_region)
        kms_key: alias/drkit-dr           # a key in us-west-2
        replication_time_control: true

    plan = plan_replication(ctx, "production", "assets")
    for line in plan.lines(): print(line)
    result = apply_replication(ctx, plan, progress=lambda done, total, key: ...)

What it sets up: versioning on both buckets; the replica bucket (created in its region when
missing) with Block Public Access on and default encryption SSE-KMS with the DR key and S3
Bucket Keys; an IAM role `drkit-s3-replication-NAME` that S3 assumes, with a least-privilege
inline policy; one replication rule for the whole bucket that replicates SSE-KMS objects and
delete markers into the DR key (with Replication Time Control and its metrics when configured);
and a backfill of the objects that existed before the rule (S3 only replicates new writes).

What it refuses (exit 2, nothing changed): a missing source bucket; a replica bucket in another
region, or one whose default encryption uses another KMS key (drkit will not re-key a bucket it
did not make; a bucket with no default encryption, or S3's SSE-S3 default, is given the DR key
and the plan says so); a missing or unusable DR-region key; a source bucket whose replication
configuration holds rules drkit did not write (PutBucketReplication replaces the whole set).

Backfill: S3 Batch Replication where the endpoint offers it (probed with ListJobs; moto and most
S3-compatible endpoints do not), otherwise server-side copies with bounded concurrency. It is
resumable without a ledger file: the two listings ARE the ledger. Every run merges the sorted
listings of both buckets in one pass (memory flat in the number of objects) and copies only keys
missing from the replica, or present with a different size. A key already in the replica with
the same size is never overwritten: its ETag may differ legitimately, because the ETag of an
SSE-KMS object is not the MD5 of its data.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

from drkit.aws.kmskeys import resolve_key
from drkit.aws.s3repl import BPA_KEYS, DEFAULT_PART_SIZE, FIVE_GB, Encryption, ObjectInfo, ReplicationApi
from drkit.aws.session import SessionFactory
from drkit.domain.s3replication import (
    RTC_MINUTES,
    canonical,
    config_diff,
    normalise_replication,
    policy_summary,
    principals_of,
    replication_config,
    role_policy,
    rule_id,
    trust_policy,
)
from drkit.errors import DrkitError, UsageError
from drkit.jobs.context import Context

log = logging.getLogger("drkit.s3")

POLICY_NAME = "drkit-s3-replication"
ROLE_PREFIX = "drkit-s3-replication-"
CREATE, CHANGE, UNCHANGED = "create", "change", "unchanged"
SYMBOL = {CREATE: "+", CHANGE: "~", UNCHANGED: "="}

Progress = Callable[[int, int, str], None]  # (copied so far, total to copy, key just copied)


@dataclass(frozen=True)
class Change:
    """One line of the plan. `step` names what apply does for it (nothing when unchanged)."""

    action: str  # create | change | unchanged
    what: str
    detail: str
    step: str

    def line(self) -> str:
        return f"{SYMBOL[self.action]} {self.action:<9} {self.what}: {self.detail}"


@dataclass(frozen=True)
class Backfill:
    """What the merged listings found: objects in the source that the replica lacks (or differ in size)."""

    method: str  # "batch" (S3 Batch Replication) | "copy" (server-side CopyObject)
    missing: int
    missing_bytes: int
    sample: tuple[str, ...]
    source_objects: int


@dataclass
class ReplicationPlan:
    """Everything `apply_replication` needs, computed (and checked) by `plan_replication`."""

    schedule: str
    name: str
    source_bucket: str
    source_region: str
    replica_bucket: str
    replica_region: str
    key_arn: str
    source_keys: tuple[str, ...]
    role_name: str
    role_arn: str
    trust: dict[str, Any]
    policy: dict[str, Any]
    replication: dict[str, Any]
    backfill: Backfill
    changes: list[Change]
    api: ReplicationApi = field(repr=False)
    account: str = ""

    @property
    def pending(self) -> list[Change]:
        return [c for c in self.changes if c.action != UNCHANGED]

    def lines(self) -> list[str]:
        head = (f"s3 replicate {self.name}: {self.source_bucket} ({self.source_region}) -> "
                f"{self.replica_bucket} ({self.replica_region}), KMS key {self.key_arn}")
        creates = sum(c.action == CREATE for c in self.changes)
        changes = sum(c.action == CHANGE for c in self.changes)
        tail = f"plan: {creates} to create, {changes} to change, {len(self.changes) - creates - changes} unchanged"
        return [head, *(f"  {c.line()}" for c in self.changes), tail]


@dataclass
class ReplicationResult:
    applied: list[Change]
    copied: int = 0
    copied_bytes: int = 0
    batch_job: str | None = None


# -- plan ---------------------------------------------------------------------------------------------


def find_resource(ctx: Context, schedule: str | None, name: str) -> tuple[str, Any, Any]:
    """(schedule name, Schedule, S3Resource) for `name`; with no schedule given, the one that has it."""
    config = ctx.config()
    names = [schedule] if schedule else sorted(config.schedules)
    found = [(s, config.schedule(s)) for s in names if any(r.name == name for r in config.schedule(s).s3)]
    if not found:
        where = f"schedule {schedule}" if schedule else "any schedule"
        raise UsageError(f"no s3 resource named {name!r} in {where}: add it under `s3:` or fix the name")
    if len(found) > 1:
        raise UsageError(f"s3 resource {name!r} is in schedules {', '.join(s for s, _ in found)}: pick one "
                         "with --schedule")
    sched_name, sched = found[0]
    if sched.aws is None:
        raise UsageError(f"schedules/{sched_name}.yaml: an s3 section needs aws.region")
    res = next(r for r in sched.s3 if r.name == name)
    return sched_name, sched, res


def plan_replication(
    ctx: Context, schedule: str | None, name: str, *, factory: SessionFactory | None = None
) -> ReplicationPlan:
    """Read the current state and compute every change, or refuse (UsageError, exit 2) before any."""
    sched_name, sched, res = find_resource(ctx, schedule, name)
    api = ReplicationApi(factory or SessionFactory.from_schedule(sched))
    where = f"s3 {name} in schedules/{sched_name}.yaml"
    replica_region = str(res.region or sched.aws.dr_region or "")
    if not replica_region:
        raise UsageError(f"{where}: no replica region: set `region` or aws.dr_region")

    src_region = api.bucket_region(res.bucket, sched.aws.region)
    if src_region is None:
        raise UsageError(f"source bucket {res.bucket} does not exist ({where}): create it or fix `bucket`")
    if src_region == replica_region:
        raise UsageError(f"{where}: source bucket {res.bucket} is already in {replica_region}; cross-region "
                         "replication needs the replica in another region: fix `region`")
    try:
        key = resolve_key(api.factory, replica_region, res.kms_key, purpose=f"S3 replicas in {replica_region}")
    except UsageError as exc:
        raise UsageError(str(exc).replace("copies.kms_key", f"the kms_key of {where}")) from None

    dst_region = api.bucket_region(res.replica_bucket, replica_region)
    if dst_region is not None and dst_region != replica_region:
        raise UsageError(f"replica bucket {res.replica_bucket} is in {dst_region}, not {replica_region} ({where}): "
                         "use a bucket in the replica region or fix `region`")
    replica_exists = dst_region is not None

    changes: list[Change] = []
    changes.append(_versioning(api, res.bucket, src_region, "source"))
    if replica_exists:
        changes.append(Change(UNCHANGED, f"bucket {res.replica_bucket}", f"exists in {replica_region}", "none"))
        changes.append(_versioning(api, res.replica_bucket, replica_region, "replica"))
        changes.append(_bpa(api, res.replica_bucket, replica_region))
        changes.append(_encryption(api.encryption(res.replica_bucket, replica_region), res.replica_bucket,
                                   key.arn, where))
    else:
        changes += [
            Change(CREATE, f"bucket {res.replica_bucket}", f"in {replica_region} (LocationConstraint "
                   f"{replica_region})", "create-bucket"),
            Change(CREATE, f"versioning of {res.replica_bucket}", "Enabled", "replica-versioning"),
            Change(CREATE, f"Block Public Access of {res.replica_bucket}", "all four on", "replica-bpa"),
            Change(CREATE, f"default encryption of {res.replica_bucket}", f"aws:kms {key.arn}, BucketKeyEnabled",
                   "replica-encryption"),
        ]

    source_keys = _source_keys(api, res.bucket, src_region)
    missing = _count_missing(api, res.bucket, src_region, res.replica_bucket if replica_exists else None,
                             replica_region)
    account = api.account_id()
    method = "batch" if missing.missing and api.batch_available(account, src_region) else "copy"

    role_name = f"{ROLE_PREFIX}{name}"
    trust = trust_policy(batch=method == "batch")
    policy = role_policy(res.bucket, res.replica_bucket, src_region, replica_region, key.arn, source_keys,
                         batch=method == "batch")
    role = api.role(role_name)
    # Before the role exists its ARN is still known (IAM names it by account and name), so the
    # plan can show the exact configuration it will send; apply uses the ARN CreateRole returns.
    role_arn = role.arn if role else f"arn:aws:iam::{account}:role/{role_name}"
    if role is None:
        changes.append(Change(CREATE, f"IAM role {role_name}", f"trusts {principals_of(trust)}", "create-role"))
    elif canonical(role.trust) != canonical(trust):
        changes.append(Change(CHANGE, f"trust policy of IAM role {role_name}",
                              f"{principals_of(role.trust) or 'other'} -> {principals_of(trust)}", "update-trust"))
    else:
        changes.append(Change(UNCHANGED, f"IAM role {role_name}", f"trusts {principals_of(trust)}", "none"))
    current_policy = api.role_policy(role_name, POLICY_NAME) if role else None
    summary = policy_summary(policy)
    if current_policy is None:
        changes.append(Change(CREATE, f"inline policy {POLICY_NAME} of {role_name}", summary, "put-policy"))
    elif canonical(current_policy) != canonical(policy):
        changes.append(Change(CHANGE, f"inline policy {POLICY_NAME} of {role_name}",
                              f"{policy_summary(current_policy)} -> {summary}", "put-policy"))
    else:
        changes.append(Change(UNCHANGED, f"inline policy {POLICY_NAME} of {role_name}", summary, "none"))

    wanted = replication_config(role_arn, name, res.replica_bucket, key.arn, rtc=bool(res.replication_time_control))
    changes.append(_replication(api.replication(res.bucket, src_region), wanted, res.bucket, name, where))

    if missing.missing:
        how = ("S3 Batch Replication job" if method == "batch"
               else "server-side copies with SSE-KMS (no S3 Batch Operations at this endpoint)")
        sample = ", ".join(repr(k) for k in missing.sample) + (", ..." if missing.missing > len(missing.sample)
                                                               else "")
        changes.append(Change(CREATE, f"backfill into {res.replica_bucket}",
                              f"{missing.missing} of {missing.source_objects} objects ({_size(missing.missing_bytes)})"
                              f" by {how}: {sample}", "backfill"))
    else:
        changes.append(Change(UNCHANGED, f"backfill into {res.replica_bucket}",
                              f"all {missing.source_objects} current objects present", "none"))
    return ReplicationPlan(
        schedule=sched_name, name=name, source_bucket=res.bucket, source_region=src_region,
        replica_bucket=res.replica_bucket, replica_region=replica_region, key_arn=key.arn,
        source_keys=source_keys, role_name=role_name, role_arn=role_arn, trust=trust, policy=policy,
        replication=wanted, backfill=Backfill(method, missing.missing, missing.missing_bytes, missing.sample,
                                              missing.source_objects),
        changes=changes, api=api, account=account,
    )


def _versioning(api: ReplicationApi, bucket: str, region: str, which: str) -> Change:
    status = api.versioning(bucket, region)
    step = f"{which}-versioning"
    if status == "Enabled":
        return Change(UNCHANGED, f"versioning of {bucket}", "Enabled", "none")
    was = "Suspended" if status == "Suspended" else "never enabled"
    return Change(CHANGE, f"versioning of {bucket}", f"{was} -> Enabled (replication needs it)", step)


def _bpa(api: ReplicationApi, bucket: str, region: str) -> Change:
    current = api.public_access_block(bucket, region)
    what = f"Block Public Access of {bucket}"
    if current and all(current.values()):
        return Change(UNCHANGED, what, "all four on", "none")
    off = [k for k in BPA_KEYS if not (current or {}).get(k)]
    return Change(CHANGE, what, f"{', '.join(off)} off -> all four on", "replica-bpa")


def _encryption(current: Encryption | None, bucket: str, key_arn: str, where: str) -> Change:
    what = f"default encryption of {bucket}"
    wanted = f"aws:kms {key_arn}, BucketKeyEnabled"
    if current is None or current.algorithm == "AES256":
        was = "none" if current is None else "SSE-S3 (AES256)"
        return Change(CHANGE, what, f"{was} -> {wanted} (objects already there keep their encryption)",
                      "replica-encryption")
    if current.key != key_arn:
        raise UsageError(
            f"replica bucket {bucket} is encrypted with {current.algorithm} {current.key or 'the AWS managed key'}, "
            f"not {key_arn} ({where}): drkit does not re-key an existing bucket; set its default encryption to the "
            "DR key yourself, or use another replica bucket"
        )
    if not current.bucket_key:
        return Change(CHANGE, what, f"BucketKeyEnabled false -> true (key {key_arn})", "replica-encryption")
    return Change(UNCHANGED, what, wanted, "none")


def _replication(current: dict[str, Any] | None, wanted: dict[str, Any], bucket: str, name: str,
                 where: str) -> Change:
    what = f"replication rule {rule_id(name)} of {bucket}"
    rule = wanted["Rules"][0]
    dest = rule["Destination"]
    detail = (f"role {wanted['Role']}, whole bucket, priority 1, delete markers, SSE-KMS objects -> "
              f"{dest['Bucket']} under {dest['EncryptionConfiguration']['ReplicaKmsKeyID']}"
              + (f", RTC {RTC_MINUTES} min with metrics" if "ReplicationTime" in dest else ", no RTC"))
    if current is None:
        return Change(CREATE, what, detail, "put-replication")
    others = [str(r.get("ID") or "(no id)") for r in current.get("Rules", []) if r.get("ID") != rule_id(name)]
    if others:
        raise UsageError(
            f"source bucket {bucket} already has replication rules drkit did not write ({', '.join(others)}) "
            f"({where}): drkit would replace them; merge them by hand or remove them first"
        )
    diff = config_diff(normalise_replication(current), normalise_replication(wanted))
    if not diff:
        return Change(UNCHANGED, what, detail, "none")
    return Change(CHANGE, what, f"{'; '.join(diff)}", "put-replication")


def _size(n: int) -> str:
    if n < 1024:
        return f"{n} B"
    value = float(n)
    for unit in ("KiB", "MiB", "GiB", "TiB"):
        value /= 1024
        if value < 1024 or unit == "TiB":
            break
    return f"{value:.1f} {unit}"


def _source_keys(api: ReplicationApi, bucket: str, region: str) -> tuple[str, ...]:
    """The KMS key(s) the source bucket encrypts new objects with by default (the role must decrypt them).
    Objects written earlier with other keys are not discoverable without reading each one."""
    enc = api.encryption(bucket, region)
    if enc is None or not enc.algorithm.startswith("aws:kms"):
        return ()
    arn = api.key_arn(enc.key or "alias/aws/s3", region)
    return (arn,) if arn else ()


# -- the backfill ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Missing:
    missing: int
    missing_bytes: int
    sample: tuple[str, ...]
    source_objects: int


def to_copy(source: Iterable[ObjectInfo], replica: Iterable[ObjectInfo]) -> Iterator[ObjectInfo]:
    """Source objects missing from the replica or different in size, merging two listings sorted by
    key (S3 lists in UTF-8 byte order, which is Python's str order): one pass, flat memory."""
    rit = iter(replica)
    other = next(rit, None)
    for obj in source:
        while other is not None and other.key < obj.key:
            other = next(rit, None)
        if other is None or other.key != obj.key or other.size != obj.size:
            yield obj


def _count_missing(api: ReplicationApi, source: str, src_region: str, replica: str | None,
                   dst_region: str) -> _Missing:
    total = 0

    def counted() -> Iterator[ObjectInfo]:
        nonlocal total
        for obj in api.list_current(source, src_region):
            total += 1
            yield obj

    replica_objects = api.list_current(replica, dst_region) if replica else iter(())
    count, size, sample = 0, 0, list[str]()
    for obj in to_copy(counted(), replica_objects):
        count, size = count + 1, size + obj.size
        if len(sample) < 3:
            sample.append(obj.key)
    return _Missing(count, size, tuple(sample), total)


def _backfill_by_copy(plan: ReplicationPlan, result: ReplicationResult, progress: Progress | None, *,
                      concurrency: int, multipart_threshold: int, part_size: int) -> None:
    """Copy what the listings say is missing, `concurrency` at a time, counting into `result`.

    Submission is bounded (at most 2x `concurrency` queued), so memory stays flat. A failed copy
    does not stop the others; the failures are reported together at the end. An exception from
    `progress` (or Ctrl-C) cancels what has not started and lets running copies finish: a re-run
    re-lists and copies only what is still missing."""
    api = plan.api
    todo = to_copy(api.list_current(plan.source_bucket, plan.source_region),
                   api.list_current(plan.replica_bucket, plan.replica_region))
    total = plan.backfill.missing
    failures: list[str] = []

    def one(obj: ObjectInfo) -> ObjectInfo:
        api.copy(obj, source=plan.source_bucket, replica=plan.replica_bucket, region=plan.replica_region,
                 key_arn=plan.key_arn, multipart_threshold=multipart_threshold, part_size=part_size)
        return obj

    def settle(finished: Iterable[Future[ObjectInfo]]) -> None:
        for fut in finished:
            try:
                obj = fut.result()
            except DrkitError as exc:
                failures.append(str(exc))
                continue
            result.copied, result.copied_bytes = result.copied + 1, result.copied_bytes + obj.size
            if progress is not None:
                progress(result.copied, max(total, result.copied), obj.key)

    pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="drkit-backfill")
    pending: set[Future[ObjectInfo]] = set()
    try:
        for obj in todo:
            if len(pending) >= 2 * concurrency:
                finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                settle(finished)
            pending.add(pool.submit(one, obj))
        finished, pending = wait(pending)
        settle(finished)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    if failures:
        raise DrkitError(f"backfill: {len(failures)} object(s) not copied, {result.copied} copied; first: "
                         f"{failures[0]}; run again to retry only what is missing")


def batch_job_request(plan: ReplicationPlan, token: str) -> dict[str, Any]:
    """S3 Batch Replication for the objects never replicated (or failed): S3 builds the manifest."""
    return {
        "ConfirmationRequired": False,
        "Operation": {"S3ReplicateObject": {}},
        "Report": {"Enabled": False},
        "ClientRequestToken": token,
        "Priority": 10,
        "RoleArn": plan.role_arn,
        "Description": f"drkit backfill of {plan.source_bucket} into {plan.replica_bucket}",
        "ManifestGenerator": {
            "S3JobManifestGenerator": {
                "SourceBucket": f"arn:aws:s3:::{plan.source_bucket}",
                "EnableManifestOutput": False,
                "Filter": {"EligibleForReplication": True, "ObjectReplicationStatuses": ["NONE", "FAILED"]},
            }
        },
    }


# -- apply -------------------------------------------------------------------------------------------------


def apply_replication(
    ctx: Context,
    plan: ReplicationPlan,
    *,
    progress: Progress | None = None,
    concurrency: int = 8,
    multipart_threshold: int = FIVE_GB,
    part_size: int = DEFAULT_PART_SIZE,
) -> ReplicationResult:
    """Make the planned changes in a safe order (the replica is ready before anything points at it),
    then backfill; record what was done in the audit log, also when the backfill fails part-way."""
    if concurrency < 1:
        raise UsageError(f"backfill concurrency must be at least 1, not {concurrency}")
    result = ReplicationResult(applied=[])
    steps = {c.step: c for c in plan.pending}
    error: BaseException | None = None
    try:
        for step in ("create-bucket", "replica-versioning", "replica-bpa", "replica-encryption", "source-versioning",
                     "create-role", "update-trust", "put-policy", "put-replication", "backfill"):
            change = steps.get(step)
            if change is None:
                continue
            _apply_step(ctx, plan, step, result, progress, concurrency, multipart_threshold, part_size)
            result.applied.append(change)
    except BaseException as exc:
        error = exc
        raise
    finally:
        detail: dict[str, Any] = {
            "schedule": plan.schedule, "source": plan.source_bucket, "replica": plan.replica_bucket,
            "replica_region": plan.replica_region, "kms_key": plan.key_arn, "role": plan.role_arn or plan.role_name,
            "changes": [c.line() for c in result.applied], "backfill_method": plan.backfill.method,
            "copied": result.copied, "copied_bytes": result.copied_bytes, "batch_job": result.batch_job,
        }
        if error is not None:
            detail["error"] = str(error) or type(error).__name__
        if result.applied or error is not None:
            ctx.catalog().audit("s3-replicate", plan.name, detail)
    return result


def _apply_step(ctx: Context, plan: ReplicationPlan, step: str, result: ReplicationResult,
                progress: Progress | None, concurrency: int, multipart_threshold: int, part_size: int) -> None:
    api, dst, src = plan.api, plan.replica_bucket, plan.source_bucket
    if step == "create-bucket":
        api.create_bucket(dst, plan.replica_region)
    elif step == "replica-versioning":
        api.enable_versioning(dst, plan.replica_region)
    elif step == "replica-bpa":
        api.block_public_access(dst, plan.replica_region)
    elif step == "replica-encryption":
        api.put_encryption(dst, plan.replica_region, plan.key_arn)
    elif step == "source-versioning":
        api.enable_versioning(src, plan.source_region)
    elif step == "create-role":
        plan.role_arn = api.create_role(plan.role_name, plan.trust,
                                        f"S3 replication of {src} into {dst} (drkit s3 replicate {plan.name})")
    elif step == "update-trust":
        api.update_trust(plan.role_name, plan.trust)
    elif step == "put-policy":
        api.put_role_policy(plan.role_name, POLICY_NAME, plan.policy)
    elif step == "put-replication":
        plan.replication["Role"] = plan.role_arn
        api.put_replication(src, plan.source_region, plan.replication)
    elif step == "backfill":
        if plan.backfill.method == "batch":
            # One job per hour and resource however often the command is retried (idempotency token).
            token = f"drkit-{plan.name}-{int(ctx.clock.now().timestamp() // 3600)}"
            result.batch_job = api.create_batch_job(plan.account, plan.source_region, batch_job_request(plan, token))
            if result.batch_job is not None:
                return
            log.info("S3 Batch Operations not available at this endpoint: backfilling by server-side copy")
        _backfill_by_copy(plan, result, progress, concurrency=concurrency, multipart_threshold=multipart_threshold,
                          part_size=part_size)
