"""`drkit s3 replicate` as a user runs it, against moto's server, checked with the AWS CLI as an
independent client (TESTING.md: tests/e2e), with the contract's production schedule."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import boto3
import pytest

REPO = Path(__file__).resolve().parents[2]
CREDS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}
SRC, DST = "acme-assets-prod", "acme-assets-prod-dr"




@pytest.fixture
def env(moto_env: dict[str, str]) -> dict[str, str]:
    return moto_env


@pytest.fixture
def config(tmp_path: Path) -> Path:
    root = tmp_path / "config"
    (root / "schedules").mkdir(parents=True)
    shutil.copy(REPO / "schedules" / "production.yaml", root / "schedules" / "production.yaml")
    return root


@pytest.fixture
def dr_key(env: dict[str, str]) -> str:
    kms = boto3.client("kms", region_name="us-west-2")
    arn = str(kms.create_key(Description="drkit DR")["KeyMetadata"]["Arn"])
    kms.create_alias(AliasName="alias/drkit-dr", TargetKeyId=arn)
    return arn


def drkit(env: dict[str, str], config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "drkit", "--config-dir", str(config), *args], env=env,
                          capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL, check=False)


def awscli(env: dict[str, str], *args: str) -> Any:
    exe = shutil.which("aws", path=str(Path(sys.executable).parent)) or "aws"
    out = subprocess.run([exe, "s3api", *args, "--endpoint-url", env["AWS_ENDPOINT_URL"], "--output", "json"],
                         env=env, capture_output=True, text=True, check=True, timeout=60)
    return json.loads(out.stdout)


def buckets() -> list[str]:
    return [b["Name"] for b in boto3.client("s3", region_name="us-east-1").list_buckets()["Buckets"]]


def test_replicate_sets_up_both_buckets_and_backfills(env: dict[str, str], config: Path, dr_key: str) -> None:
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket=SRC)
    for key in ("index.html", "img/logo one.png", "docs/ünïcode.txt"):
        s3.put_object(Bucket=SRC, Key=key, Body=key.encode())

    dry = drkit(env, config, "s3", "replicate", "assets", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert f"+ create    bucket {DST}: in us-west-2" in dry.stdout
    assert "+ create    backfill into acme-assets-prod-dr: 3 of 3 objects" in dry.stdout
    assert "dry run: nothing changed" in dry.stderr
    assert DST not in buckets()  # still not there

    proc = drkit(env, config, "s3", "replicate", "assets", "--yes")
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr and "done" in proc.stderr

    for bucket in (SRC, DST):
        assert awscli(env, "get-bucket-versioning", "--bucket", bucket)["Status"] == "Enabled"
    [rule] = awscli(env, "get-bucket-encryption", "--bucket", DST)["ServerSideEncryptionConfiguration"]["Rules"]
    assert rule["ApplyServerSideEncryptionByDefault"] == {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": dr_key}
    assert rule["BucketKeyEnabled"] is True
    bpa = awscli(env, "get-public-access-block", "--bucket", DST)["PublicAccessBlockConfiguration"]
    assert bpa == dict.fromkeys(("BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy",
                                 "RestrictPublicBuckets"), True)
    # The rest through boto3 (each AWS CLI start costs seconds on this machine).
    dr = boto3.client("s3", region_name="us-west-2")
    assert dr.get_bucket_location(Bucket=DST)["LocationConstraint"] == "us-west-2"
    replication = s3.get_bucket_replication(Bucket=SRC)["ReplicationConfiguration"]
    assert replication["Role"].endswith(":role/drkit-s3-replication-assets")
    assert replication["Rules"][0]["Destination"]["EncryptionConfiguration"] == {"ReplicaKmsKeyID": dr_key}
    listed = dr.list_objects_v2(Bucket=DST)["Contents"]
    assert sorted(o["Key"] for o in listed) == sorted(("index.html", "img/logo one.png", "docs/ünïcode.txt"))
    head = awscli(env, "head-object", "--bucket", DST, "--key", "docs/ünïcode.txt")
    assert head["ServerSideEncryption"] == "aws:kms" and head["SSEKMSKeyId"] == dr_key

    # Again: nothing to create and nothing to copy. (moto's lossy read-back of the rule makes
    # drkit re-send it, as it would on AWS after real drift; tests/aws covers the exact no-op.)
    again = drkit(env, config, "s3", "replicate", "assets", "--yes")
    assert again.returncode == 0, again.stderr
    assert "+ create" not in again.stdout
    assert "= unchanged backfill into acme-assets-prod-dr: all 3 current objects present" in again.stdout


def test_a_missing_source_bucket_is_one_line_exit_2_and_nothing_changes(
    env: dict[str, str], config: Path, dr_key: str
) -> None:
    proc = drkit(env, config, "s3", "replicate", "assets", "--yes")
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"drkit: source bucket {SRC} does not exist (s3 assets in schedules/production.yaml): "
        "create it or fix `bucket`"]
    assert buckets() == []
