"""More of the PostgreSQL engine through the CLI: heartbeats, a PostgreSQL catalog, and a
restore that dies half way (a backup that authenticates but whose archive is broken)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import psycopg
import zstandard

from drkit.crypto import DecryptReader, EncryptWriter, LocalKeyFile
from tests.e2e.conftest import Env, leftovers


def test_heartbeat_gives_a_data_level_rpo_without_a_freshness_check(drkit_env: Env) -> None:
    env = drkit_env
    drill = (env.root / "drills" / "t.yaml").read_text()
    # drop the freshness check: the heartbeat table alone must give the data-level RPO
    lines = drill.splitlines()
    cut = next(i for i, line in enumerate(lines) if "newest customer" in line)
    (env.root / "drills" / "t.yaml").write_text("\n".join(lines[:cut] + lines[cut + 1 :]) + "\n")
    beat = env.run("heartbeat", "app", check=True)
    assert "heartbeat" in beat.stdout
    with psycopg.connect(env.source) as conn:
        row = conn.execute("SELECT max(beat_at) FROM drkit_heartbeat").fetchone()
    assert row is not None and row[0] is not None
    env.run("backup", "run", "local", check=True)
    env.run("drill", "run", "t", check=True)
    report = json.loads(sorted((env.root / "reports" / "t").glob("*.json"))[-1].read_text())
    assert report["rpo"]["method"] == "data"
    incident = report["incident_at"].replace("Z", "+00:00")
    from datetime import datetime

    expected = (datetime.fromisoformat(incident) - row[0]).total_seconds()
    assert abs(report["rpo"]["achieved_s"] - expected) < 0.01


def test_the_catalog_can_live_in_postgresql(drkit_env: Env, fresh_db: str) -> None:
    env = drkit_env
    params = psycopg.conninfo.conninfo_to_dict(fresh_db)
    user, host, port = params.get("user", "postgres"), params.get("host", "127.0.0.1"), params.get("port", 5432)
    url = f"postgresql://{user}@{host}:{port}/{params['dbname']}"
    env.vars = {**env.vars, "DRKIT_CATALOG": url}
    env.run("backup", "run", "local", check=True)
    env.run("drill", "run", "t", check=True)
    history = json.loads(env.run("drill", "history", "-o", "json", check=True).stdout)
    assert [h["drill"] for h in history] == ["t"]
    with psycopg.connect(fresh_db) as conn:
        rows = conn.execute("SELECT drill, status FROM drill_runs").fetchall()
        points = conn.execute("SELECT count(*) FROM recovery_points").fetchone()
    assert rows == [("t", "passed")]
    assert points == (1,)


def _rewrite_archive(env: Env, keep_fraction: float) -> None:
    """Replace the backup by a correctly encrypted, correctly hashed copy of a truncated archive:
    it authenticates, so only pg_restore can find out, half way through."""
    import hashlib

    manifest_path = next((env.root / "backups" / "app").glob("*.manifest.json"))
    manifest = json.loads(manifest_path.read_text())
    obj = manifest_path.with_name(manifest_path.name.replace(".manifest.json", ".dump.zst.enc"))
    key = LocalKeyFile(env.root / "keys" / "backup.key")
    with obj.open("rb") as fh:
        archive = zstandard.ZstdDecompressor().stream_reader(DecryptReader(fh, key)).read()
    broken = archive[: int(len(archive) * keep_fraction)]
    out = io.BytesIO()
    enc = EncryptWriter(out, key)
    enc.write(zstandard.ZstdCompressor().compress(broken))
    enc.close()
    obj.write_bytes(out.getvalue())
    manifest["sha256"] = hashlib.sha256(out.getvalue()).hexdigest()
    manifest["stored_bytes"] = len(out.getvalue())
    manifest_path.write_text(json.dumps(manifest))


def test_a_restore_that_dies_half_way_fails_cleanly(drkit_env: Env, drkit_tmp: Path) -> None:
    env = drkit_env
    env.run("backup", "run", "local", check=True)
    _rewrite_archive(env, 0.6)
    proc = env.run("drill", "run", "t")
    assert proc.returncode == 1, proc.stderr
    assert "pg_restore" in proc.stderr and "failed" in proc.stderr
    assert "Traceback" not in proc.stderr
    report = json.loads(sorted((env.root / "reports" / "t").glob("*.json"))[-1].read_text())
    restore = next(s for s in report["steps"] if s["name"] == "restore")
    assert restore["status"] == "failed" and "pg_restore" in restore["detail"]
    assert next(s for s in report["steps"] if s["name"] == "teardown")["status"] == "ok"
    assert report["resources"]["leaked"] == []
    assert leftovers(drkit_tmp) == []
