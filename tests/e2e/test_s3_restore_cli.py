"""`drkit s3 restore` as a user runs it: a subprocess against moto's server, checked with the AWS CLI
(`aws s3api list-object-versions`, `aws s3api get-object`) as an independent client.

The bucket's history is scripted at known times in the past: moto's server runs in this process
(ThreadedMotoServer), so each write's LastModified is set on its in-process backend object right
after the write, instead of sleeping between writes.
"""

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
from moto.core import DEFAULT_ACCOUNT_ID
from moto.s3.models import s3_backends

from drkit.catalog import Catalog

CREDS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}
BUCKET = "acme-assets-prod"
REGION = "eu-central-1"
BASE = (datetime.now(UTC) - timedelta(days=1)).replace(second=0, microsecond=0)


def at(minute: int) -> datetime:
    return BASE + timedelta(minutes=minute)




@pytest.fixture
def env(moto_env: dict[str, str]) -> dict[str, str]:
    return moto_env


def s3() -> Any:
    return boto3.client("s3", region_name=REGION)


def stamp(key: str, when: datetime) -> None:
    newest = s3_backends[DEFAULT_ACCOUNT_ID]["aws"].buckets[BUCKET].keys.getlist(key)[-1]
    newest.last_modified = when.astimezone(UTC).replace(tzinfo=None)


@pytest.fixture
def bucket(env: dict[str, str]) -> dict[str, str]:
    """minute 0: a, b, logs/x; 10: a overwritten, b deleted; 20: c created, logs/x overwritten."""
    client = s3()
    client.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
    client.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    script = [(0, "a b.txt", b"a0"), (0, "b", b"b0"), (0, "logs/x", b"x0"), (10, "a b.txt", b"a1"),
              (10, "b", None), (20, "c", b"c0"), (20, "logs/x", b"x1")]
    for i, (minute, key, body) in enumerate(script):
        if body is None:
            client.delete_object(Bucket=BUCKET, Key=key)
        else:
            client.put_object(Bucket=BUCKET, Key=key, Body=body)
        stamp(key, at(minute) + timedelta(seconds=i))
    return env


def awscli(env: dict[str, str], *args: str) -> Any:
    exe = shutil.which("aws", path=str(Path(sys.executable).parent)) or "aws"
    out = subprocess.run([exe, *args, "--endpoint-url", env["AWS_ENDPOINT_URL"], "--output", "json"],
                         env=env, capture_output=True, text=True, check=False, timeout=60)
    return out


def versions(env: dict[str, str]) -> list[tuple[str, str]]:
    out = awscli(env, "s3api", "list-object-versions", "--bucket", BUCKET)
    assert out.returncode == 0, out.stderr
    listed = json.loads(out.stdout)
    return sorted((v["Key"], v["VersionId"]) for v in listed.get("Versions", []) + listed.get("DeleteMarkers", []))


def content(env: dict[str, str], key: str, tmp_path: Path) -> bytes | None:
    target = tmp_path / "got"
    out = awscli(env, "s3api", "get-object", "--bucket", BUCKET, "--key", key, str(target))
    if out.returncode != 0:
        assert "NoSuchKey" in out.stderr, out.stderr
        return None
    return target.read_bytes()


def drkit(env: dict[str, str], tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "drkit", "--config-dir", str(tmp_path), "s3", "restore", *args],
                          env=env, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL, check=False)


def test_restore_brings_the_bucket_back_and_a_second_run_changes_nothing(
    bucket: dict[str, str], tmp_path: Path
) -> None:
    env = bucket
    before = versions(env)
    t = at(5).isoformat().replace("+00:00", "Z")

    dry = drkit(env, tmp_path, "--bucket", BUCKET, "--to-time", t, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "restore 3, delete 1, unchanged 0" in dry.stderr and "dry run: nothing changed" in dry.stderr
    assert "a b.txt" in dry.stdout and "created after T" in dry.stdout  # the sample table
    assert versions(env) == before

    run = drkit(env, tmp_path, "--bucket", BUCKET, "--to-time", t, "--yes", "-o", "json")
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout)
    assert (report["restore"], report["delete"], report["restored"], report["deleted"]) == (3, 1, 3, 1)
    assert report["applied"] is True and report["failed"] == [] and report["region"] == REGION
    got = {key: content(env, key, tmp_path) for key in ("a b.txt", "b", "c", "logs/x")}
    assert got == {"a b.txt": b"a0", "b": b"b0", "c": None, "logs/x": b"x0"}
    after = versions(env)
    assert set(before) < set(after) and len(after) == len(before) + 4

    again = drkit(env, tmp_path, "--bucket", BUCKET, "--to-time", t, "--yes")
    assert again.returncode == 0, again.stderr
    assert "restore 0, delete 0, unchanged 4" in again.stderr and "nothing to do" in again.stderr
    assert versions(env) == after

    with Catalog.open(env["DRKIT_CATALOG"]) as catalog:
        [event] = [e for e in catalog.audit_events() if e.action == "s3-restore"]
    assert event.target == BUCKET and event.detail["restored"] == 3 and event.detail["deleted"] == 1


def test_a_prefix_restores_only_under_it(bucket: dict[str, str], tmp_path: Path) -> None:
    env = bucket
    run = drkit(env, tmp_path, "--bucket", BUCKET, "--to-time", at(15).isoformat(), "--prefix", "logs/", "--yes")
    assert run.returncode == 0, run.stderr
    assert content(env, "logs/x", tmp_path) == b"x0"
    client = s3()
    outside = {k: client.get_object(Bucket=BUCKET, Key=k)["Body"].read() for k in ("a b.txt", "c")}
    assert outside == {"a b.txt": b"a1", "c": b"c0"}  # the newest versions, untouched


BAD_INPUT = [
    (["--bucket", "no-such-bucket", "--to-time", "2026-01-01T00:00:00Z"], "bucket no-such-bucket does not exist"),
    (["--bucket", BUCKET, "--to-time", (datetime.now(UTC) + timedelta(days=1)).isoformat()], "in the future"),
    (["--bucket", BUCKET, "--to-time", "2026-01-01T00:00:00"], "has no time zone"),
    (["--bucket", BUCKET, "--to-time", "yesterday"], "is not an ISO-8601 time"),
    (["--bucket", BUCKET, "--to-time", at(-60).isoformat()], f"nothing is known before {at(0).isoformat()}"),
    (["--bucket", BUCKET, "--to-time", at(5).isoformat(), "--prefix", "nope/"], "no object versions"),
]


def test_bad_input_exits_2_with_one_line_and_changes_nothing(bucket: dict[str, str], tmp_path: Path) -> None:
    # The cases run side by side (they only read): each drkit process costs seconds here.
    before = versions(bucket)
    procs = [
        (args, says, subprocess.Popen([sys.executable, "-m", "drkit", "--config-dir", str(tmp_path), "s3", "restore",
                                       *args, "--yes"], env=bucket, stdin=subprocess.DEVNULL,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
        for args, says in BAD_INPUT
    ]
    for args, says, proc in procs:
        _, stderr = proc.communicate(timeout=120)
        assert proc.returncode == 2, (args, stderr)
        lines = stderr.strip().splitlines()
        assert len(lines) == 1 and says in lines[0] and lines[0].startswith("drkit: "), (args, lines)
    assert versions(bucket) == before


def test_buckets_without_versioning_or_with_it_suspended_are_refused(env: dict[str, str], tmp_path: Path) -> None:
    client = s3()
    client.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
    client.put_object(Bucket=BUCKET, Key="a", Body=b"1")
    proc = drkit(env, tmp_path, "--bucket", BUCKET, "--to-time", at(5).isoformat(), "--yes")
    assert proc.returncode == 2 and "never had versioning enabled" in proc.stderr

    client.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Suspended"})
    proc = drkit(env, tmp_path, "--bucket", BUCKET, "--to-time", at(5).isoformat(), "--yes")
    assert proc.returncode == 2 and "Suspended" in proc.stderr and "--force" in proc.stderr
    got = awscli(env, "s3api", "get-bucket-versioning", "--bucket", BUCKET)
    assert json.loads(got.stdout)["Status"] == "Suspended"
