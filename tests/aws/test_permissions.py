"""Declared permissions: the registry, the guard that refuses undeclared calls, and `drkit iam-policy`.

What a user relies on: the policy `drkit iam-policy --for scheduler` prints is enough for the
whole scheduler flow and nothing in it is superfluous. That is proved against moto with IAM
enforcement on (TESTING.md: moto checks action-level Allow for RDS, EC2, KMS, S3, IAM, STS and
SNS, ignores conditions, and checks resources only for S3, so the test user's policy keeps
Resource "*"): a user holding exactly that policy runs every scheduler operation without an
AccessDenied, and with any one action removed exactly the calls needing that action are refused.
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import itertools
import json
import os
import pkgutil
import re
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import botocore.session
import pytest
from botocore.exceptions import ClientError
from click.testing import CliRunner
from moto import mock_aws
from moto.core import DEFAULT_ACCOUNT_ID, enable_iam_authentication

import drkit.aws
import drkit.cli.iam_cmd
from drkit.aws import kms as kms_module
from drkit.aws import s3store, session
from drkit.aws.permissions import (
    OPERATIONS,
    ROLE_NAMES,
    ROLES,
    Operation,
    UndeclaredCall,
    actions_for,
    install_guard,
    operations_for,
    policy_document,
)
from drkit.cli import cli
from tests.aws.conftest import fake_aws_environment
from tests.aws.declared import GuardedFactoryMaker, GuardedSessionFactory

REPO = Path(__file__).resolve().parents[2]
HOME, DR = "us-east-1", "us-west-2"

# -- the registry ---------------------------------------------------------------------------------


def test_every_declared_operation_exists_in_botocore() -> None:
    """A typo in an operation name would make the guard refuse a real call (or never match one)."""
    core = botocore.session.get_session()
    for service, name in OPERATIONS:
        assert name in core.get_service_model(service).operation_names, f"{service}.{name}"


def test_every_action_is_service_colon_name_and_calls_are_authorised_as_their_own_name() -> None:
    for (service, name), actions in OPERATIONS.items():
        for action in actions:
            assert re.fullmatch(r"(rds|kms|s3|sts|sns|ec2|iam):[A-Z][A-Za-z0-9]+", action), action
        if service not in ("s3", "s3control") and actions:
            # Outside S3 (whose table maps several calls to one action), AWS authorises a call
            # under its own name; the first action is that one (the test below relies on it).
            assert actions[0] == f"{service}:{name}"


def test_roles_use_only_declared_operations_and_every_declaration_belongs_to_a_role() -> None:
    for role, ops in ROLES.items():
        assert ops <= OPERATIONS.keys(), (role, ops - OPERATIONS.keys())
    assert operations_for("all") == set(OPERATIONS)
    assert set(ROLE_NAMES) == {"scheduler", "drill", "runbooks", "s3-setup", "all"}
    with pytest.raises(ValueError, match="unknown drkit role 'backup'"):
        actions_for("backup")


def test_roles_cannot_do_what_is_not_their_job() -> None:
    """Least privilege a user can read: drills and incident runbooks never delete backups;
    the scheduler never restores or deletes a database; runbooks never touch the network.
    Runbooks may write S3 objects: `drkit s3 restore` copies old versions on top and adds delete
    markers (it never deletes a version), so s3:PutObject/DeleteObject are its job; drills are not."""
    scheduler, drill, runbooks = (set(actions_for(r)) for r in ("scheduler", "drill", "runbooks"))
    snapshot_writes = {
        "rds:CreateDBSnapshot",
        "rds:CreateDBClusterSnapshot",
        "rds:DeleteDBSnapshot",
        "rds:DeleteDBClusterSnapshot",
        "rds:CopyDBSnapshot",
        "rds:CopyDBClusterSnapshot",
    }
    assert not (drill | runbooks) & snapshot_writes
    assert snapshot_writes <= scheduler
    assert not {a for a in scheduler if a.startswith(("rds:Restore", "rds:DeleteDBInstance", "rds:Modify"))}
    assert not {a for a in scheduler | runbooks if a.startswith("ec2:")}
    assert not {a for a in runbooks if a.startswith(("rds:Delete", "rds:CreateDBSubnetGroup"))}
    assert not {a for a in drill if a in ("s3:PutObject", "s3:DeleteObject", "sns:Publish")}
    assert "s3:DeleteObjectVersion" not in runbooks  # a point-in-time restore never destroys history
    # The side permissions of a copy with a destination key come with it.
    assert {"kms:CreateGrant", "kms:DescribeKey"} <= scheduler


def _declared_constants() -> dict[str, tuple[str, ...]]:
    """Every IAM action constant in drkit.aws: module-level *IAM_ACTIONS tuples and the values of
    class-level `IAM` dicts (method -> actions, as RdsApi declares them)."""
    found: dict[str, tuple[str, ...]] = {}
    for info in pkgutil.iter_modules(drkit.aws.__path__, "drkit.aws."):
        module = importlib.import_module(info.name)
        for name, value in vars(module).items():
            if name.endswith("IAM_ACTIONS"):
                found[f"{info.name}.{name}"] = tuple(value)
            elif inspect.isclass(value) and value.__module__ == info.name:
                for method, actions in (getattr(value, "IAM", None) or {}).items():
                    found[f"{info.name}.{name}.IAM[{method!r}]"] = tuple(actions)
    return found


def test_every_declared_constant_in_drkit_aws_is_in_the_policy() -> None:
    """The adapters' own declarations and this registry never drift apart."""
    constants = _declared_constants()
    # The walk really sees the adapters (it would pass vacuously otherwise).
    assert {"drkit.aws.s3store.IAM_ACTIONS", "drkit.aws.kms.IAM_ACTIONS", "drkit.aws.session.IAM_ACTIONS"} <= set(
        constants
    )
    everything = set(actions_for("all"))
    missing = {name: sorted(set(actions) - everything) for name, actions in constants.items()}
    assert {name: gap for name, gap in missing.items() if gap} == {}


def test_the_stores_and_key_wrappers_declarations_are_in_the_roles_that_use_them() -> None:
    scheduler = set(actions_for("scheduler"))
    assert set(s3store.IAM_ACTIONS) | set(s3store.SSE_KMS_IAM_ACTIONS) | set(kms_module.IAM_ACTIONS) <= scheduler
    for role in ROLE_NAMES:
        assert set(session.IAM_ACTIONS) <= set(actions_for(role)), role
    # Restores read backups (and unwrap their keys), never write or delete them.
    for role in ("drill", "runbooks"):
        assert {"s3:GetObject", "s3:ListBucket", "kms:Decrypt", "kms:DescribeKey"} <= set(actions_for(role))


@pytest.mark.parametrize("role", ROLE_NAMES)
def test_policy_documents_are_valid_iam_policies(role: str) -> None:
    doc = policy_document(role)
    assert set(doc) == {"Version", "Statement"} and doc["Version"] == "2012-10-17"
    statements = doc["Statement"]
    assert isinstance(statements, list) and statements
    sids = [s["Sid"] for s in statements]
    assert len(set(sids)) == len(sids) and all(re.fullmatch(r"[A-Za-z0-9]+", sid) for sid in sids)
    seen: list[str] = []
    for statement in statements:
        assert set(statement) == {"Sid", "Effect", "Action", "Resource"}
        assert statement["Effect"] == "Allow" and statement["Resource"] == "*"
        actions = statement["Action"]
        assert actions == sorted(actions) and actions
        assert len({a.split(":")[0] for a in actions}) == 1  # grouped by service
        seen += actions
    assert sorted(seen) == actions_for(role)
    # AWS's limit for a managed policy: 6,144 characters, whitespace not counted.
    assert len(json.dumps(doc, separators=(",", ":"))) <= 6144


def test_iam_policy_command_prints_the_roles_policy() -> None:
    runner = CliRunner()
    result = runner.invoke(cli, ["iam-policy", "--for", "scheduler"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == policy_document("scheduler")
    assert result.stdout.startswith('{\n  "Version"')  # indent 2, for people and diffs
    default = runner.invoke(cli, ["iam-policy"])
    assert json.loads(default.stdout) == policy_document("all")
    wrong = runner.invoke(cli, ["iam-policy", "--for", "backup"])
    assert wrong.exit_code == 2 and "'backup' is not one of" in wrong.output


# -- the guard --------------------------------------------------------------------------------------


def test_guard_refuses_an_undeclared_call_before_it_reaches_aws(factory: Any) -> None:
    rds = factory.client("rds")
    install_guard(rds)
    with pytest.raises(UndeclaredCall, match=r"^rds\.CreateDBInstance is not declared in "
                       r"drkit\.aws\.permissions\.OPERATIONS: declare the IAM actions it needs$"):
        rds.create_db_instance(DBInstanceIdentifier="x", DBInstanceClass="db.t3.micro", Engine="postgres")
    # Nothing was created: the call never left the client. Declared calls go through.
    assert rds.describe_db_instances()["DBInstances"] == []
    # The guard belongs to that client only.
    unguarded = factory.client("rds")
    unguarded.create_db_instance(
        DBInstanceIdentifier="x", DBInstanceClass="db.t3.micro", Engine="postgres",
        MasterUsername="admin", MasterUserPassword="password1",
    )
    assert [i["DBInstanceIdentifier"] for i in rds.describe_db_instances()["DBInstances"]] == ["x"]


def test_guard_with_a_role_refuses_other_roles_operations(factory: Any) -> None:
    scheduler, drill = factory.client("rds"), factory.client("rds")
    install_guard(scheduler, "scheduler")
    install_guard(drill, "drill")
    with pytest.raises(UndeclaredCall, match=r"^rds\.DeleteDBInstance is not in drkit\.aws\.permissions"
                       r"\.ROLES\['scheduler'\]: add it to the role"):
        scheduler.delete_db_instance(DBInstanceIdentifier="orders-prod", SkipFinalSnapshot=True)
    # The drill may: moto answers (the instance does not exist), so the call was sent.
    with pytest.raises(ClientError, match="DBInstanceNotFound"):
        drill.delete_db_instance(DBInstanceIdentifier="orders-prod", SkipFinalSnapshot=True)


def test_guard_covers_paginators_and_records_refusals_even_when_swallowed(factory: Any) -> None:
    ec2 = factory.client("ec2")
    refused: list[str] = []
    install_guard(ec2, "scheduler", record=refused)
    with pytest.raises(UndeclaredCall):
        list(ec2.get_paginator("describe_vpcs").paginate())
    with contextlib.suppress(Exception):  # code that catches everything cannot hide a refusal
        ec2.create_vpc(CidrBlock="10.99.0.0/16")
    assert [m.split(" ")[0] for m in refused] == ["ec2.DescribeVpcs", "ec2.CreateVpc"]
    assert boto3.client("ec2", region_name=HOME).describe_vpcs(
        Filters=[{"Name": "cidr", "Values": ["10.99.0.0/16"]}]
    )["Vpcs"] == []


def test_guarded_factory_records_declared_calls(guarded: GuardedFactoryMaker) -> None:
    factory = guarded("drill")
    ec2 = factory.client("ec2", region=DR)
    ec2.describe_availability_zones()
    list(factory.client("rds").get_paginator("describe_db_snapshots").paginate())
    assert factory.calls == [("ec2", "DescribeAvailabilityZones"), ("rds", "DescribeDBSnapshots")]
    assert factory.undeclared == []


def test_guarded_fixture_fails_a_test_whose_code_swallows_an_undeclared_call(tmp_path: Path) -> None:
    """The opt-in fixture itself: a test that hides an UndeclaredCall still fails (at teardown)."""
    test = tmp_path / "test_hidden.py"
    test.write_text(
        textwrap.dedent(
            """
            from tests.aws.conftest import aws_env, moto_aws  # noqa: F401
            from tests.aws.declared import guarded  # noqa: F401

            def test_swallows(guarded):
                rds = guarded("scheduler").client("rds")
                try:
                    rds.delete_db_instance(DBInstanceIdentifier="orders-prod", SkipFinalSnapshot=True)
                except Exception:
                    pass
            """
        )
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", str(test), "-q", "-p", "no:cacheprovider", "--rootdir", str(tmp_path)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "1 passed, 1 error" in proc.stdout
    assert "undeclared AWS calls:\nrds.DeleteDBInstance is not in drkit.aws.permissions.ROLES['scheduler']" in (
        proc.stdout
    )


# -- least privilege, with moto's IAM enforcement --------------------------------------------------
#
# One moto world per module (an instance, a cluster, keys, a bucket, a topic), and for each test a
# "run": its own IAM user holding the policy under test, its own role, and its own things to
# delete or complete, so the 27 runs below cost seconds, not minutes.

BUCKET = "drkit-backups"


@dataclass
class World:
    """What an administrator set up once, before the scheduler runs (without IAM enforcement)."""

    instance_arn: str
    seed_snapshot_arn: str
    seed_cluster_snapshot_arn: str
    dr_key_arn: str
    home_key_arn: str
    wrapped_key: bytes
    topic_arn: str
    runs: Iterator[int]


@dataclass
class Run:
    """One test's run: its names, and what its delete/complete/abort calls act on."""

    name: str
    complete_upload: tuple[str, str]  # (UploadId, ETag of its one part)
    abort_upload: str
    part_upload: str
    role_arn: str


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with pytest.MonkeyPatch.context() as mp, mock_aws():
        fake_aws_environment(mp, tmp_path_factory.mktemp("aws-home"))
        mp.setenv("MOTO_EC2_LOAD_DEFAULT_AMIS", "false")  # RDS wakes EC2 up; its AMI list costs a second
        yield _set_up_world()


def _set_up_world() -> World:
    rds, dr_kms, kms = (boto3.client(s, region_name=r) for s, r in (("rds", HOME), ("kms", DR), ("kms", HOME)))
    instance = rds.create_db_instance(
        DBInstanceIdentifier="orders-prod", DBInstanceClass="db.t3.micro", Engine="postgres",
        MasterUsername="admin", MasterUserPassword="password1", BackupRetentionPeriod=7,
    )["DBInstance"]
    rds.create_db_cluster(
        DBClusterIdentifier="orders-aurora", Engine="aurora-postgresql",
        MasterUsername="admin", MasterUserPassword="password1",
    )
    snapshot = rds.create_db_snapshot(DBInstanceIdentifier="orders-prod", DBSnapshotIdentifier="drkit-orders-seed")
    cluster_snapshot = rds.create_db_cluster_snapshot(
        DBClusterIdentifier="orders-aurora", DBClusterSnapshotIdentifier="drkit-aurora-seed"
    )
    dr_key = dr_kms.create_key(Description="drkit dr")["KeyMetadata"]
    dr_kms.create_alias(AliasName="alias/drkit-dr", TargetKeyId=dr_key["KeyId"])
    home_key = kms.create_key(Description="drkit backups")["KeyMetadata"]
    wrapped = kms.generate_data_key(KeyId=home_key["Arn"], KeySpec="AES_256")["CiphertextBlob"]
    s3 = boto3.client("s3", region_name=HOME)
    s3.create_bucket(Bucket=BUCKET)
    s3.put_object(Bucket=BUCKET, Key="app/seed", Body=b"backup")
    # What `drkit posture --with-aws` reads: versioning, and replication with RTC to a replica.
    s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    s3.create_bucket(Bucket=f"{BUCKET}-dr")
    s3.put_bucket_replication(Bucket=BUCKET, ReplicationConfiguration={
        "Role": f"arn:aws:iam::{DEFAULT_ACCOUNT_ID}:role/drkit-replication",
        "Rules": [{"ID": "drkit", "Priority": 1, "Status": "Enabled", "Filter": {"Prefix": ""},
                   "DeleteMarkerReplication": {"Status": "Enabled"},
                   "Destination": {"Bucket": f"arn:aws:s3:::{BUCKET}-dr",
                                   "ReplicationTime": {"Status": "Enabled", "Time": {"Minutes": 15}},
                                   "Metrics": {"Status": "Enabled", "EventThreshold": {"Minutes": 15}}}}]})
    return World(
        instance_arn=instance["DBInstanceArn"],
        seed_snapshot_arn=snapshot["DBSnapshot"]["DBSnapshotArn"],
        seed_cluster_snapshot_arn=cluster_snapshot["DBClusterSnapshot"]["DBClusterSnapshotArn"],
        dr_key_arn=dr_key["Arn"],
        home_key_arn=home_key["Arn"],
        wrapped_key=wrapped,
        topic_arn=boto3.client("sns", region_name=HOME).create_topic(Name="drkit")["TopicArn"],
        runs=itertools.count(1),
    )


def _prepare_run(world: World) -> Run:
    """This run's old snapshots and backup to prune, uploads to finish, and role to assume."""
    name = f"r{next(world.runs)}"
    rds, s3 = boto3.client("rds", region_name=HOME), boto3.client("s3", region_name=HOME)
    rds.create_db_snapshot(DBInstanceIdentifier="orders-prod", DBSnapshotIdentifier=f"drkit-orders-old-{name}")
    rds.create_db_cluster_snapshot(
        DBClusterIdentifier="orders-aurora", DBClusterSnapshotIdentifier=f"drkit-aurora-old-{name}"
    )
    s3.put_object(Bucket=BUCKET, Key=f"app/old-{name}", Body=b"backup")
    complete = s3.create_multipart_upload(Bucket=BUCKET, Key=f"app/big-{name}")["UploadId"]
    etag = s3.upload_part(Bucket=BUCKET, Key=f"app/big-{name}", UploadId=complete, PartNumber=1, Body=b"x")["ETag"]
    # moto matches trust principals exactly (no account root): the user, and the role's own
    # session (the AssumeRole step, when the run already works as the assumed role).
    principals = [
        f"arn:aws:iam::{DEFAULT_ACCOUNT_ID}:user/drkit-{name}",
        f"arn:aws:sts::{DEFAULT_ACCOUNT_ID}:assumed-role/drkit-{name}/drkit",
    ]
    trust = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"AWS": principals}, "Action": "sts:AssumeRole"}],
    }
    role = boto3.client("iam").create_role(RoleName=f"drkit-{name}", AssumeRolePolicyDocument=json.dumps(trust))
    return Run(
        name=name,
        complete_upload=(complete, etag),
        abort_upload=s3.create_multipart_upload(Bucket=BUCKET, Key=f"app/killed-{name}")["UploadId"],
        part_upload=s3.create_multipart_upload(Bucket=BUCKET, Key=f"app/parts-{name}")["UploadId"],
        role_arn=role["Role"]["Arn"],
    )


def _scheduler_steps(factory: GuardedSessionFactory, w: World, r: Run) -> list[tuple[Operation, Callable[[], Any]]]:
    """The scheduler's work as plain boto3 calls, one per operation, each independent of the
    others' success (so that with one action missing, only the calls needing it fail)."""
    rds, dr_rds = factory.client("rds"), factory.client("rds", region=DR)
    kms, dr_kms = factory.client("kms"), factory.client("kms", region=DR)
    s3, sns, sts = factory.client("s3"), factory.client("sns"), factory.client("sts")
    upload, etag = r.complete_upload

    def pages(client: Any, name: str, **kwargs: Any) -> Callable[[], list[Any]]:
        return lambda: list(client.get_paginator(name).paginate(**kwargs))

    return [
        (("rds", "DescribeDBInstances"), pages(rds, "describe_db_instances")),
        (("rds", "DescribeDBClusters"), pages(rds, "describe_db_clusters")),
        (("rds", "DescribeDBSnapshots"), pages(rds, "describe_db_snapshots", SnapshotType="manual")),
        (("rds", "DescribeDBClusterSnapshots"), pages(rds, "describe_db_cluster_snapshots")),
        (("rds", "DescribeDBInstanceAutomatedBackups"), pages(rds, "describe_db_instance_automated_backups")),
        (("rds", "ListTagsForResource"), lambda: rds.list_tags_for_resource(ResourceName=w.instance_arn)),
        (("rds", "CreateDBSnapshot"), lambda: rds.create_db_snapshot(
            DBInstanceIdentifier="orders-prod", DBSnapshotIdentifier=f"drkit-orders-{r.name}")),
        (("rds", "CreateDBClusterSnapshot"), lambda: rds.create_db_cluster_snapshot(
            DBClusterIdentifier="orders-aurora", DBClusterSnapshotIdentifier=f"drkit-aurora-{r.name}")),
        (("rds", "AddTagsToResource"), lambda: rds.add_tags_to_resource(
            ResourceName=w.seed_snapshot_arn, Tags=[{"Key": "managed-by", "Value": "drkit"}])),
        (("kms", "DescribeKey"), lambda: dr_kms.describe_key(KeyId="alias/drkit-dr")),
        (("rds", "CopyDBSnapshot"), lambda: dr_rds.copy_db_snapshot(
            SourceDBSnapshotIdentifier=w.seed_snapshot_arn, TargetDBSnapshotIdentifier=f"drkit-orders-copy-{r.name}",
            KmsKeyId=w.dr_key_arn, SourceRegion=HOME)),
        (("rds", "CopyDBClusterSnapshot"), lambda: dr_rds.copy_db_cluster_snapshot(
            SourceDBClusterSnapshotIdentifier=w.seed_cluster_snapshot_arn,
            TargetDBClusterSnapshotIdentifier=f"drkit-aurora-copy-{r.name}", KmsKeyId=w.dr_key_arn,
            SourceRegion=HOME)),
        (("kms", "CreateGrant"), lambda: dr_kms.create_grant(
            KeyId=w.dr_key_arn, GranteePrincipal="rds.us-west-2.amazonaws.com", Operations=["Decrypt"])),
        (("rds", "DeleteDBSnapshot"), lambda: rds.delete_db_snapshot(
            DBSnapshotIdentifier=f"drkit-orders-old-{r.name}")),
        (("rds", "DeleteDBClusterSnapshot"), lambda: rds.delete_db_cluster_snapshot(
            DBClusterSnapshotIdentifier=f"drkit-aurora-old-{r.name}")),
        (("kms", "GenerateDataKey"), lambda: kms.generate_data_key(KeyId=w.home_key_arn, KeySpec="AES_256")),
        (("kms", "Decrypt"), lambda: kms.decrypt(CiphertextBlob=w.wrapped_key, KeyId=w.home_key_arn)),
        (("s3", "PutObject"), lambda: s3.put_object(Bucket=BUCKET, Key=f"app/new-{r.name}", Body=b"backup")),
        (("s3", "CreateMultipartUpload"), lambda: s3.create_multipart_upload(Bucket=BUCKET, Key=f"app/next-{r.name}")),
        (("s3", "UploadPart"), lambda: s3.upload_part(
            Bucket=BUCKET, Key=f"app/parts-{r.name}", UploadId=r.part_upload, PartNumber=1, Body=b"y")),
        (("s3", "CompleteMultipartUpload"), lambda: s3.complete_multipart_upload(
            Bucket=BUCKET, Key=f"app/big-{r.name}", UploadId=upload,
            MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": etag}]})),
        (("s3", "AbortMultipartUpload"), lambda: s3.abort_multipart_upload(
            Bucket=BUCKET, Key=f"app/killed-{r.name}", UploadId=r.abort_upload)),
        (("s3", "ListMultipartUploads"), pages(s3, "list_multipart_uploads", Bucket=BUCKET)),
        (("s3", "ListObjectsV2"), pages(s3, "list_objects_v2", Bucket=BUCKET, Prefix="app/")),
        (("s3", "HeadObject"), lambda: s3.head_object(Bucket=BUCKET, Key="app/seed")),
        (("s3", "GetObject"), lambda: s3.get_object(Bucket=BUCKET, Key="app/seed")["Body"].read()),
        (("s3", "DeleteObject"), lambda: s3.delete_object(Bucket=BUCKET, Key=f"app/old-{r.name}")),
        (("s3", "GetBucketVersioning"), lambda: s3.get_bucket_versioning(Bucket=BUCKET)),
        (("s3", "GetBucketReplication"), lambda: s3.get_bucket_replication(Bucket=BUCKET)),
        (("sns", "Publish"), lambda: sns.publish(TopicArn=w.topic_arn, Message="drkit: snapshot failed")),
        (("sts", "AssumeRole"), lambda: sts.assume_role(RoleArn=r.role_arn, RoleSessionName="drkit")),
        (("sts", "GetCallerIdentity"), lambda: sts.get_caller_identity()),
    ]


# Where moto 5.2 authorises a call under another action than AWS does (AWS's S3 action table
# says s3:GetReplicationConfiguration; moto's ACTION_MAP falls back to ListBucket).
_MOTO_AUTHORISES_AS: dict[Operation, tuple[str, ...]] = {("s3", "GetBucketReplication"): ("s3:ListBucket",)}

_NOT_AUTHORIZED = re.compile(r"not authorized to perform:? ([a-z0-9-]+:[A-Za-z0-9]+)")


def _denied(exc: ClientError) -> str | None:
    """The action AWS (moto) refused, "?" if it did not say which, None if this is no AccessDenied.

    KMS under moto answers a bare 403 whose body botocore cannot parse (see drkit/aws/kms.py)."""
    code = str(exc.response.get("Error", {}).get("Code", ""))
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    if code not in ("AccessDenied", "AccessDeniedException", "403") and status != 403:
        return None
    match = _NOT_AUTHORIZED.search(str(exc))
    return match.group(1) if match else "?"


def _run_as(
    policy: dict[str, Any], world: World, monkeypatch: pytest.MonkeyPatch, *, via_role: bool = False
) -> tuple[GuardedSessionFactory, Run, dict[Operation, str]]:
    """Create an IAM user (and a role it may assume) holding exactly `policy`, and run every
    scheduler step as that user or role with IAM enforced, through guarded clients.
    Returns the op -> refused action of every call that got AccessDenied."""
    run = _prepare_run(world)
    iam = boto3.client("iam")
    user = f"drkit-{run.name}"
    arn = iam.create_policy(PolicyName=user, PolicyDocument=json.dumps(policy))["Policy"]["Arn"]
    iam.create_user(UserName=user)
    iam.attach_user_policy(UserName=user, PolicyArn=arn)
    iam.attach_role_policy(RoleName=user, PolicyArn=arn)
    key = iam.create_access_key(UserName=user)["AccessKey"]
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", key["AccessKeyId"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", key["SecretAccessKey"])
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    factory = GuardedSessionFactory(role="scheduler", region=HOME, role_arn=run.role_arn if via_role else None)
    denied: dict[Operation, str] = {}
    with enable_iam_authentication():
        for op, step in _scheduler_steps(factory, world, run):
            try:
                step()
            except ClientError as exc:
                action = _denied(exc)
                if action is None:
                    raise
                denied[op] = action
    assert factory.undeclared == []
    return factory, run, denied


def _without(policy: dict[str, Any], action: str) -> dict[str, Any]:
    statements = [{**s, "Action": [a for a in s["Action"] if a != action]} for s in policy["Statement"]]
    return {**policy, "Statement": [s for s in statements if s["Action"]]}


@pytest.mark.parametrize("via_role", [False, True], ids=["as-user", "as-assumed-role"])
def test_scheduler_policy_is_enough_for_the_whole_scheduler_flow(
    world: World, monkeypatch: pytest.MonkeyPatch, via_role: bool
) -> None:
    factory, run, denied = _run_as(policy_document("scheduler"), world, monkeypatch, via_role=via_role)
    assert denied == {}
    # The flow exercised every operation the scheduler declares (so no action in its policy is
    # unjustified) and nothing else (the guard would have refused it).
    assert set(factory.calls) == ROLES["scheduler"]

    # And it did the work: snapshots taken and copied under the destination key, old ones gone.
    rds, dr_rds = boto3.client("rds", region_name=HOME), boto3.client("rds", region_name=DR)
    names = {s["DBSnapshotIdentifier"] for s in rds.describe_db_snapshots(SnapshotType="manual")["DBSnapshots"]}
    assert f"drkit-orders-{run.name}" in names and f"drkit-orders-old-{run.name}" not in names
    copy = dr_rds.describe_db_snapshots(DBSnapshotIdentifier=f"drkit-orders-copy-{run.name}")["DBSnapshots"][0]
    assert copy["KmsKeyId"] == world.dr_key_arn
    keys = {o["Key"] for o in boto3.client("s3", region_name=HOME).list_objects_v2(Bucket=BUCKET)["Contents"]}
    assert {f"app/new-{run.name}", f"app/big-{run.name}"} <= keys and f"app/old-{run.name}" not in keys


@pytest.mark.parametrize("action", actions_for("scheduler"))
def test_each_scheduler_action_is_needed_by_exactly_the_calls_that_declare_it(
    world: World, monkeypatch: pytest.MonkeyPatch, action: str
) -> None:
    """Remove one action from the policy: exactly the calls authorised as that action are refused
    (and say so). Together with the test above: the policy is both sufficient and minimal."""
    _, _, denied = _run_as(_without(policy_document("scheduler"), action), world, monkeypatch)
    declared = {op for op in ROLES["scheduler"] if OPERATIONS[op][:1] == (action,)}
    assert declared, f"no scheduler call is authorised as {action}: it should not be in the policy"
    expected = {op for op in ROLES["scheduler"] if _MOTO_AUTHORISES_AS.get(op, OPERATIONS[op][:1]) == (action,)}
    assert set(denied) == expected
    assert set(denied.values()) <= {action, "?"}  # S3's AccessDenied names no action
