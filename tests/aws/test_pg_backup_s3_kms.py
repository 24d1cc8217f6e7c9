"""The PostgreSQL engine with its cloud options: an s3:// store and a KMS-wrapped data key
(moto for S3 and KMS, the real PostgreSQL for the data), through the same jobs the CLI runs."""

from __future__ import annotations

import json
from pathlib import Path

import boto3
import pytest

from drkit.crypto import read_header
from drkit.jobs.backup import list_points, run_backup
from drkit.jobs.context import Context
from drkit.jobs.drill import run_drill_job
from tests.pg.pgdata import load_sample

SCHEDULE = """\
environment: test
targets: {rto: 15m, rpo: 5m}
postgres:
  - name: app
    dsn_env: APP_DATABASE_URL
    backups: {cron: "0 */6 * * *", keep: {last: 3}}
    store: s3://drkit-backups/pg
    encryption: {kms_key: alias/drkit-backups}
"""

DRILL = """\
environment: test
targets: {rto: 15m, rpo: 5m}
scenario: data-corruption
source:
  postgres: {schedule: cloud, resource: app}
verify:
  database: app
  checks:
    - {name: customers present, sql: "SELECT count(*) FROM customers", expect: "== 3000"}
"""


@pytest.fixture
def config_dir(tmp_path: Path) -> Path:
    (tmp_path / "schedules").mkdir()
    (tmp_path / "drills").mkdir()
    (tmp_path / "schedules" / "cloud.yaml").write_text(SCHEDULE)
    (tmp_path / "drills" / "cloud.yaml").write_text(DRILL)
    return tmp_path


def test_kms_encrypted_backup_in_s3_restores_in_a_drill(
    moto_aws: None, fresh_db: str, config_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    load_sample(fresh_db)
    monkeypatch.setenv("APP_DATABASE_URL", fresh_db)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket="drkit-backups")
    kms = boto3.client("kms", region_name="us-east-1")
    key_arn = kms.create_key(Description="drkit backups")["KeyMetadata"]["Arn"]
    kms.create_alias(AliasName="alias/drkit-backups", TargetKeyId=key_arn)

    ctx = Context(config_dir=config_dir, catalog_url=f"sqlite:///{tmp_path / 'catalog.db'}")
    try:
        [outcome] = run_backup(ctx, "cloud")
        assert outcome.error is None and outcome.manifest is not None
        manifest = outcome.manifest
        assert manifest.key_kind == "kms" and manifest.key_id == key_arn

        keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket="drkit-backups")["Contents"])
        assert keys == [f"pg/app/{manifest.id}.dump.zst.enc", f"pg/app/{manifest.id}.manifest.json"]
        body = s3.get_object(Bucket="drkit-backups", Key=keys[0])["Body"]
        header = read_header(body)
        assert header.kind == "kms" and header.key_id == key_arn
        stored = json.loads(s3.get_object(Bucket="drkit-backups", Key=keys[1])["Body"].read())
        assert stored["sha256"] == manifest.sha256

        [point] = list_points(ctx)
        assert point["location"] == f"s3://drkit-backups/pg/app/{manifest.id}.dump.zst.enc"

        report, _paths, error = run_drill_job(ctx, "cloud", report_dir=tmp_path / "reports")
        assert error is None, error
        assert report.status == "passed"
        assert [c.actual for c in report.checks] == [3000]
    finally:
        ctx.close()
