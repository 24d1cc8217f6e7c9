"""`drkit posture --with-aws`: facts read from AWS (moto) change the verdicts they should, and
whatever cannot be read stays unknown with a warning instead of failing the report.

The facts come from drkit.jobs.posture_facts.gather_facts through guarded clients (only calls
the scheduler role declares); the verdicts are drkit.domain.posture's, fed those facts.
"""

from __future__ import annotations

import json
import types
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from click.testing import CliRunner

from drkit.aws.session import SessionFactory
from drkit.cli import cli
from drkit.clock import FakeClock
from drkit.domain.posture import PostureLine, assess
from drkit.jobs.context import Context
from drkit.jobs.posture_facts import GatheredFacts, gather_facts
from tests.aws.declared import GuardedFactoryMaker, GuardedSessionFactory

HOME, DR = "us-east-1", "us-west-2"
NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
SCHEDULE = """\
environment: production
targets: {rto: 1h, rpo: 15m}
aws: {region: us-east-1, dr_region: us-west-2}
rds:
  - name: orders
    instance: orders-prod
    snapshots: {cron: "0 3 * * *", keep: {daily: 7}}
    copies: {cron: "0 4 * * 0", kms_key: alias/drkit-dr, keep: {weekly: 4}}
s3:
  - name: assets
    bucket: acme-assets-prod
    replica_bucket: acme-assets-prod-dr
    kms_key: alias/drkit-dr
    replication_time_control: false   # the schedule does not claim RTC: only AWS can say so
"""


@pytest.fixture
def setup(
    guarded: GuardedFactoryMaker, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Context, GuardedSessionFactory]]:
    """A config dir with the schedule above; drkit's clients come from one guarded factory."""
    (tmp_path / "schedules").mkdir()
    (tmp_path / "schedules" / "production.yaml").write_text(SCHEDULE)
    monkeypatch.setenv("MOTO_EC2_LOAD_DEFAULT_AMIS", "false")
    factory = guarded("scheduler", region=HOME)
    monkeypatch.setattr(SessionFactory, "from_schedule", classmethod(lambda cls, schedule: factory))
    ctx = Context(config_dir=tmp_path, catalog_url=f"sqlite:///{tmp_path / 'catalog.db'}", clock=FakeClock(NOW))
    yield ctx, factory
    ctx.close()


def instance(**kwargs: Any) -> None:
    boto3.client("rds", region_name=HOME).create_db_instance(
        DBInstanceIdentifier="orders-prod", DBInstanceClass="db.t3.medium", Engine="postgres",
        MasterUsername="admin", MasterUserPassword="secret-password", AllocatedStorage=20, **kwargs,
    )


def buckets(*, versioning: bool = True, replication: bool = True, rtc: bool = True) -> None:
    s3 = boto3.client("s3", region_name=HOME)
    s3.create_bucket(Bucket="acme-assets-prod")
    s3.create_bucket(Bucket="acme-assets-prod-dr")
    if versioning:
        s3.put_bucket_versioning(Bucket="acme-assets-prod", VersioningConfiguration={"Status": "Enabled"})
    if not replication:
        return
    destination: dict[str, Any] = {"Bucket": "arn:aws:s3:::acme-assets-prod-dr"}
    if rtc:
        destination |= {"ReplicationTime": {"Status": "Enabled", "Time": {"Minutes": 15}},
                        "Metrics": {"Status": "Enabled", "EventThreshold": {"Minutes": 15}}}
    s3.put_bucket_replication(Bucket="acme-assets-prod", ReplicationConfiguration={
        "Role": "arn:aws:iam::123456789012:role/drkit-s3-replication",
        "Rules": [{"ID": "drkit", "Priority": 1, "Status": "Enabled", "Filter": {"Prefix": ""},
                   "DeleteMarkerReplication": {"Status": "Enabled"}, "Destination": destination}],
    })


def line(ctx: Context, facts: GatheredFacts, resource: str, scenario: str) -> PostureLine:
    lines = assess(ctx.config().schedule("production"), facts)
    return next(x for x in lines if x.resource == resource and x.scenario == scenario)


def on_call(factory: GuardedSessionFactory, operation: str, answer: Callable[..., Any]) -> None:
    """Every client the factory makes from now on calls `answer` before `operation` is sent."""
    factory.session().events.register(f"before-call.*.{operation}", answer)


def denied(operation: str, action: str) -> Callable[..., Any]:
    def deny(**_: Any) -> None:
        raise ClientError({"Error": {"Code": "AccessDenied", "Message": f"User: arn:aws:iam::123456789012:user/"
                                     f"drkit is not authorized to perform: {action}"}}, operation)
    return deny


def test_multi_az_instance_loses_nothing_in_an_az_loss(setup: tuple[Context, GuardedSessionFactory]) -> None:
    ctx, factory = setup
    instance(MultiAZ=True, BackupRetentionPeriod=7)
    buckets()
    facts = gather_facts(ctx, "production")

    assert facts.warnings == ()
    orders = facts.rds["orders"]
    assert (orders.multi_az, orders.backup_retention_days, orders.cross_region_backups) == (True, 7, False)
    assert facts.observed_at == NOW
    az = line(ctx, facts, "orders", "az-loss")
    assert (az.rpo_worst, az.rpo_met) == (timedelta(0), True)
    assert "Multi-AZ" in az.basis
    # Without the fact the same line is "unknown": the fact made the difference.
    without = next(x for x in assess(ctx.config().schedule("production")) if x.resource == "orders"
                   and x.scenario == "az-loss")
    assert without.rpo_met is None
    # The DR region was read and holds no replicated backups: said plainly, not guessed.
    assert "cross-region automated backups: off" in line(ctx, facts, "orders", "region-loss").basis
    # One listing per region, nothing per resource.
    rds_calls = [op for op in factory.calls if op[0] == "rds"]
    assert sorted(rds_calls) == [("rds", "DescribeDBInstanceAutomatedBackups"), ("rds", "DescribeDBInstances")]


def test_retention_zero_says_point_in_time_recovery_is_off(setup: tuple[Context, GuardedSessionFactory]) -> None:
    ctx, _ = setup
    instance(MultiAZ=False, BackupRetentionPeriod=0)
    facts = gather_facts(ctx, "production")

    assert (facts.rds["orders"].backup_retention_days, facts.rds["orders"].pitr) == (0, False)
    lost = line(ctx, facts, "orders", "instance-loss")
    assert "automated backups are off (retention 0)" in lost.basis
    assert lost.rpo_worst == timedelta(days=1) and lost.rpo_met is False  # only the daily snapshots
    assert lost.fix is not None and "turn on automated backups" in lost.fix
    # No buckets: that resource's facts stay unknown, with a line saying why.
    assert "assets" not in facts.s3 or facts.s3["assets"].versioning is None
    assert any("s3 assets" in w and "acme-assets-prod" in w for w in facts.warnings)


def test_replication_with_rtc_gives_region_loss_of_15_minutes(setup: tuple[Context, GuardedSessionFactory]) -> None:
    ctx, factory = setup
    instance(BackupRetentionPeriod=7)
    buckets(rtc=True)
    facts = gather_facts(ctx, "production")

    assert facts.warnings == ()
    assert (facts.s3["assets"].replication, facts.s3["assets"].rtc, facts.s3["assets"].versioning) == (
        True, True, True)
    region = line(ctx, facts, "assets", "region-loss")
    assert (region.rpo_worst, region.rpo_met) == (timedelta(minutes=15), True)
    assert "Replication Time Control" in region.basis
    assert {("s3", "GetBucketVersioning"), ("s3", "GetBucketReplication")} <= set(factory.calls)


def test_replication_without_rtc_or_at_all_is_no_15_minute_promise(
    setup: tuple[Context, GuardedSessionFactory],
) -> None:
    ctx, _ = setup
    buckets(rtc=False)
    facts = gather_facts(ctx, "production")
    assert (facts.s3["assets"].replication, facts.s3["assets"].rtc) == (True, False)
    assert line(ctx, facts, "assets", "region-loss").rpo_met is None  # minutes, no SLA: unknown

    boto3.client("s3", region_name=HOME).delete_bucket_replication(Bucket="acme-assets-prod")
    facts = gather_facts(ctx, "production")
    assert facts.s3["assets"].replication is False
    gone = line(ctx, facts, "assets", "region-loss")
    assert gone.rpo_met is False and gone.fix == "drkit s3 replicate assets"


def test_access_denied_leaves_that_fact_unknown_with_a_warning(setup: tuple[Context, GuardedSessionFactory]) -> None:
    ctx, factory = setup
    instance(MultiAZ=True, BackupRetentionPeriod=7)
    buckets()
    on_call(factory, "DescribeDBInstances", denied("DescribeDBInstances", "rds:DescribeDBInstances"))
    on_call(factory, "GetBucketReplication", denied("GetBucketReplication", "s3:GetReplicationConfiguration"))
    facts = gather_facts(ctx, "production")

    assert "orders" not in facts.rds  # nothing known: RdsFacts() in the assessment
    assert (facts.s3["assets"].replication, facts.s3["assets"].rtc) == (None, None)
    assert facts.s3["assets"].versioning is True  # the other fact of that bucket was still read
    assert len(facts.warnings) == 2
    rds_warning, s3_warning = facts.warnings
    assert "grant rds:DescribeDBInstances" in rds_warning and "orders" in rds_warning
    assert "grant s3:GetReplicationConfiguration" in s3_warning and "acme-assets-prod" in s3_warning
    assert all("\n" not in w for w in facts.warnings)
    assert line(ctx, facts, "orders", "az-loss").rpo_met is None
    assert line(ctx, facts, "assets", "logical-corruption").rpo_met is True  # versioning known on


def test_a_replicated_automated_backup_in_the_dr_region_counts_only_while_replicating(
    setup: tuple[Context, GuardedSessionFactory],
) -> None:
    """moto 5.2 cannot replicate automated backups, so the DR region's answer is injected in the
    shape AWS documents for DescribeDBInstanceAutomatedBackups (DBInstanceArn = the source)."""
    ctx, factory = setup
    instance(BackupRetentionPeriod=7)
    arn = boto3.client("rds", region_name=HOME).describe_db_instances()["DBInstances"][0]["DBInstanceArn"]
    status = {"value": "replicating"}

    def dr_answer(context: dict[str, Any], **_: Any) -> Any:
        if context.get("client_region") != DR:
            return None  # the source region's own automated backups: moto answers
        backup = {"DBInstanceArn": arn, "DBInstanceIdentifier": "orders-prod", "Region": HOME,
                  "Status": status["value"], "BackupRetentionPeriod": 7,
                  "DBInstanceAutomatedBackupsArn": f"arn:aws:rds:{DR}:123456789012:auto-backup:ab-x"}
        return types.SimpleNamespace(status_code=200, headers={}), {"DBInstanceAutomatedBackups": [backup]}

    on_call(factory, "DescribeDBInstanceAutomatedBackups", dr_answer)
    facts = gather_facts(ctx, "production")
    assert facts.rds["orders"].cross_region_backups is True
    region = line(ctx, facts, "orders", "region-loss")
    assert (region.rpo_worst, region.rpo_met) == (timedelta(minutes=15), True)

    status["value"] = "retained"  # the source was deleted: those backups protect nothing new
    assert gather_facts(ctx, "production").rds["orders"].cross_region_backups is False


def test_posture_with_aws_prints_the_facts_verdicts_and_warnings(
    setup: tuple[Context, GuardedSessionFactory],
) -> None:
    ctx, _ = setup
    instance(MultiAZ=True, BackupRetentionPeriod=7)  # no buckets: the s3 facts warn
    runner = CliRunner()
    plain = runner.invoke(cli, ["--config-dir", str(ctx.config_dir), "posture", "production", "-o", "json"])
    aws = runner.invoke(cli, ["--config-dir", str(ctx.config_dir), "posture", "production", "--with-aws",
                              "-o", "json"])
    assert plain.exit_code == aws.exit_code == 3, aws.output  # region loss misses either way

    def az(out: str) -> Any:
        return next(x for x in json.loads(out) if x["resource"] == "orders" and x["scenario"] == "az-loss")

    assert az(plain.stdout)["rpo_met"] is None
    assert (az(aws.stdout)["rpo_worst_s"], az(aws.stdout)["rpo_met"]) == (0, True)
    assert "warning" in aws.stderr and "acme-assets-prod" in aws.stderr and "Traceback" not in aws.stderr
    assert "warning" not in plain.stderr  # without --with-aws nothing is asked of AWS


def test_the_lag_measured_by_s3_verify_is_the_region_loss_rpo(setup: tuple[Context, GuardedSessionFactory]) -> None:
    """`drkit s3 verify` measures the age of the oldest object not yet replicated; posture uses the
    newest such measurement: an object stuck for 40 minutes breaks a 15-minute target even with RTC."""
    from moto.s3.models import s3_backends

    from drkit.jobs.s3 import verify

    ctx, _ = setup
    instance(BackupRetentionPeriod=7)
    buckets(rtc=True)
    s3 = boto3.client("s3", region_name=HOME)
    s3.put_object(Bucket="acme-assets-prod", Key="stuck.bin", Body=b"x" * 10)
    key = s3_backends["123456789012"]["global"].buckets["acme-assets-prod"].keys["stuck.bin"]
    key.last_modified = NOW - timedelta(minutes=40)

    result = verify(ctx, "production", "assets", lag_allowance=timedelta(minutes=15))
    assert result.lag_s == pytest.approx(40 * 60, abs=1)

    facts = gather_facts(ctx, "production")
    assert facts.s3["assets"].lag == timedelta(seconds=result.lag_s)
    region = line(ctx, facts, "assets", "region-loss")
    assert region.rpo_met is False
    assert region.rpo_worst is not None and region.rpo_worst >= timedelta(minutes=40)
    assert "measured lag" in region.basis
