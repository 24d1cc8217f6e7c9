"""`drkit s3 replicate`: the plan, the set-up it applies, the backfill, and what it refuses (moto).

moto never replicates and loses parts of a replication rule on read-back (TESTING.md), so these
tests assert on the configuration drkit SENDS (captured from botocore's `provide-client-params`
event on drkit's own clients) and test the backfill with objects placed in both buckets. Where a
test needs AWS's faithful read-back of a rule (the second, no-op run), it serves the rule drkit
sent back to it: a stand-in for what AWS does, said so where it is used.

Every client drkit makes is guarded with the `s3-setup` role (tests/aws/declared.py): an AWS call
that is not declared in drkit.aws.permissions fails the test.
"""

from __future__ import annotations

import copy
import io
import json
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.awsrequest import AWSResponse
from rich.console import Console

from drkit.clock import FakeClock
from drkit.errors import ExitStatus, UsageError
from drkit.jobs.context import Context
from drkit.jobs.s3_replicate import apply_replication, plan_replication
from tests.aws.declared import GuardedSessionFactory

REPO = Path(__file__).resolve().parents[2]
SRC, DST, HOME, DR = "acme-assets-prod", "acme-assets-prod-dr", "us-east-1", "us-west-2"
ROLE = "drkit-s3-replication-assets"
MUTATING = ("Put", "Create", "Copy", "Update", "UploadPart", "Complete", "Delete")


class Recording(GuardedSessionFactory):
    """The guarded factory, plus: the parameters of every call drkit sent, by operation name, and
    optional canned answers (operation -> callable(params) -> parsed response) that stand in for AWS."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(role="s3-setup", region=HOME, **kwargs)
        self.sent: dict[str, list[dict[str, Any]]] = {}
        self.answers: dict[str, Any] = {}

    def client(self, service: str, region: str | None = None) -> Any:
        client = super().client(service, region)
        client.meta.events.register("provide-client-params", self._capture)
        client.meta.events.register("before-call", self._answer)
        return client

    def _capture(self, params: dict[str, Any], model: Any, **_: Any) -> None:
        self.sent.setdefault(model.name, []).append(copy.deepcopy(params))

    def _answer(self, model: Any, **_: Any) -> Any:
        answer = self.answers.get(model.name)
        if answer is None:
            return None
        return AWSResponse("https://stand-in", 200, {}, None), answer(self.sent.get(model.name, [{}])[-1])

    def count(self, op: str) -> int:
        return sum(1 for _, name in self.calls if name == op)

    def mutations(self) -> list[str]:
        return [name for _, name in self.calls if name.startswith(MUTATING)]


@pytest.fixture
def rec(moto_aws: None) -> Iterator[Recording]:
    factory = Recording()
    yield factory
    assert factory.undeclared == [], factory.undeclared


@pytest.fixture
def ctx(tmp_path: Path) -> Context:
    config = tmp_path / "config"
    (config / "schedules").mkdir(parents=True)
    shutil.copy(REPO / "schedules" / "production.yaml", config / "schedules" / "production.yaml")
    console = Console(file=io.StringIO(), width=200)
    return Context(config_dir=config, catalog_url=f"sqlite:///{tmp_path / 'catalog.db'}",
                   clock=FakeClock(datetime(2026, 11, 29, 10, 0, tzinfo=UTC)), console=console, out=console)


def s3(region: str = HOME) -> Any:
    return boto3.client("s3", region_name=region)


@pytest.fixture
def dr_key(moto_aws: None) -> str:
    kms = boto3.client("kms", region_name=DR)
    arn = str(kms.create_key(Description="drkit DR")["KeyMetadata"]["Arn"])
    kms.create_alias(AliasName="alias/drkit-dr", TargetKeyId=arn)
    return arn


@pytest.fixture
def source(moto_aws: None) -> str:
    s3().create_bucket(Bucket=SRC)
    return SRC


def make_replica(region: str = DR) -> None:
    s3(region).create_bucket(Bucket=DST, CreateBucketConfiguration={"LocationConstraint": region})


def changes(plan: Any) -> dict[str, tuple[str, str]]:
    """what -> (action, detail)"""
    return {c.what: (c.action, c.detail) for c in plan.changes}


def expected_rule(role_arn: str, key_arn: str) -> dict[str, Any]:
    """The replication configuration the contract's schedule must produce, written out by hand."""
    return {
        "Role": role_arn,
        "Rules": [{
            "ID": "drkit-assets",
            "Priority": 1,
            "Filter": {},
            "Status": "Enabled",
            "DeleteMarkerReplication": {"Status": "Enabled"},
            "SourceSelectionCriteria": {"SseKmsEncryptedObjects": {"Status": "Enabled"}},
            "Destination": {
                "Bucket": f"arn:aws:s3:::{DST}",
                "EncryptionConfiguration": {"ReplicaKmsKeyID": key_arn},
                "ReplicationTime": {"Status": "Enabled", "Time": {"Minutes": 15}},
                "Metrics": {"Status": "Enabled", "EventThreshold": {"Minutes": 15}},
            },
        }],
    }


def policy_actions(doc: dict[str, Any]) -> dict[str, set[str]]:
    """resource -> actions allowed on it."""
    out: dict[str, set[str]] = {}
    for st in doc["Statement"]:
        resources = st["Resource"] if isinstance(st["Resource"], list) else [st["Resource"]]
        actions = st["Action"] if isinstance(st["Action"], list) else [st["Action"]]
        for r in resources:
            out.setdefault(r, set()).update(actions)
    return out


# -- a fresh pair ------------------------------------------------------------------------------------------


def test_fresh_pair_plan_lists_every_change_and_apply_sets_everything_up(
    rec: Recording, ctx: Context, source: str, dr_key: str
) -> None:
    for i in range(3):
        s3().put_object(Bucket=SRC, Key=f"img/{i}.png", Body=b"x" * (i + 1))

    plan = plan_replication(ctx, "production", "assets", factory=rec)

    got = changes(plan)
    assert got[f"versioning of {SRC}"] == ("change", "never enabled -> Enabled (replication needs it)")
    assert got[f"bucket {DST}"] == ("create", f"in {DR} (LocationConstraint {DR})")
    assert got[f"versioning of {DST}"] == ("create", "Enabled")
    assert got[f"Block Public Access of {DST}"] == ("create", "all four on")
    assert got[f"default encryption of {DST}"] == ("create", f"aws:kms {dr_key}, BucketKeyEnabled")
    assert got[f"IAM role {ROLE}"] == ("create", "trusts s3.amazonaws.com")
    assert got[f"inline policy drkit-s3-replication of {ROLE}"][0] == "create"
    action, detail = got[f"replication rule drkit-assets of {SRC}"]
    assert action == "create" and f"arn:aws:iam::123456789012:role/{ROLE}" in detail and dr_key in detail
    assert "RTC 15 min with metrics" in detail
    action, detail = got[f"backfill into {DST}"]
    assert action == "create" and detail.startswith("3 of 3 objects") and "server-side copies" in detail
    lines = plan.lines()
    assert lines[-1] == "plan: 8 to create, 1 to change, 0 unchanged"
    assert any(line.startswith("  + create    bucket acme-assets-prod-dr") for line in lines)
    # Planning changed nothing.
    assert rec.mutations() == []
    assert DST not in {b["Name"] for b in s3().list_buckets()["Buckets"]}

    result = apply_replication(ctx, plan)

    assert len(result.applied) == 9 and result.copied == 3
    for bucket, region in ((SRC, HOME), (DST, DR)):
        assert s3(region).get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
    assert s3(DR).get_bucket_location(Bucket=DST)["LocationConstraint"] == DR
    [enc] = s3(DR).get_bucket_encryption(Bucket=DST)["ServerSideEncryptionConfiguration"]["Rules"]
    assert enc["ApplyServerSideEncryptionByDefault"] == {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": dr_key}
    assert enc["BucketKeyEnabled"] is True
    assert s3(DR).get_public_access_block(Bucket=DST)["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True, "IgnorePublicAcls": True, "BlockPublicPolicy": True, "RestrictPublicBuckets": True}

    iam = boto3.client("iam")
    role = iam.get_role(RoleName=ROLE)["Role"]
    assert role["AssumeRolePolicyDocument"]["Statement"] == [
        {"Effect": "Allow", "Principal": {"Service": "s3.amazonaws.com"}, "Action": "sts:AssumeRole"}]
    doc = iam.get_role_policy(RoleName=ROLE, PolicyName="drkit-s3-replication")["PolicyDocument"]
    assert policy_actions(doc) == {
        f"arn:aws:s3:::{SRC}": {"s3:GetReplicationConfiguration", "s3:ListBucket"},
        f"arn:aws:s3:::{SRC}/*": {"s3:GetObjectVersionForReplication", "s3:GetObjectVersionAcl",
                                  "s3:GetObjectVersionTagging"},
        f"arn:aws:s3:::{DST}/*": {"s3:ReplicateObject", "s3:ReplicateDelete", "s3:ReplicateTags"},
        dr_key: {"kms:Encrypt"},
    }
    encrypt = next(st for st in doc["Statement"] if st["Action"] == ["kms:Encrypt"])
    assert encrypt["Condition"] == {"StringLike": {"kms:ViaService": "s3.us-west-2.amazonaws.com"}}

    # What drkit sent, exactly (moto drops parts of it on read-back).
    [sent] = rec.sent["PutBucketReplication"]
    assert sent["Bucket"] == SRC
    assert sent["ReplicationConfiguration"] == expected_rule(role["Arn"], dr_key)

    [event] = ctx.catalog().audit_events()
    assert (event.action, event.target) == ("s3-replicate", "assets")
    assert event.detail["copied"] == 3 and event.detail["kms_key"] == dr_key and len(event.detail["changes"]) == 9


def test_a_second_run_plans_only_unchanged_and_sends_nothing(
    rec: Recording, ctx: Context, source: str, dr_key: str
) -> None:
    s3().put_object(Bucket=SRC, Key="a", Body=b"a")
    apply_replication(ctx, plan_replication(ctx, "production", "assets", factory=rec))
    sent_rule = rec.sent["PutBucketReplication"][-1]["ReplicationConfiguration"]

    # moto's own read-back of the rule is lossy (DeleteMarkerReplication "Disabled", no
    # SourceSelectionCriteria): drkit reads that as drift, as it would on AWS, and says what.
    lossy = changes(plan_replication(ctx, "production", "assets", factory=rec))
    action, detail = lossy[f"replication rule drkit-assets of {SRC}"]
    assert action == "change"
    assert "Rules[0].DeleteMarkerReplication.Status: Disabled -> Enabled" in detail
    assert "Rules[0].SourceSelectionCriteria: missing -> {'SseKmsEncryptedObjects'" in detail

    # AWS returns the rule as it was put (an empty filter as {"Prefix": ""}): stand in for that.
    rec.answers["GetBucketReplication"] = lambda _: {
        "ReplicationConfiguration": {**sent_rule, "Rules": [{**sent_rule["Rules"][0], "Filter": {"Prefix": ""}}]}}
    before = len(rec.calls)
    again = plan_replication(ctx, "production", "assets", factory=rec)
    assert {c.action for c in again.changes} == {"unchanged"}, again.lines()
    assert again.lines()[-1] == "plan: 0 to create, 0 to change, 9 unchanged"
    result = apply_replication(ctx, again)
    assert result.applied == [] and result.copied == 0
    assert [op for _, op in rec.calls[before:] if op.startswith(MUTATING)] == []
    assert len(ctx.catalog().audit_events()) == 1  # a no-op run records nothing


def test_suspended_versioning_is_turned_back_on_and_said_so(
    rec: Recording, ctx: Context, source: str, dr_key: str
) -> None:
    s3().put_bucket_versioning(Bucket=SRC, VersioningConfiguration={"Status": "Suspended"})
    plan = plan_replication(ctx, "production", "assets", factory=rec)
    assert changes(plan)[f"versioning of {SRC}"] == ("change", "Suspended -> Enabled (replication needs it)")
    apply_replication(ctx, plan)
    assert s3().get_bucket_versioning(Bucket=SRC)["Status"] == "Enabled"


def test_a_source_key_is_decryptable_by_the_role_only_through_s3_in_its_region(
    rec: Recording, ctx: Context, source: str, dr_key: str
) -> None:
    home_key = boto3.client("kms", region_name=HOME).create_key()["KeyMetadata"]
    s3().put_bucket_encryption(Bucket=SRC, ServerSideEncryptionConfiguration={"Rules": [
        {"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": home_key["KeyId"]}}]})
    plan = plan_replication(ctx, "production", "assets", factory=rec)
    [decrypt] = [st for st in plan.policy["Statement"] if st["Action"] == ["kms:Decrypt"]]
    assert decrypt["Resource"] == home_key["Arn"]
    assert decrypt["Condition"] == {"StringLike": {"kms:ViaService": "s3.us-east-1.amazonaws.com"}}


# -- backfill ----------------------------------------------------------------------------------------------

UNICODE_KEY = "photos/été 2026/plage ☀ n°1.jpg"


def _place_objects() -> list[str]:
    """25 objects in the source, 5 of them already in the replica (same bytes)."""
    make_replica()
    keys = [f"obj/{i:02d}" for i in range(24)] + [UNICODE_KEY]
    for i, key in enumerate(keys):
        s3().put_object(Bucket=SRC, Key=key, Body=f"body {i}".encode(), ContentType="text/plain")
    for key in keys[:5]:
        s3(DR).put_object(Bucket=DST, Key=key, Body=s3().get_object(Bucket=SRC, Key=key)["Body"].read())
    return keys


def test_backfill_copies_exactly_the_missing_objects_under_the_dr_key(
    rec: Recording, ctx: Context, source: str, dr_key: str
) -> None:
    keys = _place_objects()
    plan = plan_replication(ctx, "production", "assets", factory=rec)
    # The replica exists unencrypted: drkit sets its default encryption and says so.
    action, detail = changes(plan)[f"default encryption of {DST}"]
    assert action == "change" and detail.startswith(f"none -> aws:kms {dr_key}")
    assert changes(plan)[f"backfill into {DST}"][1].startswith("20 of 25 objects")

    seen: list[str] = []
    result = apply_replication(ctx, plan, progress=lambda done, total, key: seen.append(key))

    assert result.copied == 20 == rec.count("CopyObject") and sorted(seen) == sorted(keys[5:])
    assert {c["Key"] for c in rec.sent["CopyObject"]} == set(keys[5:])
    listed = s3(DR).list_objects_v2(Bucket=DST)["Contents"]
    assert sorted(o["Key"] for o in listed) == sorted(keys)
    for key in keys[5:]:
        head = s3(DR).head_object(Bucket=DST, Key=key)
        assert head["ServerSideEncryption"] == "aws:kms" and head["SSEKMSKeyId"] == dr_key
        assert head["ContentType"] == "text/plain"
    body = s3(DR).get_object(Bucket=DST, Key=UNICODE_KEY)["Body"].read()
    assert body == s3().get_object(Bucket=SRC, Key=UNICODE_KEY)["Body"].read()
    # The five that were there were not overwritten: each still has exactly one version.
    versions = s3(DR).list_object_versions(Bucket=DST, Prefix="obj/0")["Versions"]
    assert sorted(v["Key"] for v in versions if v["Key"] in keys[:5]) == sorted(keys[:5])


def test_an_interrupted_backfill_resumes_and_copies_nothing_twice(
    rec: Recording, ctx: Context, source: str, dr_key: str
) -> None:
    keys = _place_objects()

    class Stop(Exception):
        pass

    def stop_after_7(done: int, total: int, key: str) -> None:
        if done == 7:
            raise Stop

    with pytest.raises(Stop):
        apply_replication(ctx, plan_replication(ctx, "production", "assets", factory=rec), progress=stop_after_7,
                          concurrency=2)
    first = rec.count("CopyObject")
    assert 7 <= first < 20
    [event] = ctx.catalog().audit_events()
    assert event.detail["copied"] == 7 and "error" in event.detail

    plan = plan_replication(ctx, "production", "assets", factory=rec)
    assert changes(plan)[f"backfill into {DST}"][1].startswith(f"{20 - first} of 25 objects")
    apply_replication(ctx, plan)

    assert rec.count("CopyObject") == 20  # every missing object exactly once, across both runs
    copied = [c["Key"] for c in rec.sent["CopyObject"]]
    assert sorted(copied) == sorted(keys[5:])
    assert sorted(o["Key"] for o in s3(DR).list_objects_v2(Bucket=DST)["Contents"]) == sorted(keys)


def test_objects_over_the_threshold_are_copied_in_parts_with_their_metadata(
    rec: Recording, ctx: Context, source: str, dr_key: str
) -> None:
    big = bytes(range(256)) * (5 * 4096) + b"tail"  # 5 MiB + 4 bytes: two parts of a 5 MiB part size
    s3().put_object(Bucket=SRC, Key="big/blob.bin", Body=big, ContentType="application/x-blob",
                    Metadata={"owner": "assets"})
    s3().put_object(Bucket=SRC, Key="small", Body=b"s")
    plan = plan_replication(ctx, "production", "assets", factory=rec)
    apply_replication(ctx, plan, multipart_threshold=1024 * 1024, part_size=5 * 1024 * 1024)

    assert rec.count("UploadPartCopy") == 2 and rec.count("CopyObject") == 1
    assert [p["CopySourceRange"] for p in rec.sent["UploadPartCopy"]] == [
        f"bytes=0-{5 * 1024 * 1024 - 1}", f"bytes={5 * 1024 * 1024}-{len(big) - 1}"]
    got = s3(DR).get_object(Bucket=DST, Key="big/blob.bin")
    assert got["Body"].read() == big
    assert got["SSEKMSKeyId"] == dr_key and got["ContentType"] == "application/x-blob"
    assert got["Metadata"] == {"owner": "assets"}


def test_batch_replication_is_used_where_the_endpoint_offers_it(
    rec: Recording, ctx: Context, source: str, dr_key: str
) -> None:
    """moto has no S3 Batch Operations: the two s3control answers are stand-ins for AWS's."""
    s3().put_object(Bucket=SRC, Key="a", Body=b"a")
    rec.answers["ListJobs"] = lambda _: {"Jobs": []}
    rec.answers["CreateJob"] = lambda _: {"JobId": "job-0001"}
    plan = plan_replication(ctx, "production", "assets", factory=rec)
    assert "by S3 Batch Replication job" in changes(plan)[f"backfill into {DST}"][1]
    assert changes(plan)[f"IAM role {ROLE}"][1] == "trusts batchoperations.s3.amazonaws.com, s3.amazonaws.com"
    result = apply_replication(ctx, plan)

    assert result.batch_job == "job-0001" and rec.count("CopyObject") == 0
    [job] = rec.sent["CreateJob"]
    role_arn = boto3.client("iam").get_role(RoleName=ROLE)["Role"]["Arn"]
    assert job["AccountId"] == "123456789012" and job["RoleArn"] == role_arn
    assert job["Operation"] == {"S3ReplicateObject": {}}
    assert job["ManifestGenerator"]["S3JobManifestGenerator"]["SourceBucket"] == f"arn:aws:s3:::{SRC}"
    assert job["ManifestGenerator"]["S3JobManifestGenerator"]["Filter"] == {
        "EligibleForReplication": True, "ObjectReplicationStatuses": ["NONE", "FAILED"]}
    doc = boto3.client("iam").get_role_policy(RoleName=ROLE, PolicyName="drkit-s3-replication")["PolicyDocument"]
    assert "s3:InitiateReplication" in policy_actions(doc)[f"arn:aws:s3:::{SRC}/*"]


def test_a_batch_job_refused_by_the_endpoint_falls_back_to_copies(
    rec: Recording, ctx: Context, source: str, dr_key: str
) -> None:
    s3().put_object(Bucket=SRC, Key="a", Body=b"a")
    rec.answers["ListJobs"] = lambda _: {"Jobs": []}  # lists, but CreateJob reaches moto: 404
    result = apply_replication(ctx, plan_replication(ctx, "production", "assets", factory=rec))
    assert result.batch_job is None and result.copied == 1
    assert s3(DR).head_object(Bucket=DST, Key="a")["SSEKMSKeyId"] == dr_key


# -- refusals: exit 2, nothing changed ---------------------------------------------------------------------


def _refused(rec: Recording, ctx: Context, *needles: str) -> None:
    with pytest.raises(UsageError) as err:
        plan_replication(ctx, "production", "assets", factory=rec)
    assert err.value.exit_status == ExitStatus.USAGE
    message = str(err.value)
    assert "\n" not in message and all(n in message for n in needles), message
    assert rec.mutations() == []


def test_refuses_without_a_usable_dr_key(rec: Recording, ctx: Context, source: str) -> None:
    _refused(rec, ctx, "alias/drkit-dr", "us-west-2")
    assert not boto3.client("iam").list_roles()["Roles"]


def test_refuses_a_dr_key_in_the_wrong_region(rec: Recording, ctx: Context, source: str) -> None:
    kms = boto3.client("kms", region_name=HOME)
    kms.create_alias(AliasName="alias/drkit-dr", TargetKeyId=kms.create_key()["KeyMetadata"]["KeyId"])
    _refused(rec, ctx, "alias/drkit-dr")


def test_refuses_a_missing_source_bucket(rec: Recording, ctx: Context, dr_key: str) -> None:
    _refused(rec, ctx, f"source bucket {SRC} does not exist")


def test_refuses_a_replica_bucket_in_the_wrong_region(
    rec: Recording, ctx: Context, source: str, dr_key: str
) -> None:
    make_replica("eu-west-1")
    _refused(rec, ctx, f"replica bucket {DST} is in eu-west-1, not us-west-2")


def test_refuses_a_replica_encrypted_with_another_key(
    rec: Recording, ctx: Context, source: str, dr_key: str
) -> None:
    make_replica()
    other = boto3.client("kms", region_name=DR).create_key()["KeyMetadata"]["Arn"]
    s3(DR).put_bucket_encryption(Bucket=DST, ServerSideEncryptionConfiguration={"Rules": [
        {"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": other}}]})
    _refused(rec, ctx, f"replica bucket {DST} is encrypted with aws:kms {other}", dr_key)


def test_refuses_to_replace_replication_rules_drkit_did_not_write(
    rec: Recording, ctx: Context, source: str, dr_key: str
) -> None:
    s3().put_bucket_versioning(Bucket=SRC, VersioningConfiguration={"Status": "Enabled"})
    s3().put_bucket_replication(Bucket=SRC, ReplicationConfiguration={
        "Role": "arn:aws:iam::123456789012:role/theirs",
        "Rules": [{"ID": "to-analytics", "Priority": 1, "Filter": {}, "Status": "Enabled",
                   "DeleteMarkerReplication": {"Status": "Disabled"},
                   "Destination": {"Bucket": "arn:aws:s3:::analytics"}}]})
    _refused(rec, ctx, "to-analytics")


def test_the_plan_text_is_what_a_reader_expects(rec: Recording, ctx: Context, source: str, dr_key: str) -> None:
    text = "\n".join(plan_replication(ctx, "production", "assets", factory=rec).lines())
    assert text.startswith(f"s3 replicate assets: {SRC} ({HOME}) -> {DST} ({DR}), KMS key {dr_key}\n")
    assert f"  + create    default encryption of {DST}: aws:kms {dr_key}, BucketKeyEnabled" in text
    assert f"  ~ change    versioning of {SRC}: never enabled -> Enabled" in text
    assert json.dumps(text)  # plain text, no rich markup objects


def test_the_s3_setup_policy_is_enough_for_the_whole_flow(
    ctx: Context, source: str, dr_key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As an IAM user holding only `drkit iam-policy --for s3-setup`, with moto's IAM enforcement on
    (actions are checked; resources only for S3; conditions not at all): no AccessDenied."""
    from moto.core import enable_iam_authentication

    from drkit.aws.permissions import policy_document

    _place_objects()
    iam = boto3.client("iam")
    arn = iam.create_policy(PolicyName="s3-setup", PolicyDocument=json.dumps(policy_document("s3-setup")))
    iam.create_user(UserName="admin")
    iam.attach_user_policy(UserName="admin", PolicyArn=arn["Policy"]["Arn"])
    key = iam.create_access_key(UserName="admin")["AccessKey"]
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", key["AccessKeyId"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", key["SecretAccessKey"])
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    factory = Recording()
    with enable_iam_authentication():
        result = apply_replication(ctx, plan_replication(ctx, "production", "assets", factory=factory))
    assert factory.undeclared == []
    assert result.copied == 20 and len(result.applied) == 8
    assert s3(DR).get_bucket_versioning(Bucket=DST)["Status"] == "Enabled"
