"""`verify` (drkit.jobs.s3) against moto S3: real listings, pages, KMS, delete markers, statuses.

moto never replicates (TESTING.md): every test places the objects in both buckets itself, and
moto never sets x-amz-replication-status, so the FAILED/PENDING cases inject it into the HeadObject
response with a botocore `after-call` handler on the clients drkit makes.
"""

from __future__ import annotations

import math
import os
import threading
import unicodedata
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from drkit.clock import FakeClock
from drkit.errors import DrkitError, UsageError
from drkit.jobs.context import Context
from drkit.jobs.s3 import export_metrics, verify, verify_bucket
from drkit.metrics import Metrics
from tests.aws.declared import GuardedFactoryMaker, GuardedSessionFactory

ACCOUNT = "123456789012"
SRC, DST = "acme-assets-prod", "acme-assets-prod-dr"
# Keys under one prefix, several ListObjectsV2 pages per bucket: the 10,000 (moto serialises
# a 1,000-key page in 0.7-1.5 s here, so this test takes 15-40 s). DRKIT_TEST_S3_VERIFY_KEYS
# makes it smaller for quick local runs.
BIG = int(os.environ.get("DRKIT_TEST_S3_VERIFY_KEYS", "10000"))
MISSING_MIDDLE = BIG // 2 + 321

SCHEDULE = f"""\
environment: test
targets: {{rto: 1h, rpo: 30m}}
aws: {{region: us-east-1, dr_region: us-west-2}}
s3:
  - name: assets
    bucket: {SRC}
    replica_bucket: {DST}
    kms_key: alias/drkit-dr
    replication_time_control: %(rtc)s
"""


def make_ctx(tmp_path: Path, clock: FakeClock, *, rtc: bool = False) -> Context:
    (tmp_path / "schedules").mkdir(exist_ok=True)
    (tmp_path / "schedules" / "prod.yaml").write_text(SCHEDULE % {"rtc": str(rtc).lower()})
    return Context(config_dir=tmp_path, catalog_url=f"sqlite:///{tmp_path / 'c.db'}", clock=clock)


@pytest.fixture
def world(guarded: GuardedFactoryMaker, tmp_path: Path) -> tuple[Context, GuardedSessionFactory, Any, Any]:
    """Source bucket in us-east-1, replica in us-west-2, both versioned; a clock one hour ahead."""
    factory = guarded("scheduler")
    import boto3

    src = boto3.client("s3", region_name="us-east-1")
    dst = boto3.client("s3", region_name="us-west-2")
    src.create_bucket(Bucket=SRC)
    dst.create_bucket(Bucket=DST, CreateBucketConfiguration={"LocationConstraint": "us-west-2"})
    for client, bucket in ((src, SRC), (dst, DST)):
        client.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    clock = FakeClock(datetime.now(UTC) + timedelta(hours=1))
    return make_ctx(tmp_path, clock), factory, src, dst


def put(client: Any, bucket: str, key: str, size: int = 10, **kwargs: Any) -> None:
    client.put_object(Bucket=bucket, Key=key, Body=b"x" * size, **kwargs)


def backdate(bucket: str, key: str, when: datetime) -> None:
    from moto.s3.models import s3_backends

    obj = s3_backends[ACCOUNT]["aws"].get_object(bucket, key)
    assert obj is not None
    obj.last_modified = when.astimezone(UTC).replace(tzinfo=None)


def listed_time(client: Any, bucket: str, key: str) -> datetime:
    """LastModified as S3 lists it (second precision in moto): what the lag must be measured from."""
    [obj] = client.list_objects_v2(Bucket=bucket, Prefix=key)["Contents"]
    return obj["LastModified"]


def test_missing_and_resized_objects_are_found_and_lag_is_the_oldest_unreplicated(world: Any) -> None:
    ctx, factory, src, dst = world
    for key in ("a.txt", "b.txt", "c.txt", "d.txt"):
        put(src, SRC, key)
    put(dst, DST, "a.txt")
    put(dst, DST, "c.txt", size=11)  # an overwrite in the source not yet replicated
    put(dst, DST, "zz-only-in-replica.txt")
    backdate(SRC, "b.txt", ctx.clock.now() - timedelta(days=2))
    oldest = listed_time(src, SRC, "b.txt")

    r = verify(ctx, None, "assets", lag_allowance=None, factory=factory)

    assert r.missing == ["b.txt", "d.txt"] and r.mismatched == ["c.txt"] and r.failed == []
    assert r.checked == 4 and r.extra_count == 1 and r.in_flight == []
    assert r.lag_s == pytest.approx((ctx.clock.now() - oldest).total_seconds())
    assert r.oldest_unreplicated == "b.txt" and not r.ok
    assert r.allowance_s == 30 * 60  # no RTC: the schedule's RPO target


def test_young_objects_are_in_flight_not_missing_and_the_allowance_follows_rtc(world: Any, tmp_path: Path) -> None:
    ctx, factory, src, _dst = world
    put(src, SRC, "new.bin")
    written = listed_time(src, SRC, "new.bin")
    ctx.clock._now = written + timedelta(minutes=20)  # 20 minutes after the write
    # Without RTC the allowance is the 30m RPO target: still in flight, the check passes.
    r = verify(ctx, None, "assets", lag_allowance=None, factory=factory)
    assert r.ok and r.in_flight == ["new.bin"] and r.missing == [] and r.lag_s == pytest.approx(1200)
    # With RTC (15 minutes) the same object is overdue.
    rtc_ctx = make_ctx(tmp_path, ctx.clock, rtc=True)
    r = verify(rtc_ctx, None, "assets", lag_allowance=None, factory=factory)
    assert not r.ok and r.missing == ["new.bin"] and r.allowance_s == 15 * 60
    # An explicit allowance wins over both.
    r = verify(rtc_ctx, None, "assets", lag_allowance=timedelta(hours=1), factory=factory)
    assert r.ok and r.in_flight == ["new.bin"]


def test_a_deleted_source_key_is_not_missing(world: Any) -> None:
    ctx, factory, src, dst = world
    for key in ("kept", "deleted-in-source", "deleted-in-both"):
        put(src, SRC, key)
        put(dst, DST, key)
    src.delete_object(Bucket=SRC, Key="deleted-in-source")  # a delete marker in a versioned bucket
    src.delete_object(Bucket=SRC, Key="deleted-in-both")
    dst.delete_object(Bucket=DST, Key="deleted-in-both")
    assert len(src.list_object_versions(Bucket=SRC)["DeleteMarkers"]) == 2

    r = verify(ctx, None, "assets", lag_allowance=None, factory=factory)

    assert r.ok and r.missing == [] and r.checked == 1
    assert r.extra_count == 1  # the replica still has what the source deleted (no delete-marker replication)


def test_sse_kms_objects_compare_by_size_not_etag(world: Any) -> None:
    ctx, factory, src, dst = world
    import boto3

    src_key = boto3.client("kms", region_name="us-east-1").create_key()["KeyMetadata"]["Arn"]
    dst_key = boto3.client("kms", region_name="us-west-2").create_key()["KeyMetadata"]["Arn"]
    body = b"k" * (5 * 1024 * 1024 + 10)
    src.put_object(Bucket=SRC, Key="secret.bin", Body=body, ServerSideEncryption="aws:kms", SSEKMSKeyId=src_key)
    # The replica: same bytes, another key, written in two parts, so another ETag.
    up = dst.create_multipart_upload(Bucket=DST, Key="secret.bin", ServerSideEncryption="aws:kms", SSEKMSKeyId=dst_key)
    parts = [
        dst.upload_part(Bucket=DST, Key="secret.bin", UploadId=up["UploadId"], PartNumber=n, Body=chunk)
        for n, chunk in ((1, body[: 5 * 1024 * 1024]), (2, body[5 * 1024 * 1024 :]))
    ]
    dst.complete_multipart_upload(
        Bucket=DST,
        Key="secret.bin",
        UploadId=up["UploadId"],
        MultipartUpload={"Parts": [{"PartNumber": n + 1, "ETag": p["ETag"]} for n, p in enumerate(parts)]},
    )
    src.put_object(
        Bucket=SRC, Key="secret-short.bin", Body=b"12345", ServerSideEncryption="aws:kms", SSEKMSKeyId=src_key
    )
    dst.put_object(
        Bucket=DST, Key="secret-short.bin", Body=b"1234", ServerSideEncryption="aws:kms", SSEKMSKeyId=dst_key
    )
    etags = [c.head_object(Bucket=b, Key="secret.bin")["ETag"] for c, b in ((src, SRC), (dst, DST))]
    assert etags[0] != etags[1]

    r = verify(ctx, None, "assets", lag_allowance=None, factory=factory)

    assert r.mismatched == ["secret-short.bin"] and r.missing == [] and r.checked == 2


def test_keys_with_unicode_and_spaces_come_back_exactly(world: Any) -> None:
    ctx, factory, src, dst = world
    nfc, nfd = unicodedata.normalize("NFC", "café/menü.pdf"), unicodedata.normalize("NFD", "café/menü.pdf")
    keys = [
        "dir with space/file name.txt",
        "日本語/キー.txt",
        "emoji \U0001f600.bin",
        "a+b=c&d%20e.txt",
        "tab\there",
        nfc,
        nfd,
    ]
    for key in keys:
        put(src, SRC, key)
    for key in keys:
        if key not in (nfd, "dir with space/file name.txt"):
            put(dst, DST, key)
    put(dst, DST, "dir with space/file name.txt ", size=10)  # trailing space: another key

    r = verify(ctx, None, "assets", lag_allowance=None, factory=factory)

    assert sorted(r.missing) == sorted(["dir with space/file name.txt", nfd])
    assert r.extra_count == 1 and r.mismatched == [] and r.checked == len(keys)


def inject_status(factory: GuardedSessionFactory, statuses: dict[str, str]) -> None:
    """HeadObject answers `statuses[key]` as x-amz-replication-status (moto never sets it)."""
    made = factory.client

    def remember_key(params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        context["drkit_test_key"] = params.get("Key")

    def set_status(parsed: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        status = statuses.get(context.get("drkit_test_key", ""))
        if status:
            parsed["ReplicationStatus"] = status

    def client(service: str, region: str | None = None) -> Any:
        c = made(service, region)
        c.meta.events.register("provide-client-params.s3.HeadObject", remember_key)
        c.meta.events.register("after-call.s3.HeadObject", set_status)
        return c

    factory.client = client  # type: ignore[method-assign]


def test_failed_replication_is_reported_even_for_young_objects(world: Any) -> None:
    ctx, factory, src, dst = world
    for key in ("broken-old", "broken-young", "pending-young", "never-covered", "fine"):
        put(src, SRC, key)
    put(dst, DST, "fine")
    for key in ("broken-old", "never-covered"):
        backdate(SRC, key, ctx.clock.now() - timedelta(hours=3))
    inject_status(
        factory, {"broken-old": "FAILED", "broken-young": "FAILED", "pending-young": "PENDING", "fine": "COMPLETED"}
    )
    for key in ("broken-young", "pending-young"):
        backdate(SRC, key, ctx.clock.now() - timedelta(minutes=1))

    r = verify(ctx, None, "assets", lag_allowance=None, factory=factory)

    assert r.failed == ["broken-old", "broken-young"]
    assert r.in_flight == ["pending-young"]  # a FAILED object never arrives: not in flight
    assert r.missing == ["broken-old", "never-covered"]
    assert r.statuses == {"FAILED": 2, "PENDING": 1, "NONE": 1}
    assert not r.ok
    heads = [c for c in factory.calls if c == ("s3", "HeadObject")]
    assert len(heads) == 4, "only the candidates get a HEAD, never the objects that match"
    with pytest.raises(DrkitError, match=r"2 object\(s\) FAILED to replicate"):
        verify_bucket_with(ctx, factory)


def verify_bucket_with(ctx: Context, factory: GuardedSessionFactory) -> None:
    """verify_bucket as the scheduler calls it, with the test's factory standing in for the schedule's."""
    import drkit.aws.session as session

    real = session.SessionFactory.from_schedule
    session.SessionFactory.from_schedule = classmethod(lambda cls, sched: factory)  # type: ignore[method-assign,assignment]
    try:
        verify_bucket(ctx, "prod", "assets")
    finally:
        session.SessionFactory.from_schedule = real  # type: ignore[method-assign]


def test_the_scheduler_job_passes_quietly_when_all_is_replicated(world: Any) -> None:
    ctx, factory, src, dst = world
    put(src, SRC, "same")
    put(dst, DST, "same")
    verify_bucket_with(ctx, factory)  # no exception: the scheduler records success


def test_thousands_of_keys_across_pages_fetched_by_two_threads(world: Any) -> None:
    ctx, factory, src, _dst = world
    from moto.s3.models import s3_backends

    # Straight into moto's backend: 20,000 PutObject calls through botocore take minutes here,
    # and what is under test is the listing, not the upload.
    backend = s3_backends[ACCOUNT]["aws"]
    for i in range(BIG):
        key = f"big/prefix/{i:05d}.dat"
        backend.put_object(SRC, key, b"d")
        if i not in (0, MISSING_MIDDLE, BIG - 1):
            backend.put_object(DST, key, b"d" if i != 777 else b"dd")
    put(src, SRC, "other/outside-the-prefix")
    threads: set[str] = set()
    lock = threading.Lock()

    def note(**_: Any) -> None:
        with lock:
            threads.add(threading.current_thread().name)

    made = factory.client

    def client(service: str, region: str | None = None) -> Any:
        c = made(service, region)
        c.meta.events.register("before-call.s3.ListObjectsV2", note)
        return c

    factory.client = client

    r = verify(ctx, None, "assets", lag_allowance=None, factory=factory)

    assert r.missing == [
        "big/prefix/00000.dat",
        f"big/prefix/{MISSING_MIDDLE:05d}.dat",
        f"big/prefix/{BIG - 1:05d}.dat",
        "other/outside-the-prefix",
    ]
    assert r.mismatched == ["big/prefix/00777.dat"]
    assert r.checked == BIG + 1 and r.extra_count == 0
    listings = [c for c in factory.calls if c == ("s3", "ListObjectsV2")]
    assert len(listings) == math.ceil((BIG + 1) / 1000) + math.ceil((BIG - 3) / 1000) > 2
    assert threads == {f"drkit-list-{SRC}", f"drkit-list-{DST}"}, "each listing in its own thread"


def test_an_unknown_replica_bucket_is_one_clear_line(world: Any) -> None:
    ctx, factory, src, dst = world
    put(src, SRC, "x")
    dst.delete_bucket(Bucket=DST)
    with pytest.raises(DrkitError, match=rf"bucket s3://{DST} \(us-west-2\) does not exist") as err:
        verify(ctx, None, "assets", lag_allowance=None, factory=factory)
    assert "\n" not in str(err.value)


def test_an_unknown_resource_names_what_exists(world: Any) -> None:
    ctx, factory, _src, _dst = world
    with pytest.raises(UsageError, match=r"no s3 resource named 'nope'.*prod/assets"):
        verify(ctx, None, "nope", lag_allowance=None, factory=factory)


def test_figures_are_exported_as_gauges(world: Any) -> None:
    ctx, factory, src, _dst = world
    put(src, SRC, "gone-missing")
    backdate(SRC, "gone-missing", ctx.clock.now() - timedelta(hours=2))
    r = verify(ctx, None, "assets", lag_allowance=None, factory=factory)
    metrics = Metrics()
    export_metrics(metrics, r)
    export_metrics(metrics, r)  # every run sets them again: no duplicate registration
    text = metrics.exposition().decode()
    labels = f'bucket="{SRC}",replica_bucket="{DST}"'
    assert f"drkit_s3_replication_lag_seconds{{{labels}}} {r.lag_s}" in text
    assert r.lag_s >= 7199
    assert f'drkit_s3_objects{{{labels},state="missing"}} 1.0' in text



def test_the_scheduler_job_exports_lag_and_counts_to_the_service_metrics(world: Any) -> None:
    """verify_bucket (the scheduler's s3-verify job) puts its figures on the service's /metrics."""
    from prometheus_client import generate_latest

    ctx, factory, src, dst = world
    put(src, SRC, "same")
    put(dst, DST, "same")
    ctx.cache["metrics"] = Metrics()  # what the scheduler service hands every job's Context
    verify_bucket_with(ctx, factory)
    text = generate_latest(ctx.cache["metrics"].registry).decode()
    assert f'drkit_s3_replication_lag_seconds{{bucket="{SRC}",replica_bucket="{DST}"}} 0.0' in text
