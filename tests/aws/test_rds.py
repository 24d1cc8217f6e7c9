"""drkit.aws.rds.RdsApi against moto: listings, snapshots, cross-region copies, deletes, waiting, faults.

What a user relies on: listing a region costs pages, not instances; re-running creates nothing
new; copies land in the DR region encrypted with the DR key (or are refused before anything
starts); automated snapshots are never deleted; waiting is bounded and says how far it got;
quota and throttling are retried, AccessDenied names the IAM action to grant.

Where moto differs from AWS, the test says so and makes moto behave like AWS:
- moto 5.2 answers DescribeDBSnapshots, DescribeDBClusterSnapshots and DescribeDBClusters in
  one page whatever MaxRecords says (only DescribeDBInstances pages); the autouse fixture
  below serves them through moto's own paginator (MaxRecords, Marker) as AWS does;
- everything is `available` at once: tests set the status on moto's backend to wait;
- faults are injected with a botocore `before-call` handler (the call never reaches moto, and
  botocore's own retries do not apply, so only drkit's retry is exercised).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from types import SimpleNamespace
from typing import Any

import pytest
from moto.core import DEFAULT_ACCOUNT_ID
from moto.core.responses import ActionResult, PaginatedResult
from moto.core.utils import get_pagination_model
from moto.rds.models import rds_backends
from moto.rds.responses import RDSResponse

from drkit.aws.kmskeys import resolve_key
from drkit.aws.rds import IAM_ACTIONS, RdsApi, Snapshot, SnapshotTimeout
from drkit.aws.session import SessionFactory
from drkit.errors import DrkitError, UsageError
from tests.aws.conftest import fake_aws_environment
from tests.aws.declared import GuardedFactoryMaker

SRC, DST = "us-east-1", "us-west-2"


@pytest.fixture(autouse=True)
def aws_like_pagination(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make moto page these listings by MaxRecords/Marker, as AWS does (see the module docstring):
    the same machinery moto uses for DescribeDBInstances, keyed on each item's identifier."""
    model = get_pagination_model("rds")
    for op, name in (
        ("DescribeDBSnapshots", "describe_db_snapshots"),
        ("DescribeDBClusterSnapshots", "describe_db_cluster_snapshots"),
        ("DescribeDBClusters", "describe_db_clusters"),
    ):
        monkeypatch.setitem(model[op], "unique_attribute", "resource_id")
        original = getattr(RDSResponse, name)

        def paged(self: RDSResponse, _original: Any = original) -> ActionResult:
            return PaginatedResult(_original(self).result)

        monkeypatch.setattr(RDSResponse, name, paged)


class Sleeps(list[float]):
    """An injected sleep that only records (drkit's retry must not really sleep in tests)."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture(scope="module")
def shared_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SessionFactory]:
    """One factory (so one boto3 session) for the module: loading RDS's API model costs about
    a second per session. Its clients still talk to moto only, and each test's own moto."""
    with pytest.MonkeyPatch.context() as mp:
        fake_aws_environment(mp, tmp_path_factory.mktemp("aws-home-rds"))
        yield SessionFactory(region=SRC)


@pytest.fixture
def factory(shared_factory: SessionFactory, moto_aws: None) -> SessionFactory:
    """The shared factory, inside this test's moto (overrides conftest's per-test factory)."""
    return shared_factory


@pytest.fixture
def src(factory: SessionFactory, sleeps: Sleeps) -> RdsApi:
    return RdsApi(factory, SRC, sleep=sleeps)


@pytest.fixture
def dst(factory: SessionFactory, sleeps: Sleeps) -> RdsApi:
    return RdsApi(factory, DST, sleep=sleeps)


def make_instance(api: RdsApi, name: str, **extra: Any) -> None:
    api.client.create_db_instance(
        DBInstanceIdentifier=name,
        Engine="postgres",
        DBInstanceClass="db.t3.micro",
        AllocatedStorage=20,
        MasterUsername="app",
        MasterUserPassword="not-a-secret-1",
        BackupRetentionPeriod=7,
        **extra,
    )


def make_cluster(api: RdsApi, name: str, **extra: Any) -> None:
    api.client.create_db_cluster(
        DBClusterIdentifier=name,
        Engine="aurora-postgresql",
        MasterUsername="app",
        MasterUserPassword="not-a-secret-1",
        BackupRetentionPeriod=7,
        **extra,
    )


def make_key(factory: SessionFactory, region: str, alias: str) -> str:
    kms = factory.client("kms", region=region)
    arn = str(kms.create_key(Description="drkit test")["KeyMetadata"]["Arn"])
    kms.create_alias(AliasName=alias, TargetKeyId=arn)
    return arn


def record(api: RdsApi, event: str = "before-call.rds.*") -> list[tuple[str, dict[str, Any]]]:
    """Every RDS call `api` makes from now on: (operation, the query parameters as sent on the wire)."""
    seen: list[tuple[str, dict[str, Any]]] = []
    api.client.meta.events.register(event, lambda model, params, **_: seen.append((model.name, dict(params["body"]))))
    return seen


def inject(api: RdsApi, operation: str, code: str, *, times: int | None = None, status: int = 400) -> list[int]:
    """Make the next `times` (None: every) `operation` calls fail with `code`, as AWS would answer."""
    hits: list[int] = []

    def handler(**_: Any) -> tuple[Any, dict[str, Any]] | None:
        if times is not None and len(hits) >= times:
            return None
        hits.append(1)
        return SimpleNamespace(status_code=status), {
            "Error": {"Code": code, "Message": f"{code} injected by the test"},
            "ResponseMetadata": {"HTTPStatusCode": status},
        }

    api.client.meta.events.register(f"before-call.rds.{operation}", handler)
    return hits


def backend(region: str) -> Any:
    return rds_backends[DEFAULT_ACCOUNT_ID][region]


def manual_ids(api: RdsApi, kind: str = "instance") -> list[str]:
    return sorted(s.id for s in api.snapshots(kind=kind))


# -- listings ------------------------------------------------------------------------------


def test_150_instances_are_listed_in_two_pages(src: RdsApi) -> None:
    for i in range(150):
        make_instance(src, f"db-{i:03d}")
    calls = record(src)
    instances = src.instances()
    assert sorted(i.id for i in instances) == [f"db-{i:03d}" for i in range(150)]
    assert [op for op, _ in calls] == ["DescribeDBInstances"] * 2  # ceil(150/100), nothing per instance
    assert all(params["MaxRecords"] == 100 for _, params in calls)
    first = instances[0]
    assert (first.status, first.engine, first.backup_retention_days, first.cluster) == (
        "available",
        "postgres",
        7,
        None,
    )
    assert first.arn.startswith(f"arn:aws:rds:{SRC}:") and first.latest_restorable_time is not None


def test_300_snapshots_are_listed_in_three_pages_for_the_whole_region(src: RdsApi) -> None:
    for i in range(3):
        make_instance(src, f"db-{i}")  # moto also takes one automated snapshot of each
    for n in range(300):  # seeded on moto's backend directly: the listing is what is under test
        backend(SRC).create_db_snapshot(f"db-{n % 3}", f"snap-{n:03d}")
    calls = record(src)
    manual = src.snapshots()
    assert sorted(s.id for s in manual) == [f"snap-{n:03d}" for n in range(300)]
    assert [op for op, _ in calls] == ["DescribeDBSnapshots"] * 3  # ceil(300/100): pages, not instances
    assert all(p["SnapshotType"] == "manual" and p["IncludeShared"] == "false" for _, p in calls)
    assert {s.resource for s in manual} == {"db-0", "db-1", "db-2"}
    assert all(s.snapshot_type == "manual" and s.status == "available" and s.region == SRC for s in manual)
    assert all(s.created_at is not None and s.created_at.utcoffset() is not None for s in manual)

    automated = src.snapshots(snapshot_type="automated")
    assert sorted(s.resource for s in automated) == ["db-0", "db-1", "db-2"]
    assert len(src.snapshots(snapshot_type=None)) == 303


def test_a_failed_page_fails_the_whole_listing(src: RdsApi) -> None:
    """Prune must never act on half a listing: a failing second page is an error, not 100 snapshots."""
    make_instance(src, "db")
    for n in range(101):
        backend(SRC).create_db_snapshot("db", f"snap-{n:03d}")
    pages: list[str] = []

    def second_page_fails(params: dict[str, Any], **_: Any) -> Any:
        pages.append(params["body"].get("Marker", ""))
        if len(pages) == 2:
            return SimpleNamespace(status_code=500), {
                "Error": {"Code": "InternalFailure", "Message": "boom"},
                "ResponseMetadata": {"HTTPStatusCode": 500},
            }
        return None

    src.client.meta.events.register("before-call.rds.DescribeDBSnapshots", second_page_fails)
    with pytest.raises(DrkitError, match=f"cannot list instance snapshots in {SRC}: InternalFailure"):
        src.snapshots()
    assert len(pages) == 2 and pages[1]  # the second page was asked for with the first page's Marker


# -- create, tag ---------------------------------------------------------------------------


def test_create_twice_makes_one_snapshot_and_tags_only_via_add_tags(src: RdsApi) -> None:
    make_instance(src, "orders", Tags=[{"Key": "team", "Value": "payments"}])
    first = src.create_snapshot(kind="instance", resource="orders", snapshot_id="drkit-orders-20260101")
    assert (first.id, first.resource, first.kind, first.snapshot_type) == (
        "drkit-orders-20260101",
        "orders",
        "instance",
        "manual",
    )
    assert first.tags == {}  # nothing tagged before it exists and is available
    calls = record(src)
    again = src.create_snapshot(kind="instance", resource="orders", snapshot_id="drkit-orders-20260101")
    assert again.arn == first.arn and again.status == "available"
    assert [op for op, _ in calls] == ["CreateDBSnapshot", "DescribeDBSnapshots"]  # exists -> described
    assert manual_ids(src) == ["drkit-orders-20260101"]

    src.add_tags(first.arn, {"drkit:managed-by": "drkit", "drkit:schedule": "production"})
    (listed,) = src.snapshots()
    assert listed.tags == {"drkit:managed-by": "drkit", "drkit:schedule": "production"}
    assert calls[-2][0] == "AddTagsToResource"


def test_create_with_tags_passes_them(src: RdsApi) -> None:
    make_instance(src, "orders")
    snap = src.create_snapshot(kind="instance", resource="orders", snapshot_id="s1", tags={"a": "1"})
    assert snap.tags == {"a": "1"} and src.snapshots()[0].tags == {"a": "1"}


def test_an_existing_id_taken_of_another_resource_is_not_ours(src: RdsApi) -> None:
    make_instance(src, "orders")
    make_instance(src, "billing")
    src.create_snapshot(kind="instance", resource="billing", snapshot_id="drkit-x")
    with pytest.raises(DrkitError, match="already exists but was taken of billing, not orders"):
        src.create_snapshot(kind="instance", resource="orders", snapshot_id="drkit-x")


def test_tagging_a_resource_of_another_region_is_refused(dst: RdsApi) -> None:
    with pytest.raises(UsageError, match="it is in us-east-1"):
        dst.add_tags(f"arn:aws:rds:{SRC}:{DEFAULT_ACCOUNT_ID}:snapshot:x", {"a": "b"})


# -- cross-region copies -------------------------------------------------------------------


def test_cross_region_copy_is_encrypted_with_the_destination_key(
    factory: SessionFactory, src: RdsApi, dst: RdsApi
) -> None:
    make_instance(src, "orders")
    source = src.create_snapshot(kind="instance", resource="orders", snapshot_id="drkit-orders-1")
    src.add_tags(source.arn, {"source-only": "yes"})
    key_arn = make_key(factory, DST, "alias/drkit-dr")
    key = resolve_key(factory, DST, "alias/drkit-dr")
    calls = record(dst)

    copy = dst.copy_snapshot(
        kind="instance", source=source, target_id="drkit-orders-1", kms_key_id=key.arn, tags={"drkit:copy": "1"}
    )
    assert copy.kms_key_id == key_arn and copy.encrypted and copy.region == DST
    assert copy.tags == {"drkit:copy": "1"}  # the source's tags were not carried over
    op, params = calls[0]
    assert op == "CopyDBSnapshot"
    assert params["SourceDBSnapshotIdentifier"] == source.arn and params["SourceRegion"] == SRC
    assert params["KmsKeyId"] == key_arn and params["CopyTags"] == "false"

    (listed,) = dst.snapshots()
    assert (listed.id, listed.kms_key_id, listed.encrypted) == ("drkit-orders-1", key_arn, True)
    again = dst.copy_snapshot(
        kind="instance", source=source, target_id="drkit-orders-1", kms_key_id=key.arn, tags={"drkit:copy": "1"}
    )
    assert again.arn == copy.arn and manual_ids(dst) == ["drkit-orders-1"]  # picked up, not duplicated


def test_copies_are_refused_before_any_call(factory: SessionFactory, src: RdsApi, dst: RdsApi) -> None:
    make_instance(src, "orders")
    source = src.create_snapshot(kind="instance", resource="orders", snapshot_id="s1")
    key_arn = make_key(factory, DST, "alias/drkit-dr")
    src_key = make_key(factory, SRC, "alias/drkit-src")
    calls, same = record(dst), record(src)

    def copy(api: RdsApi, snap: Snapshot = source, key: str = key_arn) -> Snapshot:
        return api.copy_snapshot(kind="instance", source=snap, target_id="c1", kms_key_id=key, tags={})

    with pytest.raises(UsageError, match=f"without a KMS key there: set copies.kms_key to a key in {DST}"):
        copy(dst, key="")
    with pytest.raises(UsageError, match=f"that key is in {SRC}; copies.kms_key must be a key in {DST}"):
        copy(dst, key=src_key)
    with pytest.raises(UsageError, match=f"source and destination are both {SRC}"):
        copy(src, key=src_key)
    with pytest.raises(DrkitError, match="it is creating, not available"):
        copy(dst, snap=replace(source, status="creating"))
    assert calls == [] and same == [] and dst.snapshots() == []


def test_cluster_snapshots_create_and_copy_the_same_way(factory: SessionFactory, src: RdsApi, dst: RdsApi) -> None:
    src_key = make_key(factory, SRC, "alias/aurora")
    make_cluster(src, "orders-aurora", StorageEncrypted=True, KmsKeyId=src_key)
    make_cluster(src, "plain-aurora")
    clusters = {c.id: c for c in src.clusters()}
    assert clusters["orders-aurora"].encrypted and clusters["orders-aurora"].backup_retention_days == 7
    assert clusters["plain-aurora"].kms_key_id is None  # unencrypted: no key (moto shows a placeholder)

    snap = src.create_snapshot(kind="cluster", resource="orders-aurora", snapshot_id="drkit-aurora-1")
    assert (snap.kind, snap.resource, snap.encrypted) == ("cluster", "orders-aurora", True)
    assert src.create_snapshot(kind="cluster", resource="orders-aurora", snapshot_id="drkit-aurora-1").arn == snap.arn
    assert manual_ids(src, "cluster") == ["drkit-aurora-1"]

    dst_key = make_key(factory, DST, "alias/drkit-dr")
    calls = record(dst)
    copy = dst.copy_snapshot(kind="cluster", source=snap, target_id="drkit-aurora-1", kms_key_id=dst_key, tags={})
    assert copy.kms_key_id == dst_key and copy.region == DST
    assert calls[0][0] == "CopyDBClusterSnapshot" and calls[0][1]["SourceRegion"] == SRC
    assert [s.kms_key_id for s in dst.snapshots(kind="cluster")] == [dst_key]

    plain = src.create_snapshot(kind="cluster", resource="plain-aurora", snapshot_id="plain-1")
    with pytest.raises(UsageError, match="cannot encrypt an unencrypted cluster snapshot"):
        dst.copy_snapshot(kind="cluster", source=plain, target_id="plain-1", kms_key_id=dst_key, tags={})


# -- delete --------------------------------------------------------------------------------


def test_delete_refuses_automated_snapshots_even_when_told_they_are_manual(src: RdsApi) -> None:
    make_instance(src, "orders")
    (automated,) = src.snapshots(snapshot_type="automated")
    with pytest.raises(DrkitError, match="it is a automated snapshot, not a manual one"):
        src.delete_snapshot(automated)
    # A stale or forged value is not trusted: AWS's own answer decides.
    with pytest.raises(DrkitError, match="automated"):
        src.delete_snapshot(replace(automated, snapshot_type="manual"))
    assert [s.id for s in src.snapshots(snapshot_type="automated")] == [automated.id]


def test_delete_removes_a_manual_snapshot_and_tolerates_it_being_gone(src: RdsApi) -> None:
    make_instance(src, "orders")
    keep = src.create_snapshot(kind="instance", resource="orders", snapshot_id="keep")
    drop = src.create_snapshot(kind="instance", resource="orders", snapshot_id="drop")
    src.delete_snapshot(drop)
    src.delete_snapshot(drop)  # a re-run of prune after a crash
    assert manual_ids(src) == [keep.id]


# -- waiting -------------------------------------------------------------------------------


def test_wait_times_out_with_how_far_it_got(src: RdsApi) -> None:
    make_instance(src, "orders")
    snap = src.create_snapshot(kind="instance", resource="orders", snapshot_id="slow")
    backend(SRC).database_snapshots["slow"].status = "creating"
    calls = record(src)
    started = time.monotonic()
    with pytest.raises(
        SnapshotTimeout, match=r"instance snapshot slow in us-east-1 still creating after 0\.\ds"
    ) as err:
        src.wait_available(snap, timeout_s=0.3, poll_s=0.05)
    assert time.monotonic() - started < 2.0
    assert err.value.snapshot.status == "creating" and 0.2 <= err.value.waited_s < 2.0
    assert len(calls) == 7  # floor(0.3 / 0.05) + 1 looks: never past the budget
    assert "\n" not in str(err.value)


def test_wait_returns_once_the_snapshot_becomes_available(src: RdsApi) -> None:
    make_instance(src, "orders")
    snap = src.create_snapshot(kind="instance", resource="orders", snapshot_id="slow")
    moto_snap = backend(SRC).database_snapshots["slow"]
    moto_snap.status = "creating"
    flip = threading.Timer(0.3, lambda: setattr(moto_snap, "status", "available"))
    flip.start()
    try:
        started = time.monotonic()
        done = src.wait_available(replace(snap, status="creating"), timeout_s=10, poll_s=0.05)
    finally:
        flip.cancel()
    assert done.status == "available" and done.arn == snap.arn
    assert 0.25 <= time.monotonic() - started < 5


def test_wait_stops_at_a_terminal_failure_and_on_cluster_snapshots(src: RdsApi) -> None:
    make_cluster(src, "aurora")
    snap = src.create_snapshot(kind="cluster", resource="aurora", snapshot_id="c1")
    moto_snap = backend(SRC).cluster_snapshots["c1"]
    moto_snap.status = "creating"
    with pytest.raises(SnapshotTimeout, match="cluster snapshot c1 in us-east-1 still creating"):
        src.wait_available(snap, timeout_s=0.1, poll_s=0.05)
    moto_snap.status = "failed"
    started = time.monotonic()
    with pytest.raises(DrkitError, match="is failed: it will not become available") as err:
        src.wait_available(snap, timeout_s=30, poll_s=0.05)
    assert not isinstance(err.value, SnapshotTimeout) and time.monotonic() - started < 2


def test_wait_for_a_snapshot_that_disappears(src: RdsApi) -> None:
    make_instance(src, "orders")
    snap = src.create_snapshot(kind="instance", resource="orders", snapshot_id="gone")
    src.client.delete_db_snapshot(DBSnapshotIdentifier="gone")
    with pytest.raises(DrkitError, match="disappeared while drkit waited"):
        src.wait_available(snap, timeout_s=1, poll_s=0.05)


# -- faults --------------------------------------------------------------------------------


@pytest.mark.parametrize("code", ["SnapshotQuotaExceeded", "SnapshotQuotaExceededFault", "Throttling"])
def test_quota_and_throttling_are_retried_and_one_snapshot_is_made(src: RdsApi, sleeps: Sleeps, code: str) -> None:
    make_instance(src, "orders")
    hits = inject(src, "CreateDBSnapshot", code, times=2)
    snap = src.create_snapshot(kind="instance", resource="orders", snapshot_id="drkit-1")
    assert snap.id == "drkit-1" and len(hits) == 2
    assert manual_ids(src) == ["drkit-1"]
    # Two backoffs with jitter: between half and all of 2 s, then of 4 s.
    assert len(sleeps) == 2 and 1.0 <= sleeps[0] <= 2.0 and 2.0 <= sleeps[1] <= 4.0


def test_copy_retries_quota_exceeded_then_succeeds(
    factory: SessionFactory, src: RdsApi, dst: RdsApi, sleeps: Sleeps
) -> None:
    make_instance(src, "orders")
    source = src.create_snapshot(kind="instance", resource="orders", snapshot_id="s1")
    key = make_key(factory, DST, "alias/drkit-dr")
    hits = inject(dst, "CopyDBSnapshot", "SnapshotQuotaExceeded", times=3)
    copy = dst.copy_snapshot(kind="instance", source=source, target_id="s1", kms_key_id=key, tags={})
    assert copy.kms_key_id == key and len(hits) == 3 and len(sleeps) == 3
    assert manual_ids(dst) == ["s1"]


def test_persistent_throttling_gives_up_after_five_attempts(src: RdsApi, sleeps: Sleeps) -> None:
    make_instance(src, "orders")
    hits = inject(src, "CreateDBSnapshot", "RequestLimitExceeded")
    with pytest.raises(DrkitError, match="RequestLimitExceeded after 5 attempts; AWS is throttling") as err:
        src.create_snapshot(kind="instance", resource="orders", snapshot_id="drkit-1")
    assert len(hits) == 5 and len(sleeps) == 4 and max(sleeps) <= 60
    assert "\n" not in str(err.value) and manual_ids(src) == []


def test_quota_exhaustion_says_what_to_do(src: RdsApi) -> None:
    make_instance(src, "orders")
    inject(src, "CreateDBSnapshot", "SnapshotQuotaExceeded")
    with pytest.raises(DrkitError, match=r"SnapshotQuotaExceeded after 5 attempts; .*drkit prune --apply"):
        src.create_snapshot(kind="instance", resource="orders", snapshot_id="drkit-1")


@pytest.mark.parametrize(
    ("operation", "action", "run"),
    [
        (
            "CreateDBSnapshot",
            "rds:CreateDBSnapshot",
            lambda api: api.create_snapshot(kind="instance", resource="orders", snapshot_id="drkit-1"),
        ),
        ("DescribeDBSnapshots", "rds:DescribeDBSnapshots", lambda api: api.snapshots()),
        ("DescribeDBInstances", "rds:DescribeDBInstances", lambda api: api.instances()),
        (
            "AddTagsToResource",
            "rds:AddTagsToResource",
            lambda api: api.add_tags(f"arn:aws:rds:{SRC}:{DEFAULT_ACCOUNT_ID}:db:orders", {"a": "b"}),
        ),
    ],
)
def test_access_denied_is_one_line_naming_the_action(
    src: RdsApi, sleeps: Sleeps, operation: str, action: str, run: Any
) -> None:
    make_instance(src, "orders")
    hits = inject(src, operation, "AccessDenied", status=403)
    with pytest.raises(DrkitError, match=f"access denied: .* grant {action} to drkit's role") as err:
        run(src)
    assert "\n" not in str(err.value) and err.value.__cause__ is None
    assert len(hits) == 1 and sleeps == []  # not retried
    # Asked of moto directly: the refused client would be refused again.
    assert [s for s in backend(SRC).database_snapshots.values() if s.snapshot_type == "manual"] == []


# -- declared permissions ------------------------------------------------------------------


def test_every_call_is_declared_for_the_method_that_makes_it(factory: SessionFactory, src: RdsApi, dst: RdsApi) -> None:
    """Declared permissions: an RDS call a method makes that RdsApi.IAM omits fails here."""
    make_instance(src, "orders")
    make_cluster(src, "aurora", StorageEncrypted=True, KmsKeyId=make_key(factory, SRC, "alias/a"))
    key = make_key(factory, DST, "alias/drkit-dr")
    seen: dict[str, set[str]] = {}
    current = [""]
    for api in (src, dst):
        api.client.meta.events.register(
            "before-call.rds.*", lambda model, **_: seen.setdefault(current[0], set()).add(f"rds:{model.name}")
        )

    def run(method: str, call: Any) -> Any:
        current[0] = method
        return call()

    run("instances", src.instances)
    run("clusters", src.clusters)
    for kind, resource in (("instance", "orders"), ("cluster", "aurora")):
        run("snapshots", lambda kind=kind: src.snapshots(kind=kind))
        snap = run(
            "create_snapshot", lambda kind=kind, r=resource: src.create_snapshot(kind=kind, resource=r, snapshot_id="s")
        )
        run(
            "create_snapshot",
            lambda kind=kind, r=resource: src.create_snapshot(kind=kind, resource=r, snapshot_id="s", tags={"a": "b"}),
        )
        run("describe_snapshot", lambda kind=kind: src.describe_snapshot(kind, "s"))
        run("wait_available", lambda snap=snap: src.wait_available(snap, timeout_s=1, poll_s=0.05))
        run("add_tags", lambda snap=snap: src.add_tags(snap.arn, {"a": "b"}))
        copy = run(
            "copy_snapshot",
            lambda kind=kind, snap=snap: dst.copy_snapshot(
                kind=kind, source=snap, target_id="s", kms_key_id=key, tags={"a": "b"}
            ),
        )
        run(
            "copy_snapshot",
            lambda kind=kind, snap=snap: dst.copy_snapshot(
                kind=kind, source=snap, target_id="s", kms_key_id=key, tags={}
            ),
        )
        run("delete_snapshot", lambda copy=copy: dst.delete_snapshot(copy))
    assert set(seen) == set(RdsApi.IAM)
    for method, actions in seen.items():
        assert actions <= set(RdsApi.IAM[method]), method
    assert set(IAM_ACTIONS) == {a for actions in RdsApi.IAM.values() for a in actions}
    assert {"kms:CreateGrant", "kms:DescribeKey"} <= set(RdsApi.IAM["copy_snapshot"])


def test_the_scheduler_flow_stays_within_the_scheduler_role(
    guarded: GuardedFactoryMaker, factory: SessionFactory
) -> None:
    """The house guard (drkit.aws.permissions): snapshot, wait, tag, copy, prune as the scheduler."""
    make_instance(RdsApi(factory, SRC), "orders")
    make_key(factory, DST, "alias/drkit-dr")
    scheduler = guarded(role="scheduler", region=SRC)
    src, dst = RdsApi(scheduler, SRC, sleep=Sleeps()), RdsApi(scheduler, DST, sleep=Sleeps())
    assert [i.id for i in src.instances()] == ["orders"] and src.snapshots() == []
    snap = src.wait_available(
        src.create_snapshot(kind="instance", resource="orders", snapshot_id="drkit-1"), timeout_s=1, poll_s=0.05
    )
    src.add_tags(snap.arn, {"managed-by": "drkit"})
    key = resolve_key(scheduler, DST, "alias/drkit-dr")
    copy = dst.copy_snapshot(kind="instance", source=snap, target_id="drkit-1", kms_key_id=key.arn, tags={})
    dst.delete_snapshot(copy)
    assert ("rds", "CopyDBSnapshot") in scheduler.calls and ("kms", "DescribeKey") in scheduler.calls


def test_unknown_kind_is_a_programming_error(src: RdsApi) -> None:
    with pytest.raises(ValueError, match="snapshot kind must be one of"):
        src.snapshots(kind="table")
