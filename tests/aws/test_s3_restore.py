"""`drkit s3 restore` (drkit/jobs/s3_restore.py over drkit/aws/s3versions.py) against moto's S3.

A bucket with a scripted history (creates, overwrites, deletes, a re-create, an SSE-KMS object,
keys with unicode and spaces, a prefix and keys outside it) is restored to several times T and
checked object by object: the bytes a reader now gets are the bytes a reader got at T, no version
was removed, and a second run writes nothing.

moto stamps LastModified with the real clock (and lists it to the second). Rather than sleeping
between writes, each scripted write's time is set on moto's in-process backend object
(`s3_backends[...].buckets[b].keys.getlist(key)[-1].last_modified`) right after the write, at
known minutes in the past; the restore's own writes keep moto's real "now", after all of them.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto.core import DEFAULT_ACCOUNT_ID
from moto.s3.models import s3_backends

from drkit.aws.s3versions import bucket_facts
from drkit.errors import DrkitError, UsageError
from drkit.jobs.context import Context
from drkit.jobs.s3_restore import RestoreLedger, apply_restore, plan_restore
from tests.aws.declared import GuardedFactoryMaker

BUCKET = "acme-assets-prod"
REGION = "us-west-2"  # not the factory's us-east-1: the restore must find the bucket's own region
MiB = 1 << 20
# Real "now" minus two days, to the minute: in the past for the future-time check, and well
# before the restore's own writes, which moto stamps with the real clock.
BASE = (datetime.now(UTC) - timedelta(days=2)).replace(second=0, microsecond=0)

# (minute, key, content or None for a delete, SSE-KMS?)
SCRIPT: list[tuple[int, str, bytes | None, bool]] = [
    (0, "a.txt", b"a0", False),
    (0, "docs/keep.txt", b"keep", False),
    (0, "docs/über café.txt", b"u0", False),
    (0, "outside/x", b"x0", False),
    (10, "a.txt", b"a1", False),
    (10, "kms/secret", b"s0", True),
    (20, "docs/über café.txt", None, False),
    (20, "docs/new file.txt", b"n0", False),
    (30, "docs/über café.txt", b"u1", False),
    (30, "kms/secret", b"s1", True),
    (40, "a.txt", None, False),
    (40, "outside/x", b"x1", False),
    (50, "docs/new file.txt", b"n1", False),
]
KEYS = sorted({key for _, key, _, _ in SCRIPT})


def at(minute: float) -> datetime:
    return BASE + timedelta(minutes=minute)


# When each scripted write happened: write i of minute m at m minutes + i seconds (all distinct).
STAMPS = [at(minute) + timedelta(seconds=i) for i, (minute, *_) in enumerate(SCRIPT)]


def truth(key: str, t: datetime) -> bytes | None:
    """What a reader got for `key` at t, replayed from the script."""
    seen = None
    for when, (_, k, content, _) in zip(STAMPS, SCRIPT, strict=True):
        if k == key and when <= t:
            seen = content
    return seen


def _stamp(key: str, when: datetime) -> None:
    """Set the newest version (or marker) of `key` to `when` on moto's backend."""
    newest = s3_backends[DEFAULT_ACCOUNT_ID]["aws"].buckets[BUCKET].keys.getlist(key)[-1]
    newest.last_modified = when.astimezone(UTC).replace(tzinfo=None)  # moto keeps naive UTC


@pytest.fixture
def s3(moto_aws: None) -> Any:
    return boto3.client("s3", region_name=REGION)


@pytest.fixture
def kms_key(moto_aws: None) -> str:
    return str(boto3.client("kms", region_name=REGION).create_key()["KeyMetadata"]["Arn"])


@pytest.fixture
def scripted(s3: Any, kms_key: str) -> Any:
    """The bucket with SCRIPT's history, each write stamped at its STAMPS time."""
    s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
    s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    for when, (_, key, content, kms) in zip(STAMPS, SCRIPT, strict=True):
        if content is None:
            s3.delete_object(Bucket=BUCKET, Key=key)
        else:
            extra = {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": kms_key} if kms else {}
            s3.put_object(Bucket=BUCKET, Key=key, Body=content, **extra)
        _stamp(key, when)
    return s3


@pytest.fixture
def ctx(tmp_path: Path) -> Iterator[Context]:
    context = Context(config_dir=tmp_path, catalog_url=f"sqlite:///{tmp_path / 'catalog.db'}")
    yield context
    context.close()


@pytest.fixture
def ledger(tmp_path: Path) -> RestoreLedger:
    return RestoreLedger(tmp_path / "ledger" / f"{BUCKET}.jsonl")


def current(s3: Any, key: str) -> bytes | None:
    try:
        return bytes(s3.get_object(Bucket=BUCKET, Key=key)["Body"].read())
    except s3.exceptions.NoSuchKey:
        return None


def history(s3: Any) -> list[tuple[str, str]]:
    """(key, version id) of every version and delete marker in the bucket."""
    out = []
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=BUCKET):
        out += [(v["Key"], v["VersionId"]) for v in page.get("Versions", []) + page.get("DeleteMarkers", [])]
    return out


def restore(ctx: Context, factory: Any, ledger: RestoreLedger, t: datetime, prefix: str = "", **kw: Any) -> Any:
    plan = plan_restore(ctx, BUCKET, t, prefix=prefix, factory=factory, ledger=ledger)
    return plan, apply_restore(ctx, plan, **kw)


def test_restores_to_several_times_object_by_object_keeping_every_version(
    scripted: Any, guarded: GuardedFactoryMaker, ctx: Context, ledger: RestoreLedger, kms_key: str
) -> None:
    s3 = scripted
    factory = guarded("runbooks")
    # T between the scripted minutes, and one exactly on a write's stamp (minute 20 + 6 s).
    for t in (at(5), at(15), at(20) + timedelta(seconds=6), at(25), at(35), at(45), at(55), at(0)):
        before = set(history(s3))
        plan, result = restore(ctx, factory, ledger, t, concurrency=3)
        assert result.failed == [] and result.complete
        for key in KEYS:
            assert current(s3, key) == truth(key, t), (key, t)
        after = set(history(s3))
        assert before <= after, "a restore must never remove a version"
        assert len(after - before) == plan.restores + plan.deletes == result.restored + result.deleted
        # The SSE-KMS object is still encrypted with its key after being copied back.
        if truth("kms/secret", t) is not None:
            head = s3.head_object(Bucket=BUCKET, Key="kms/secret")
            assert (head["ServerSideEncryption"], head["SSEKMSKeyId"]) == ("aws:kms", kms_key)

        again = plan_restore(ctx, BUCKET, t, factory=factory, ledger=ledger)
        assert again.changes == [] and again.unchanged == len(KEYS)
        apply_restore(ctx, again)
        assert set(history(s3)) == after, "a second run must write nothing"

    ops = set(factory.calls)
    assert ("s3", "CopyObject") in ops and ("s3", "DeleteObject") in ops
    events = [e for e in ctx.catalog().audit_events(limit=100) if e.action == "s3-restore"]
    assert len(events) == 16 and all(e.target == BUCKET for e in events)
    first = events[-1].detail  # newest first: the last is the restore to minute 5
    assert first["to_time"] == at(5).isoformat() and first["complete"] is True
    assert (first["restored"], first["deleted"], first["failed"]) == (3, 2, 0)


def test_the_plan_counts_and_samples_the_changes_and_changes_nothing(
    scripted: Any, guarded: GuardedFactoryMaker, ctx: Context, ledger: RestoreLedger
) -> None:
    before = history(scripted)
    plan = plan_restore(ctx, BUCKET, at(15), factory=guarded("runbooks"), ledger=ledger)
    assert (plan.region, plan.keys, plan.restores, plan.deletes, plan.unchanged) == (REGION, 6, 4, 1, 1)
    decided = {a.key: (a.kind, a.reason) for a in plan.changes}
    assert decided == {
        "a.txt": ("restore", "deleted after T"),
        "docs/new file.txt": ("delete", "created after T"),
        "docs/über café.txt": ("restore", "changed after T"),
        "kms/secret": ("restore", "changed after T"),
        "outside/x": ("restore", "changed after T"),
    }
    assert plan.to_dict()["sample"][0] == {
        "key": "a.txt", "action": "restore", "reason": "deleted after T", "from": plan.changes[0].current.version_id,
        "from_is_delete_marker": True, "to": plan.changes[0].target.version_id,
    }
    assert history(scripted) == before


def test_a_prefix_restores_only_the_keys_under_it(
    scripted: Any, guarded: GuardedFactoryMaker, ctx: Context, ledger: RestoreLedger
) -> None:
    outside = {k: current(scripted, k) for k in KEYS if not k.startswith("docs/")}
    count_outside = len([v for v in history(scripted) if not v[0].startswith("docs/")])
    plan, _ = restore(ctx, guarded("runbooks"), ledger, at(15), prefix="docs/")
    assert plan.keys == 3
    for key in ("docs/keep.txt", "docs/über café.txt", "docs/new file.txt"):
        assert current(scripted, key) == truth(key, at(15))
    assert {k: current(scripted, k) for k in outside} == outside
    assert len([v for v in history(scripted) if not v[0].startswith("docs/")]) == count_outside


def test_the_ledger_keeps_sse_kms_copies_from_being_copied_again(
    scripted: Any, guarded: GuardedFactoryMaker, ctx: Context, ledger: RestoreLedger, tmp_path: Path
) -> None:
    """On AWS an SSE-KMS copy's ETag is not its source's; moto gives both the MD5, so the copy's
    ETag is changed on moto's backend to what AWS would show."""
    factory = guarded("runbooks")
    restore(ctx, factory, ledger, at(15))
    copy = s3_backends[DEFAULT_ACCOUNT_ID]["aws"].buckets[BUCKET].keys.getlist("kms/secret")[-1]
    copy._etag = "0f1e2d3c4b5a69788796a5b4c3d2e1f0"
    versions = history(scripted)

    again = plan_restore(ctx, BUCKET, at(15), factory=factory, ledger=ledger)
    assert again.changes == []
    lost = plan_restore(ctx, BUCKET, at(15), factory=factory, ledger=RestoreLedger(tmp_path / "none.jsonl"))
    assert [(a.key, a.kind) for a in lost.changes] == [("kms/secret", "restore")]  # what the ledger prevents
    assert history(scripted) == versions


def test_an_interrupted_restore_resumes_where_it_stopped(
    scripted: Any, guarded: GuardedFactoryMaker, ctx: Context, ledger: RestoreLedger
) -> None:
    factory = guarded("runbooks")
    plan = plan_restore(ctx, BUCKET, at(15), factory=factory, ledger=ledger)
    calls = 0

    def ctrl_c_after_two(done: int, total: int) -> None:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        apply_restore(ctx, plan, concurrency=1, progress=ctrl_c_after_two)
    partial = [e for e in ctx.catalog().audit_events() if e.action == "s3-restore"]
    assert partial[0].detail["complete"] is False and partial[0].detail["restored"] + partial[0].detail["deleted"] == 2

    rest = plan_restore(ctx, BUCKET, at(15), factory=factory, ledger=ledger)
    assert len(rest.changes) == len(plan.changes) - 2
    apply_restore(ctx, rest)
    for key in KEYS:
        assert current(scripted, key) == truth(key, at(15))
    assert plan_restore(ctx, BUCKET, at(15), factory=factory, ledger=ledger).changes == []


def test_large_versions_are_copied_in_parts_with_their_encryption(
    s3: Any, kms_key: str, guarded: GuardedFactoryMaker, ctx: Context, ledger: RestoreLedger
) -> None:
    s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
    s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    big = bytes(range(256)) * (11 * MiB // 256 + 3)  # 11 MiB and a bit: three 5 MiB parts
    s3.put_object(Bucket=BUCKET, Key="big.bin", Body=big, ServerSideEncryption="aws:kms", SSEKMSKeyId=kms_key,
                  ContentType="application/x-demo", Metadata={"owner": "data team"})
    _stamp("big.bin", at(0))
    s3.put_object(Bucket=BUCKET, Key="big.bin", Body=b"truncated by a bad deploy")
    _stamp("big.bin", at(10))

    factory = guarded("runbooks")
    _, result = restore(ctx, factory, ledger, at(5), multipart_threshold=5 * MiB, part_size=5 * MiB)
    assert result.restored == 1 and result.failed == []
    got = s3.get_object(Bucket=BUCKET, Key="big.bin")
    assert got["Body"].read() == big
    assert got["ETag"].endswith('-3"')  # really a three-part copy
    assert (got["ServerSideEncryption"], got["SSEKMSKeyId"]) == ("aws:kms", kms_key)
    assert (got["ContentType"], got["Metadata"]) == ("application/x-demo", {"owner": "data team"})
    assert ("s3", "UploadPartCopy") in factory.calls and ("s3", "CopyObject") not in factory.calls
    # Its ETag is not its source's: only the ledger makes the re-run a no-op.
    assert plan_restore(ctx, BUCKET, at(5), factory=factory, ledger=ledger).changes == []


# -- refusals: exit 2, nothing changed ----------------------------------------------------------------


def test_bad_input_is_refused_before_anything_changes(
    scripted: Any, guarded: GuardedFactoryMaker, ctx: Context, ledger: RestoreLedger
) -> None:
    factory = guarded("runbooks")
    before = history(scripted)

    def refused(bucket: str, t: datetime, prefix: str = "") -> str:
        with pytest.raises(UsageError) as err:
            plan_restore(ctx, bucket, t, prefix=prefix, factory=factory, ledger=ledger)
        return str(err.value)

    assert "does not exist" in refused("no-such-bucket", at(15))
    assert "in the future" in refused(BUCKET, datetime.now(UTC) + timedelta(hours=1))
    assert "no time zone" in refused(BUCKET, at(15).replace(tzinfo=None))
    message = refused(BUCKET, at(-60))
    assert message.startswith(f"nothing is known before {at(0).isoformat()}") and "hide every object" in message
    assert "no object versions" in refused(BUCKET, at(15), prefix="nothing-here/")
    assert history(scripted) == before


def test_buckets_without_usable_versioning_are_refused(
    s3: Any, guarded: GuardedFactoryMaker, ctx: Context, ledger: RestoreLedger
) -> None:
    factory = guarded("runbooks")
    s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
    s3.put_object(Bucket=BUCKET, Key="a", Body=b"1")
    _stamp("a", at(-10))
    with pytest.raises(UsageError, match="never had versioning enabled: there is no history"):
        plan_restore(ctx, BUCKET, at(15), factory=factory, ledger=ledger)

    s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    for minute, body in ((0, b"2"), (10, b"3")):
        s3.put_object(Bucket=BUCKET, Key="a", Body=body)
        _stamp("a", at(minute))
    # Suspended: a copy would replace the "null" version (here: what came before versioning).
    s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Suspended"})
    before = history(s3)
    with pytest.raises(UsageError, match=r"Suspended.*--force"):
        plan_restore(ctx, BUCKET, at(5), factory=factory, ledger=ledger)
    assert current(s3, "a") == b"3" and history(s3) == before

    # --force plans it. (Not applied here: moto answers 400 to HeadObject with a VersionId in a
    # Suspended bucket, which AWS does not.)
    plan = plan_restore(ctx, BUCKET, at(5), factory=factory, ledger=ledger, force=True)
    assert [(a.key, a.kind, a.target.version_id if a.target else None) for a in plan.changes] == [
        ("a", "restore", before[1][1])
    ]


def test_a_key_that_cannot_be_copied_fails_alone_and_the_rest_goes_on(
    scripted: Any, guarded: GuardedFactoryMaker, ctx: Context, ledger: RestoreLedger
) -> None:
    factory = guarded("runbooks")
    plan = plan_restore(ctx, BUCKET, at(15), factory=factory, ledger=ledger)
    # The KMS key of kms/secret is unusable when the copy is made.
    client = plan.api._s3

    def kms_refuses(params: dict[str, Any], **_: Any) -> None:
        if params.get("Key") == "kms/secret":
            from botocore.exceptions import ClientError

            raise ClientError({"Error": {"Code": "KMS.DisabledException", "Message": "key is disabled"}},
                              "CopyObject")

    client.meta.events.register("before-parameter-build.s3.CopyObject", kms_refuses)
    result = apply_restore(ctx, plan)
    assert [k for k, _ in result.failed] == ["kms/secret"]
    assert "KMS key" in result.failed[0][1] and "kms:Decrypt" in result.failed[0][1]
    assert result.restored + result.deleted == len(plan.changes) - 1
    assert current(scripted, "a.txt") == truth("a.txt", at(15))


def test_bucket_facts_for_posture(s3: Any, guarded: GuardedFactoryMaker) -> None:
    s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
    factory = guarded("runbooks")
    assert bucket_facts(factory, BUCKET) == {
        "bucket": BUCKET, "region": REGION, "versioning": "Disabled", "replication": False, "rtc": False,
        "replica_buckets": [],
    }
    s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    role = "arn:aws:iam::123456789012:role/drkit-replication"
    rule = {"ID": "drkit", "Status": "Enabled", "Priority": 1, "Filter": {"Prefix": ""},
            "DeleteMarkerReplication": {"Status": "Enabled"},
            "Destination": {"Bucket": "arn:aws:s3:::acme-assets-prod-dr",
                            "ReplicationTime": {"Status": "Enabled", "Time": {"Minutes": 15}},
                            "Metrics": {"Status": "Enabled", "EventThreshold": {"Minutes": 15}}}}
    s3.put_bucket_replication(Bucket=BUCKET, ReplicationConfiguration={"Role": role, "Rules": [rule]})
    facts = bucket_facts(factory, BUCKET)
    assert (facts["versioning"], facts["replication"], facts["rtc"]) == ("Enabled", True, True)
    assert facts["replica_buckets"] == ["arn:aws:s3:::acme-assets-prod-dr"]
    no_rtc = {**rule, "Destination": {"Bucket": "arn:aws:s3:::acme-assets-prod-dr"}}
    s3.put_bucket_replication(Bucket=BUCKET, ReplicationConfiguration={"Role": role, "Rules": [no_rtc]})
    assert bucket_facts(factory, BUCKET)["rtc"] is False
    with pytest.raises(DrkitError, match="no-such-bucket does not exist"):
        bucket_facts(factory, "no-such-bucket")
