"""`drkit scheduler run` as an operator runs it: real processes, a PostgreSQL catalog shared by
replicas, SIGTERM and kill -9, /metrics and /healthz over HTTP. Long-ish: ~30 s in all."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from drkit.pg.tools import PgTools

pytestmark = pytest.mark.timeout(120)

SCHEDULE = """\
environment: test
targets: {rto: 15m, rpo: 5m}
postgres:
  - name: app
    dsn_env: APP_DATABASE_URL
    backups: {cron: "%s", keep: {last: 5}}
    store: file://backups
    encryption: {key_file: keys/backup.key}
"""
NEVER_DUE = "0 0 1 1 *"  # Jan 1st: outside the misfire grace, so only the heartbeat runs


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except OSError:
        return 0, ""


def _metric(port: int, line_start: str) -> float | None:
    _, text = _get(port, "/metrics")
    for line in text.splitlines():
        if line.startswith(line_start):
            return float(line.split()[-1])
    return None


def _wait(what: str, cond: Callable[[], bool], timeout: float = 15.0) -> float:
    start = time.monotonic()
    while not cond():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.2)
    return time.monotonic() - start


@dataclass
class Setup:
    root: Path
    catalog_dsn: str
    env: dict[str, str]
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def catalog_url(self) -> str:
        p = conninfo_to_dict(self.catalog_dsn)
        return f"postgresql://{p.get('user', 'postgres')}@{p.get('host')}:{p.get('port', 5432)}/{p['dbname']}"

    def write_schedule(self, backup_cron: str) -> None:
        (self.root / "schedules").mkdir(exist_ok=True)
        (self.root / "schedules" / "local.yaml").write_text(SCHEDULE % backup_cron)

    def drkit(self, *args: str, log: str) -> subprocess.Popen[bytes]:
        out = open(self.root.parent / log, "ab")  # noqa: SIM115 - the child owns it
        proc = subprocess.Popen(
            [sys.executable, "-m", "drkit", "--config-dir", str(self.root), "--catalog", self.catalog_url, *args],
            env=self.env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        out.close()
        self.procs.append(proc)
        return proc

    def service(self, port: int, log: str) -> subprocess.Popen[bytes]:
        return self.drkit("scheduler", "run", "--metrics-port", str(port), "--leader-retry", "1s", log=log)

    def log(self, name: str) -> str:
        return (self.root.parent / name).read_text()

    def runs(self, kind: str) -> list[tuple[str, object]]:
        with psycopg.connect(self.catalog_dsn) as conn:
            try:
                rows = conn.execute(
                    "SELECT status, started_at FROM job_runs WHERE job = %s ORDER BY started_at", (kind,)
                ).fetchall()
            except psycopg.errors.UndefinedTable:  # the first drkit has not created the catalog yet
                return []
        return [(str(r[0]), r[1]) for r in rows]


@pytest.fixture
def setup(tmp_path: Path, fresh_db: str, pg_dsn: str, pg_tools: PgTools) -> Iterator[Setup]:
    source = f"drkit_src_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_dsn, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(source)))
    root = tmp_path / "config"
    root.mkdir()
    env = {
        **os.environ,
        "APP_DATABASE_URL": make_conninfo(pg_dsn, dbname=source),
        "XDG_STATE_HOME": str(tmp_path / "state"),
        "PYTHONPATH": str(Path(__file__).resolve().parents[2]),
        "PYTHONUNBUFFERED": "1",
    }
    s = Setup(root, fresh_db, env)
    s.write_schedule(NEVER_DUE)
    yield s
    for proc in s.procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    with psycopg.connect(pg_dsn, autocommit=True) as admin:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(source)))


def _leader(port: int) -> float | None:
    return _metric(port, "drkit_leader ")


def test_the_service_runs_jobs_serves_metrics_and_stops_cleanly_on_sigterm(setup: Setup) -> None:
    port = _free_port()
    proc = setup.service(port, "a.log")
    ok_heartbeats = 'drkit_job_runs_total{kind="heartbeat",resource="app",schedule="local",status="ok"}'
    _wait("a heartbeat run", lambda: (_metric(port, ok_heartbeats) or 0) >= 1)
    assert _leader(port) == 1.0
    status, body = _get(port, "/healthz")
    assert (status, body.strip()) == (200, "ok")
    assert _get(port, "/nope")[0] == 404
    assert [status for status, _ in setup.runs("heartbeat")][:1] == ["ok"]
    assert setup.runs("pg-backup") == []  # not due: Jan 1st is outside the misfire grace

    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=10) == 0, setup.log("a.log")
    assert "stopping (SIGTERM)" in setup.log("a.log")
    assert _get(port, "/healthz")[0] == 0  # the endpoint is gone with the process


def test_two_replicas_elect_one_leader_and_the_follower_takes_over_after_kill_9(setup: Setup) -> None:
    port_a, port_b = _free_port(), _free_port()
    a = setup.service(port_a, "a.log")
    _wait("replica A to lead", lambda: _leader(port_a) == 1.0)
    b = setup.service(port_b, "b.log")
    _wait("replica B to serve /metrics", lambda: _leader(port_b) is not None)
    time.sleep(1.5)  # B has had at least one retry
    assert (_leader(port_a), _leader(port_b)) == (1.0, 0.0)
    assert _get(port_b, "/healthz") == (200, "ok (follower)\n")
    assert "follower: another replica is the leader" in setup.log("b.log")

    a.kill()  # kill -9: no cleanup, the lock goes with A's connection
    a.wait(10)
    took = _wait("replica B to take over", lambda: _leader(port_b) == 1.0, timeout=10)
    assert took < 5, f"takeover took {took:.1f}s with a 1s retry"
    assert "leader: this replica now runs the jobs" in setup.log("b.log")
    b.send_signal(signal.SIGTERM)
    assert b.wait(timeout=10) == 0


def test_a_killed_and_restarted_service_runs_each_slot_once(setup: Setup) -> None:
    port = _free_port()
    first = setup.service(port, "a.log")
    _wait("a heartbeat run", lambda: any(status == "ok" for status, _ in setup.runs("heartbeat")))
    first.kill()
    first.wait(10)
    port2 = _free_port()
    second = setup.service(port2, "b.log")
    _wait("the restarted service to lead", lambda: _leader(port2) == 1.0)
    time.sleep(2)  # time for a (wrong) catch-up run to happen
    second.send_signal(signal.SIGTERM)
    assert second.wait(timeout=10) == 0

    runs = setup.runs("heartbeat")
    per_slot = Counter(started.replace(second=0, microsecond=0) for status, started in runs if status == "ok")  # type: ignore[attr-defined]
    assert per_slot and all(n == 1 for n in per_slot.values()), per_slot


def test_two_concurrent_once_runs_take_exactly_one_backup(setup: Setup) -> None:
    setup.write_schedule("0 */6 * * *")  # the newest 6-hourly slot has no backup yet: due
    procs = [setup.drkit("scheduler", "run", "--once", log=f"once{i}.log") for i in range(2)]
    assert [p.wait(timeout=60) for p in procs] == [0, 0], setup.log("once0.log") + setup.log("once1.log")
    assert [status for status, _ in setup.runs("pg-backup")] == ["ok"]
    with psycopg.connect(setup.catalog_dsn) as conn:
        assert conn.execute("SELECT count(*) FROM recovery_points").fetchone() == (1,)
    backups = list((setup.root / "backups").rglob("*"))
    assert backups, "no backup in the store"
    # A third run in the same slot has nothing to do.
    third = setup.drkit("scheduler", "run", "--once", log="once2.log")
    assert third.wait(timeout=60) == 0
    assert [status for status, _ in setup.runs("pg-backup")] == ["ok"]
    assert "already done for its" in setup.log("once2.log")


def test_sigterm_during_a_job_abandons_it_cleanly_and_exits_130(setup: Setup) -> None:
    source = setup.env["APP_DATABASE_URL"]
    with psycopg.connect(source, autocommit=True) as conn:
        conn.execute("CREATE TABLE drkit_heartbeat (beat_by text PRIMARY KEY, beat_at timestamptz NOT NULL)")
    with psycopg.connect(source) as blocker:  # holds the table: the heartbeat job waits on it
        blocker.execute("LOCK TABLE drkit_heartbeat IN ACCESS EXCLUSIVE MODE")
        proc = setup.service(_free_port(), "a.log")
        _wait("the heartbeat job to start", lambda: [s for s, _ in setup.runs("heartbeat")] == ["running"])
        time.sleep(0.5)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 130, setup.log("a.log")
        blocker.rollback()
    assert [s for s, _ in setup.runs("heartbeat")] == ["interrupted"]
    assert "heartbeat local/app: interrupted" in setup.log("a.log")
