"""`drkit backup run`, `prune`, `plan` and `backup list` for RDS against moto's server, checked
with the AWS CLI as an independent client (TESTING.md: tests/e2e)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest

REPO = Path(__file__).resolve().parents[2]
ACCOUNT = "123456789012"
CREDS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}




@pytest.fixture
def aws(moto_env: dict[str, str]) -> dict[str, str]:
    return moto_env


def client(service: str, region: str) -> Any:
    return boto3.client(service, region_name=region)


def awscli(env: dict[str, str], *args: str) -> Any:
    exe = shutil.which("aws", path=str(Path(sys.executable).parent)) or "aws"
    out = subprocess.run([exe, *args, "--endpoint-url", env["AWS_ENDPOINT_URL"], "--output", "json"],
                         env=env, capture_output=True, text=True, check=True, timeout=60)
    return json.loads(out.stdout)


def drkit(env: dict[str, str], config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "drkit", "--config-dir", str(config), *args], env=env,
                          capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL, check=False)


@pytest.fixture
def world(aws: dict[str, str], tmp_path: Path) -> tuple[dict[str, str], Path, str]:
    """The contract's production schedule, an RDS instance, and the DR-region key it names."""
    config = tmp_path / "config"
    (config / "schedules").mkdir(parents=True)
    shutil.copy(REPO / "schedules" / "production.yaml", config / "schedules" / "production.yaml")
    client("rds", "us-east-1").create_db_instance(
        DBInstanceIdentifier="orders-prod", DBInstanceClass="db.t3.medium", Engine="postgres",
        MasterUsername="admin", MasterUserPassword="secret-password", AllocatedStorage=20,
        BackupRetentionPeriod=7,
    )
    kms = client("kms", "us-west-2")
    key_arn = kms.create_key(Description="drkit DR")["KeyMetadata"]["Arn"]
    kms.create_alias(AliasName="alias/drkit-dr", TargetKeyId=key_arn)
    return aws, config, key_arn


def snapshots(env: dict[str, str], region: str) -> list[dict[str, Any]]:
    out = awscli(env, "rds", "describe-db-snapshots", "--region", region, "--snapshot-type", "manual")
    return sorted(out["DBSnapshots"], key=lambda s: s["DBSnapshotIdentifier"])


def tags(snap: dict[str, Any]) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in snap.get("TagList", [])}


def test_backup_run_snapshots_tags_and_copies_with_the_dr_key(world: tuple[dict[str, str], Path, str]) -> None:
    env, config, key_arn = world
    proc = drkit(env, config, "backup", "run", "production", "--only", "orders")
    assert proc.returncode == 0, proc.stderr

    [daily] = snapshots(env, "us-east-1")
    assert daily["DBSnapshotIdentifier"].startswith("drkit-orders-daily-")
    assert daily["DBInstanceIdentifier"] == "orders-prod"
    assert tags(daily)["drkit:managed-by"] == "drkit"
    assert tags(daily)["drkit:schedule"] == "production" and tags(daily)["drkit:resource"] == "orders"

    [copy] = snapshots(env, "us-west-2")
    assert copy["DBSnapshotIdentifier"].startswith("drkit-orders-copy-")
    assert copy["KmsKeyId"] == key_arn, "the copy must be re-encrypted with the DR-region key"
    assert tags(copy)["drkit:kind"] == "copy" and tags(copy)["drkit:source-snapshot"] == daily["DBSnapshotIdentifier"]

    again = drkit(env, config, "backup", "run", "production", "--only", "orders")
    assert again.returncode == 0, again.stderr
    assert len(snapshots(env, "us-east-1")) == 1 and len(snapshots(env, "us-west-2")) == 1

    listed = json.loads(drkit(env, config, "backup", "list", "--resource", "orders", "-o", "json").stdout)
    assert {(p["kind"], p["region"]) for p in listed} >= {("snapshot", "us-east-1"), ("copy", "us-west-2")}
    copy_row = next(p for p in listed if p["kind"] == "copy")
    assert copy_row["key_id"] == key_arn and copy_row["encrypted"] is True


def test_a_copy_without_a_usable_dr_key_is_refused_and_nothing_is_copied(
    world: tuple[dict[str, str], Path, str],
) -> None:
    env, config, _ = world
    client("kms", "us-west-2").delete_alias(AliasName="alias/drkit-dr")  # the DR key is gone
    proc = drkit(env, config, "backup", "run", "production", "--only", "orders")
    assert proc.returncode == 1
    assert "alias/drkit-dr" in proc.stderr and "Traceback" not in proc.stderr
    assert snapshots(env, "us-west-2") == []
    assert len(snapshots(env, "us-east-1")) == 1  # the daily snapshot is still taken


def _backdate(region: str, snapshot_id: str, when: datetime) -> None:
    from moto.rds.models import rds_backends

    rds_backends[ACCOUNT][region].database_snapshots[snapshot_id].created = when


def test_prune_keeps_the_policy_and_never_touches_what_is_not_drkits(
    world: tuple[dict[str, str], Path, str],
) -> None:
    env, config, _ = world
    rds = client("rds", "us-east-1")
    now = datetime.now(UTC)
    managed = {"drkit:managed-by": "drkit", "drkit:schedule": "production", "drkit:resource": "orders",
               "drkit:kind": "daily"}
    for day in range(1, 11):  # ten daily snapshots, the newest yesterday
        sid = f"drkit-orders-daily-old-{day:02d}"
        rds.create_db_snapshot(DBInstanceIdentifier="orders-prod", DBSnapshotIdentifier=sid,
                               Tags=[{"Key": k, "Value": v} for k, v in managed.items()])
        _backdate("us-east-1", sid, now - timedelta(days=day))
    rds.create_db_snapshot(DBInstanceIdentifier="orders-prod", DBSnapshotIdentifier="hand-made")
    _backdate("us-east-1", "hand-made", now - timedelta(days=30))

    plan = json.loads(drkit(env, config, "prune", "production", "--only", "orders", "-o", "json").stdout)
    doomed = sorted(p["id"] for p in plan if not p["keep"])
    assert doomed == ["drkit-orders-daily-old-08", "drkit-orders-daily-old-09", "drkit-orders-daily-old-10"]
    assert len(snapshots(env, "us-east-1")) == 11  # a dry run deletes nothing

    applied = drkit(env, config, "prune", "production", "--only", "orders", "--apply", "--yes")
    assert applied.returncode == 0, applied.stderr
    left = [s["DBSnapshotIdentifier"] for s in snapshots(env, "us-east-1")]
    assert "hand-made" in left
    assert sorted(x for x in left if x.startswith("drkit-")) == [f"drkit-orders-daily-old-{d:02d}" for d in range(1, 8)]


def test_plan_says_what_is_due_and_changes_nothing(world: tuple[dict[str, str], Path, str]) -> None:
    env, config, _ = world
    drkit(env, config, "backup", "run", "production", "--only", "orders")
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).replace(hour=3, minute=30, second=0, microsecond=0)
    out = json.loads(drkit(env, config, "plan", "production", "--at", tomorrow.isoformat(), "-o", "json").stdout)
    due = [a for a in out["actions"] if a["resource"] == "orders" and a["action"] == "snapshot"]
    assert len(due) == 1 and due[0]["target"] == f"drkit-orders-daily-{tomorrow:%Y%m%d}-0300"
    now = json.loads(drkit(env, config, "plan", "production", "-o", "json").stdout)
    assert not [a for a in now["actions"] if a["resource"] == "orders" and a["action"] in ("snapshot", "copy")]
    assert len(snapshots(env, "us-east-1")) == 1


def test_a_misconfigured_database_does_not_cost_the_rds_instances_their_snapshots(
    world: tuple[dict[str, str], Path, str],
) -> None:
    """The contract's production schedule also lists a postgres resource whose DSN variable is
    unset here: the nightly run still snapshots and copies RDS, then says what failed (exit 1)."""
    env, config, key_arn = world
    env = {k: v for k, v in env.items() if k != "APP_DATABASE_URL"}
    proc = drkit(env, config, "backup", "run", "production")
    assert proc.returncode == 1, proc.stderr
    assert "APP_DATABASE_URL is not set" in proc.stderr and "Traceback" not in proc.stderr
    assert len(snapshots(env, "us-east-1")) == 1
    [copy] = snapshots(env, "us-west-2")
    assert copy["KmsKeyId"] == key_arn
