"""`drkit s3 verify` as a user runs it: a subprocess against moto's server, checked with the AWS CLI."""

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

ACCOUNT = "123456789012"
CREDS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}
SRC, DST = "acme-assets-prod", "acme-assets-prod-dr"

SCHEDULE = f"""\
environment: production
targets: {{rto: 1h, rpo: 15m}}
aws: {{region: us-east-1, dr_region: us-west-2}}
s3:
  - name: assets
    bucket: {SRC}
    replica_bucket: {DST}
    kms_key: alias/drkit-dr
    verify: {{cron: "*/30 * * * *"}}
"""




@pytest.fixture
def env(moto_env: dict[str, str], tmp_path: Path) -> dict[str, str]:
    (tmp_path / "config" / "schedules").mkdir(parents=True)
    (tmp_path / "config" / "schedules" / "production.yaml").write_text(SCHEDULE)
    return moto_env


def s3(env: dict[str, str], region: str) -> Any:
    return boto3.client(
        "s3",
        region_name=region,
        endpoint_url=env["AWS_ENDPOINT_URL"],
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def awscli(env: dict[str, str], *args: str) -> Any:
    exe = shutil.which("aws", path=str(Path(sys.executable).parent)) or "aws"
    out = subprocess.run(
        [exe, *args, "--endpoint-url", env["AWS_ENDPOINT_URL"], "--output", "json"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return json.loads(out.stdout) if out.stdout.strip() else {}


def drkit(env: dict[str, str], config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "drkit", "--config-dir", str(config), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
        check=False,
    )


def backdate_all(bucket: str, age: timedelta) -> None:
    """The server runs in this process: age every object as if written `age` ago."""
    from moto.s3.models import s3_backends

    when = (datetime.now(UTC) - age).replace(tzinfo=None)
    for key in s3_backends[ACCOUNT]["aws"].get_bucket(bucket).keys.values():
        key.last_modified = when


KEYS = [f"img/{i:03d}.png" for i in range(40)] + ["docs/annual report 2026.pdf", "docs/naïve – ünïcödé.txt"]


@pytest.fixture
def buckets(env: dict[str, str]) -> tuple[Any, Any]:
    src, dst = s3(env, "us-east-1"), s3(env, "us-west-2")
    src.create_bucket(Bucket=SRC)
    dst.create_bucket(Bucket=DST, CreateBucketConfiguration={"LocationConstraint": "us-west-2"})
    for key in KEYS:
        src.put_object(Bucket=SRC, Key=key, Body=b"p" * 100)
    return src, dst


def list_keys(env: dict[str, str], bucket: str, region: str) -> list[dict[str, Any]]:
    return awscli(env, "s3api", "list-objects-v2", "--bucket", bucket, "--region", region).get("Contents", [])


def test_verify_reports_missing_and_resized_objects_as_json_and_exits_1(
    env: dict[str, str], buckets: tuple[Any, Any], tmp_path: Path
) -> None:
    _src, dst = buckets
    lost = {"img/007.png", "docs/naïve – ünïcödé.txt"}
    for key in KEYS:
        if key not in lost:
            dst.put_object(Bucket=DST, Key=key, Body=b"p" * (101 if key == "img/013.png" else 100))
    dst.put_object(Bucket=DST, Key="stale/only-here.txt", Body=b"s")
    backdate_all(SRC, timedelta(hours=2))

    proc = drkit(env, tmp_path / "config", "s3", "verify", "assets", "-o", "json")

    assert proc.returncode == 1, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["bucket"] == SRC and doc["replica_bucket"] == DST
    assert sorted(doc["missing"]) == sorted(lost) and doc["mismatched"] == ["img/013.png"]
    assert doc["failed"] == [] and doc["in_flight"] == [] and doc["truncated"] is False
    assert 7100 < doc["lag_s"] < 7500
    # The AWS CLI, as an independent client, agrees on what is in each bucket.
    src_keys = {o["Key"] for o in list_keys(env, SRC, "us-east-1")}
    dst_keys = {o["Key"] for o in list_keys(env, DST, "us-west-2")}
    assert doc["checked"] == len(src_keys) == len(KEYS)
    assert doc["extra_count"] == len(dst_keys - src_keys) == 1
    assert set(doc["missing"]) == src_keys - dst_keys
    assert "FAILED" in proc.stderr and "Traceback" not in proc.stderr


def test_verify_passes_when_everything_is_replicated_and_prints_a_table(
    env: dict[str, str], buckets: tuple[Any, Any], tmp_path: Path
) -> None:
    _src, dst = buckets
    for key in KEYS:
        dst.put_object(Bucket=DST, Key=key, Body=b"p" * 100)
    proc = drkit(env, tmp_path / "config", "s3", "verify", "assets")
    assert proc.returncode == 0, proc.stderr
    assert "checked" in proc.stdout and str(len(KEYS)) in proc.stdout
    assert "replication lag 0s" in proc.stdout
    assert proc.stderr.strip().startswith("ok")


def test_recent_objects_are_in_flight_within_the_allowance(
    env: dict[str, str], buckets: tuple[Any, Any], tmp_path: Path
) -> None:
    _src, _dst = buckets
    backdate_all(SRC, timedelta(minutes=40))
    config = tmp_path / "config"
    late = drkit(env, config, "s3", "verify", "assets", "-o", "json")  # default allowance: the 15m RPO
    assert late.returncode == 1 and len(json.loads(late.stdout)["missing"]) == len(KEYS)
    proc = drkit(env, config, "s3", "verify", "assets", "-o", "json", "--lag-allowance", "1h")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["missing"] == [] and sorted(doc["in_flight"]) == sorted(KEYS)
    assert 2300 < doc["lag_s"] < 2700


def test_bad_input_is_one_line_and_exit_2(env: dict[str, str], buckets: tuple[Any, Any], tmp_path: Path) -> None:
    config = tmp_path / "config"
    proc = drkit(env, config, "s3", "verify", "photos")
    assert proc.returncode == 2 and "no s3 resource named 'photos'" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    proc = drkit(env, config, "s3", "verify", "assets", "--lag-allowance", "soon")
    assert proc.returncode == 2 and "--lag-allowance" in proc.stderr


def test_a_missing_replica_bucket_fails_with_one_line(
    env: dict[str, str], buckets: tuple[Any, Any], tmp_path: Path
) -> None:
    buckets[1].delete_bucket(Bucket=DST)
    proc = drkit(env, tmp_path / "config", "s3", "verify", "assets", "-o", "json")
    assert proc.returncode == 1 and proc.stdout == ""
    assert proc.stderr.strip() == (
        f"drkit: bucket s3://{DST} (us-west-2) does not exist: check the schedule's s3 entry "
        "(or run `drkit s3 replicate`)"
    )
