"""The PostgreSQL engine end to end through the CLI: exit codes, messages, reports, leftovers."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import psycopg

from tests.e2e.conftest import Env, leftovers
from tests.pg.pgdata import table_checksums


def _report(env: Env, drill: str = "t") -> dict:
    reports = sorted((env.root / "reports" / drill).glob("*.json"))
    assert reports, "no report written"
    return json.loads(reports[-1].read_text())


def test_backup_list_drill_history_and_signed_report(drkit_env: Env, drkit_tmp: Path) -> None:
    env = drkit_env
    env.run("backup", "run", "local", check=True)
    points = json.loads(env.run("backup", "list", "--output", "json", check=True).stdout)
    assert len(points) == 1
    point = points[0]
    for key in ("id", "resource", "kind", "created_at", "region", "encrypted", "key_id", "size_bytes", "status"):
        assert key in point
    assert point["resource"] == "app" and point["encrypted"] is True and point["kind"] == "dump"
    assert (env.root / "keys" / "backup.key").stat().st_mode & 0o777 == 0o600

    proc = env.run("drill", "run", "t")
    assert proc.returncode == 0, proc.stderr
    assert "PASSED" in proc.stderr
    report = _report(env)
    assert report["status"] == "passed" and report["engine"] == "postgres"
    assert report["recovery_point"]["id"] == point["id"]
    assert [c["passed"] for c in report["checks"]] == [True, True, True]
    assert report["rto"]["met"] and report["rto"]["achieved_s"] > 0
    assert report["rpo"]["method"] == "data"
    assert report["resources"]["leaked"] == []
    assert report["resources"]["created"] and sorted(report["resources"]["created"]) == sorted(
        report["resources"]["deleted"]
    )
    stamp = Path(sorted((env.root / "reports" / "t").glob("*.json"))[-1]).stem
    for suffix in (".md", ".html", ".xml"):
        assert (env.root / "reports" / "t" / f"{stamp}{suffix}").exists()
    assert leftovers(drkit_tmp) == []

    verified = env.run("report", "verify", str(env.root / "reports" / "t" / f"{stamp}.json"))
    assert verified.returncode == 0, verified.stdout + verified.stderr
    history = json.loads(env.run("drill", "history", "t", "--output", "json", check=True).stdout)
    assert [h["status"] for h in history] == ["passed"]
    assert history[0]["rto"]["achieved_s"] == report["rto"]["achieved_s"]


def test_a_changed_report_fails_verification(drkit_env: Env) -> None:
    env = drkit_env
    env.run("backup", "run", "local", check=True)
    env.run("drill", "run", "t", check=True)
    path = sorted((env.root / "reports" / "t").glob("*.json"))[-1]
    doc = json.loads(path.read_text())
    doc["rto"]["achieved_s"] = 1.0
    path.write_text(json.dumps(doc))
    proc = env.run("report", "verify", str(path))
    assert proc.returncode == 1
    assert "changed after signing" in proc.stdout


def test_a_failing_check_exits_1_and_still_tears_down(drkit_env: Env, drkit_tmp: Path) -> None:
    env = drkit_env
    env.write_drill(extra_checks='- {name: impossible, sql: "SELECT count(*) FROM customers", expect: "> 1000000"}')
    env.run("backup", "run", "local", check=True)
    proc = env.run("drill", "run", "t")
    assert proc.returncode == 1, proc.stderr
    assert "impossible" in proc.stderr
    report = _report(env)
    assert report["status"] == "failed"
    assert report["rto"]["achieved_s"] is None
    assert leftovers(drkit_tmp) == []


def test_a_missed_rpo_target_exits_3(drkit_env: Env) -> None:
    env = drkit_env
    env.write_drill(rpo="1s")
    env.run("backup", "run", "local", check=True)
    time.sleep(1.5)
    proc = env.run("drill", "run", "t")
    assert proc.returncode == 3, proc.stderr
    report = _report(env)
    assert report["status"] == "targets_missed" and report["rpo"]["met"] is False


def test_sigterm_mid_drill_cleans_up_and_exits_130(drkit_env: Env, drkit_tmp: Path) -> None:
    env = drkit_env
    env.run("backup", "run", "local", check=True)
    proc = env.popen("drill", "run", "t")
    assert proc.stderr is not None
    seen = []
    for line in proc.stderr:
        seen.append(line)
        if "provision isolation: ok" in line:
            proc.send_signal(signal.SIGTERM)
            break
    rest = proc.communicate(timeout=120)[1]
    assert proc.returncode == 130, "".join(seen) + rest
    assert leftovers(drkit_tmp) == []


def test_a_tampered_backup_fails_the_drill_without_leftovers(drkit_env: Env, drkit_tmp: Path) -> None:
    env = drkit_env
    env.run("backup", "run", "local", check=True)
    obj = next((env.root / "backups" / "app").glob("*.enc"))
    data = bytearray(obj.read_bytes())
    data[len(data) // 2] ^= 0xFF
    obj.write_bytes(bytes(data))
    proc = env.run("drill", "run", "t")
    assert proc.returncode == 1
    assert _report(env)["status"] == "failed"
    assert "restore" in proc.stderr and (
        "tamper" in proc.stderr or "authentic" in proc.stderr or "damaged" in proc.stderr or "changed" in proc.stderr
    )
    assert "Traceback" not in proc.stderr
    assert leftovers(drkit_tmp) == []


def test_a_replaced_key_file_is_named_as_the_wrong_key(drkit_env: Env) -> None:
    env = drkit_env
    env.run("backup", "run", "local", check=True)
    key = env.root / "keys" / "backup.key"
    key.unlink()
    env.run("backup", "run", "local", check=True)  # makes a new key
    backups = sorted((env.root / "backups" / "app").glob("*.manifest.json"))
    older = json.loads(backups[0].read_text())["id"]
    newer = json.loads(backups[1].read_text())["id"]
    assert older != newer
    proc = env.run("restore", "postgres", "--backup", older, "--dsn", env.source, "--force", "--yes")
    assert proc.returncode == 1
    assert "wrong key" in proc.stderr


def test_unreachable_source_and_missing_binaries_are_one_clear_line(drkit_env: Env) -> None:
    env = drkit_env
    proc = env.run(
        "backup",
        "run",
        "local",
        extra_env={"APP_DATABASE_URL": "host=127.0.0.1 port=1 dbname=x user=postgres connect_timeout=2"},
    )
    assert proc.returncode == 1
    assert "cannot connect" in proc.stderr and "Traceback" not in proc.stderr
    assert not (env.root / "backups" / "app").exists() or not list((env.root / "backups" / "app").iterdir())

    env.run("backup", "run", "local", check=True)
    proc = env.run("drill", "run", "t", extra_env={"DRKIT_PG_BINDIR": "/nonexistent/bin"})
    assert proc.returncode == 1
    assert "/nonexistent/bin" in proc.stderr and "Traceback" not in proc.stderr


def test_unset_source_variable_is_a_usage_error(drkit_env: Env) -> None:
    env = drkit_env
    variables = dict(env.vars)
    variables.pop("APP_DATABASE_URL")
    env.vars = variables
    proc = env.run("backup", "run", "local")
    assert proc.returncode == 2
    assert "APP_DATABASE_URL is not set" in proc.stderr


def test_restore_postgres_into_a_named_database(drkit_env: Env, pg_dsn: str) -> None:
    env = drkit_env
    env.run("backup", "run", "local", check=True)
    target = psycopg.conninfo.make_conninfo(pg_dsn, dbname="drkit_e2e_restore")
    with psycopg.connect(pg_dsn, autocommit=True) as admin:
        admin.execute("DROP DATABASE IF EXISTS drkit_e2e_restore WITH (FORCE)")
        admin.execute("CREATE DATABASE drkit_e2e_restore")
    try:
        env.run("restore", "postgres", "--resource", "app", "--dsn", target, check=True)
        tables = ("customers", "blobs", "orders")
        assert table_checksums(target, tables) == table_checksums(env.source, tables)
        again = env.run("restore", "postgres", "--resource", "app", "--dsn", target)
        assert again.returncode == 2 and "not empty" in again.stderr and "--force" in again.stderr
        verify = env.run("verify", "t", "--dsn", target)
        assert verify.returncode == 0, verify.stdout + verify.stderr
    finally:
        with psycopg.connect(pg_dsn, autocommit=True) as admin:
            admin.execute("DROP DATABASE IF EXISTS drkit_e2e_restore WITH (FORCE)")


def test_prune_shows_then_applies_the_keep_policy(drkit_env: Env) -> None:
    env = drkit_env
    env.write_schedule(keep_last=1)
    for _ in range(3):
        env.run("backup", "run", "local", check=True)
        time.sleep(1.1)  # distinct, sortable backup times
    ids = [p["id"] for p in json.loads(env.run("backup", "list", "-o", "json", check=True).stdout)]
    assert len(ids) == 3
    plan = json.loads(env.run("prune", "local", "-o", "json", check=True).stdout)
    assert {p["id"]: p["keep"] for p in plan} == {ids[0]: True, ids[1]: False, ids[2]: False}
    assert len(json.loads(env.run("backup", "list", "-o", "json", check=True).stdout)) == 3  # dry run changed nothing
    env.run("prune", "local", "--apply", check=True)
    left = [p["id"] for p in json.loads(env.run("backup", "list", "-o", "json", check=True).stdout)]
    assert left == [ids[0]]


def test_drill_cleanup_finds_and_removes_what_a_killed_drill_left(drkit_env: Env, drkit_tmp: Path) -> None:
    """A drill killed with SIGKILL cannot clean up; `drill cleanup` finds its work directory by the
    owner pid it recorded (dead now), lists it, and removes it only with --apply."""
    import subprocess as sp

    dead = sp.Popen(["true"])
    dead.wait()  # a pid that no longer runs
    left = drkit_tmp / "drkit-drill-killed"
    left.mkdir()
    (left / "owner.pid").write_text(str(dead.pid))
    (left / "app-backup.dump").write_bytes(b"decrypted archive bytes")
    mine = drkit_tmp / "drkit-drill-running"
    mine.mkdir()
    (mine / "owner.pid").write_text(str(os.getpid()))  # a live owner: never a leftover

    listed = drkit_env.run("drill", "cleanup")
    assert listed.returncode == 0, listed.stderr
    assert str(left) in listed.stdout and str(mine) not in listed.stdout
    assert left.exists()
    applied = drkit_env.run("drill", "cleanup", "--apply")
    assert applied.returncode == 0, applied.stderr
    assert not left.exists() and mine.exists()


def test_backup_list_without_aws_shows_local_points_and_says_rds_was_not_listed(drkit_env: Env) -> None:
    """A schedule with RDS next to the local database, and no AWS credentials on this machine:
    the local recovery points are still listed; the gap is named and the exit code is 1."""
    env = drkit_env
    env.run("backup", "run", "local", check=True)
    (env.root / "schedules" / "cloud.yaml").write_text(
        "environment: test\ntargets: {rto: 1h, rpo: 15m}\naws: {region: us-east-1, dr_region: us-west-2}\n"
        "rds:\n  - name: orders\n    instance: orders-prod\n    snapshots: {cron: \"0 3 * * *\", keep: {daily: 7}}\n"
    )
    no_aws = {k: "" for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE", "AWS_SESSION_TOKEN")}
    no_aws |= {"AWS_CONFIG_FILE": "/nonexistent", "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent",
               "AWS_EC2_METADATA_DISABLED": "true"}
    proc = env.run("backup", "list", "-o", "json", extra_env=no_aws)
    assert proc.returncode == 1
    assert [p["resource"] for p in json.loads(proc.stdout)] == ["app"]
    assert "RDS recovery points not listed" in proc.stderr and "Traceback" not in proc.stderr
    only_local = env.run("backup", "list", "--resource", "app", "-o", "json", extra_env=no_aws)
    assert only_local.returncode == 0 and len(json.loads(only_local.stdout)) == 1
