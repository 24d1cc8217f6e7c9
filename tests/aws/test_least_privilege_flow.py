"""Least privilege for drkit's real flow: the RDS jobs run as an IAM user holding only
`drkit iam-policy --for scheduler`, with moto's IAM enforcement on (TESTING.md).

tests/aws/test_permissions.py proves the policy covers each boto3 call on its own; here drkit's
own job functions do the work (`run_rds_backups`: snapshot, tag, cross-region copy with the
DR key, prune; then a no-op run; then `plan_rds_prune` / `apply_rds_prune` after backdating),
exactly as `drkit backup run production --only orders` and `drkit prune --apply` call them.
Every client drkit makes is guarded (tests/aws/declared.py), so an AWS call that is not in
the scheduler role fails the test even if a job swallowed the error.

With one action taken out of the policy the job must fail with drkit's one-line error naming
that action and leave nothing half-done that a later run cannot finish: a snapshot that could
not be tagged is tagged by the next run, and prune never deletes an untagged snapshot.

moto checks actions, not resources or conditions (outside S3), hence the policy's
Resource "*"; that is what `drkit iam-policy` prints anyway.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto.core import DEFAULT_ACCOUNT_ID, enable_iam_authentication
from moto.rds.models import rds_backends

from drkit.aws.permissions import ROLES, policy_document
from drkit.aws.session import SessionFactory
from drkit.clock import FakeClock
from drkit.jobs.context import Context
from drkit.jobs.rds_backup import RdsRun, run_rds_backups
from drkit.jobs.rds_prune import apply_rds_prune, plan_rds_prune
from tests.aws.declared import GuardedFactoryMaker, GuardedSessionFactory

REPO = Path(__file__).resolve().parents[2]
HOME, DR = "us-east-1", "us-west-2"
INSTANCE = "orders-prod"
# A Sunday after 04:00 UTC: the contract's daily snapshot (03:00) and weekly copy (Sunday 04:00)
# are both due.
AT = datetime(2026, 11, 29, 5, 0, tzinfo=UTC)
DAILY_ID = "drkit-orders-daily-20261129-0300"
COPY_ID = "drkit-orders-copy-20261129-0400"
MANAGED = {"drkit:managed-by": "drkit", "drkit:schedule": "production", "drkit:resource": "orders"}


@dataclass
class World:
    """The contract's production schedule, the instance and DR key it names, and drkit's context."""

    ctx: Context
    dr_key_arn: str
    factories: list[GuardedSessionFactory]
    users: Iterator[int]

    def calls(self) -> set[tuple[str, str]]:
        return {call for factory in self.factories for call in factory.calls}


@pytest.fixture
def world(
    guarded: GuardedFactoryMaker, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[World]:
    # As an administrator, before enforcement is on: what exists before drkit runs.
    config = tmp_path / "config"
    (config / "schedules").mkdir(parents=True)
    shutil.copy(REPO / "schedules" / "production.yaml", config / "schedules" / "production.yaml")
    monkeypatch.setenv("MOTO_EC2_LOAD_DEFAULT_AMIS", "false")  # RDS wakes EC2; its AMI list costs a second
    boto3.client("rds", region_name=HOME).create_db_instance(
        DBInstanceIdentifier=INSTANCE, DBInstanceClass="db.t3.medium", Engine="postgres",
        MasterUsername="admin", MasterUserPassword="secret-password", AllocatedStorage=20,
        BackupRetentionPeriod=7,
    )
    kms = boto3.client("kms", region_name=DR)
    key_arn = kms.create_key(Description="drkit DR")["KeyMetadata"]["Arn"]
    kms.create_alias(AliasName="alias/drkit-dr", TargetKeyId=key_arn)

    # drkit's jobs get their clients from SessionFactory.from_schedule: hand them guarded ones
    # (same profile, region and role), so an undeclared call or one outside the scheduler role
    # is refused before it is sent and fails the test at teardown.
    factories: list[GuardedSessionFactory] = []

    def from_schedule(cls: type[SessionFactory], schedule: Any) -> SessionFactory:
        aws = schedule.aws
        factory = guarded("scheduler", profile=aws.profile, region=aws.region, role_arn=aws.role_arn)
        factories.append(factory)
        return factory

    monkeypatch.setattr(SessionFactory, "from_schedule", classmethod(from_schedule))
    ctx = Context(config_dir=config, catalog_url=f"sqlite:///{tmp_path / 'catalog.db'}", clock=FakeClock(AT))
    try:
        yield World(ctx=ctx, dr_key_arn=key_arn, factories=factories, users=iter(range(1, 100)))
    finally:
        ctx.close()


def become(world: World, monkeypatch: pytest.MonkeyPatch, policy: dict[str, Any]) -> str:
    """A new IAM user whose only policy is `policy`; the environment now holds its access key."""
    user = f"drkit-scheduler-{next(world.users)}"
    iam = boto3.client("iam")
    arn = iam.create_policy(PolicyName=user, PolicyDocument=json.dumps(policy))["Policy"]["Arn"]
    iam.create_user(UserName=user)
    iam.attach_user_policy(UserName=user, PolicyArn=arn)
    key = iam.create_access_key(UserName=user)["AccessKey"]
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", key["AccessKeyId"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", key["SecretAccessKey"])
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)  # the fixtures' fake token is no user's
    world.ctx.cache.clear()  # a new identity is a new drkit run: no sessions carried over
    return user


def without(policy: dict[str, Any], action: str) -> dict[str, Any]:
    statements = [{**s, "Action": [a for a in s["Action"] if a != action]} for s in policy["Statement"]]
    assert sum(len(s["Action"]) for s in statements) == sum(len(s["Action"]) for s in policy["Statement"]) - 1
    return {**policy, "Statement": [s for s in statements if s["Action"]]}


def backup_run(world: World) -> RdsRun:
    """`drkit backup run production --only orders`, with IAM enforced."""
    with enable_iam_authentication():
        return run_rds_backups(world.ctx, "production", only="orders")


def snapshots(region: str) -> dict[str, dict[str, Any]]:
    """Manual DB snapshots in `region` as an administrator sees them (enforcement off)."""
    found = boto3.client("rds", region_name=region).describe_db_snapshots(SnapshotType="manual")["DBSnapshots"]
    return {s["DBSnapshotIdentifier"]: s for s in found}


def tags(snap: dict[str, Any]) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in snap.get("TagList", [])}


def backdate(snapshot_id: str, when: datetime) -> None:
    rds_backends[DEFAULT_ACCOUNT_ID][HOME].database_snapshots[snapshot_id].created = when


def assert_snapshot_and_copy(world: World) -> None:
    """The outcome a user relies on: one tagged snapshot at home, one tagged copy under the DR key."""
    home, dr = snapshots(HOME), snapshots(DR)
    assert list(home) == [DAILY_ID]
    assert tags(home[DAILY_ID]) | MANAGED == tags(home[DAILY_ID])
    assert tags(home[DAILY_ID])["drkit:kind"] == "daily"
    assert list(dr) == [COPY_ID]
    assert dr[COPY_ID]["KmsKeyId"] == world.dr_key_arn, "the copy must be re-encrypted with the DR-region key"
    assert tags(dr[COPY_ID]) | MANAGED == tags(dr[COPY_ID])
    assert tags(dr[COPY_ID])["drkit:kind"] == "copy" and tags(dr[COPY_ID])["drkit:source-snapshot"] == DAILY_ID


def test_the_whole_rds_flow_runs_with_only_the_scheduler_policy(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    become(world, monkeypatch, policy_document("scheduler"))

    # Enforcement is really on and these are really the user's credentials: anything outside
    # the policy is refused (so the runs below prove the policy, not moto's leniency).
    with enable_iam_authentication(), pytest.raises(ClientError, match="not authorized to perform"):
        # A new session: boto3's default one keeps the credentials it first found.
        rds = boto3.Session().client("rds", region_name=HOME)
        rds.delete_db_instance(DBInstanceIdentifier=INSTANCE, SkipFinalSnapshot=True)

    first = backup_run(world)
    assert first.errors == []
    assert {(o.kind, o.action, o.snapshot_id) for o in first.outcomes} == {
        ("daily", "created", DAILY_ID), ("copy", "created", COPY_ID)
    }
    assert first.deleted == []
    assert_snapshot_and_copy(world)

    second = backup_run(world)  # nothing due: nothing created, nothing deleted, no error
    assert second.errors == [] and second.deleted == []
    assert {(o.kind, o.action) for o in second.outcomes} == {("daily", "exists"), ("copy", "exists")}
    assert_snapshot_and_copy(world)

    # Nine older daily snapshots of drkit's (1-9 days before today's) and an old hand-made one.
    rds = boto3.client("rds", region_name=HOME)
    today = snapshots(HOME)[DAILY_ID]["SnapshotCreateTime"]
    for day in range(1, 10):
        sid = f"drkit-orders-daily-old-{day}"
        rds.create_db_snapshot(DBInstanceIdentifier=INSTANCE, DBSnapshotIdentifier=sid, Tags=[
            {"Key": k, "Value": v} for k, v in (MANAGED | {"drkit:kind": "daily"}).items()])
        backdate(sid, today - timedelta(days=day))
    rds.create_db_snapshot(DBInstanceIdentifier=INSTANCE, DBSnapshotIdentifier="hand-made")
    backdate("hand-made", today - timedelta(days=60))

    with enable_iam_authentication():
        items, warnings = plan_rds_prune(world.ctx, "production", only="orders")
        deleted = apply_rds_prune(world.ctx, "production", items)
    assert warnings == []
    # keep {daily: 7}: today and the six days before it stay; days 7-9 go; never the hand-made one.
    assert sorted(i.snapshot.id for i in deleted) == [f"drkit-orders-daily-old-{d}" for d in (7, 8, 9)]
    left = set(snapshots(HOME))
    assert left == {DAILY_ID, "hand-made", *(f"drkit-orders-daily-old-{d}" for d in range(1, 7))}
    assert list(snapshots(DR)) == [COPY_ID]  # {weekly: 4} keeps the only copy

    # drkit used exactly what the scheduler role declares (the guard refused nothing).
    assert world.calls() <= ROLES["scheduler"]
    assert {("rds", "CreateDBSnapshot"), ("rds", "AddTagsToResource"), ("kms", "DescribeKey"),
            ("rds", "CopyDBSnapshot"), ("rds", "DeleteDBSnapshot")} <= world.calls()
    assert all(factory.undeclared == [] for factory in world.factories)


@pytest.mark.parametrize("action", ["rds:AddTagsToResource", "kms:DescribeKey"])
def test_one_action_missing_fails_with_one_line_naming_it_and_leaves_nothing_half_done(
    world: World, monkeypatch: pytest.MonkeyPatch, action: str
) -> None:
    become(world, monkeypatch, without(policy_document("scheduler"), action))
    run = backup_run(world)

    naming = [e for e in run.errors if action in e]
    assert naming, f"no error names {action}: {run.errors}"
    assert all("\n" not in e and "Traceback" not in e for e in run.errors)
    assert "access denied" in naming[0] and "grant" in naming[0]
    assert run.deleted == []
    assert snapshots(DR) == {}, "no copy may be made when the run could not tag or check the key"
    home = snapshots(HOME)
    assert list(home) == [DAILY_ID]

    if action == "kms:DescribeKey":
        # The snapshot finished and is drkit's; only the copy waited for a usable key.
        assert tags(home[DAILY_ID]) | MANAGED == tags(home[DAILY_ID])
        return

    # AddTagsToResource: the snapshot exists but is not (yet) drkit's. Prune ran in the same run
    # and left it alone, and planning it again does not even consider it.
    assert "drkit:managed-by" not in tags(home[DAILY_ID])
    with enable_iam_authentication():
        items, _ = plan_rds_prune(world.ctx, "production", only="orders")
    assert DAILY_ID not in {i.snapshot.id for i in items}

    # With the full policy the next run finishes the job: tags the snapshot, copies it.
    become(world, monkeypatch, policy_document("scheduler"))
    healed = backup_run(world)
    assert healed.errors == []
    assert_snapshot_and_copy(world)
