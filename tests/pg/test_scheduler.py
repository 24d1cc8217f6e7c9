"""The scheduler in-process against a real PostgreSQL catalog: --once runs each slot once,
the leader lock, the persistent job store and SIGHUP reconcile, alerts from real failures."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from drkit.catalog.alerts import CatalogIncidentStore
from drkit.clock import FakeClock
from drkit.pg.tools import PgTools
from drkit.scheduler.leader import PgAdvisoryLock
from drkit.scheduler.service import Service, ServiceOptions
from tests.unit.test_notify import Receiver

SCHEDULE = """\
environment: test
targets: {rto: 15m, rpo: 5m}
postgres:
  - name: app
    dsn_env: APP_DATABASE_URL
    backups: {cron: "%(cron)s", keep: {last: 5}}
    store: file://backups
    encryption: {key_file: keys/backup.key}
notify:
  - slack: {webhook_env: TEST_SLACK_HOOK}
"""
DRILL = """\
environment: test
targets: {rto: 15m, rpo: 5m}
scenario: data-corruption
schedule: "0 2 1 * *"
source:
  postgres: {schedule: local, resource: app}
verify:
  database: app
  checks:
    - {name: one, sql: "SELECT 1", expect: "== 1"}
"""
T0 = datetime(2026, 3, 10, 7, 0, tzinfo=UTC)


@pytest.fixture
def source_db(pg_dsn: str) -> Iterator[str]:
    """A second fresh database: the PostgreSQL resource being backed up (fresh_db is the catalog)."""
    name = f"drkit_src_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_dsn, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    dsn = make_conninfo(pg_dsn, dbname=name)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE t AS SELECT g AS id FROM generate_series(1, 100) g")
    yield dsn
    with psycopg.connect(pg_dsn, autocommit=True) as admin:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def _url(dsn: str) -> str:
    p = conninfo_to_dict(dsn)
    return f"postgresql://{p.get('user', 'postgres')}@{p.get('host', '127.0.0.1')}:{p.get('port', 5432)}/{p['dbname']}"


@pytest.fixture
def setup(
    tmp_path: Path, fresh_db: str, source_db: str, pg_tools: PgTools, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Path, str, Receiver]]:
    root = tmp_path / "config"
    (root / "schedules").mkdir(parents=True)
    (root / "schedules" / "local.yaml").write_text(SCHEDULE % {"cron": "0 */6 * * *"})
    receiver = Receiver()
    monkeypatch.setenv("APP_DATABASE_URL", source_db)
    monkeypatch.setenv("TEST_SLACK_HOOK", receiver.url)
    yield root, _url(fresh_db), receiver
    receiver.close()


def _service(root: Path, url: str, clock: FakeClock, **options: object) -> Service:
    return Service(root, url, ServiceOptions(metrics_port=0, **options), clock=clock)  # type: ignore[arg-type]


def _ok_runs(service: Service, kind: str) -> int:
    return sum(1 for r in service.catalog.job_runs(job=kind) if r.status == "ok")


def test_once_runs_a_due_backup_once_per_slot(setup: tuple[Path, str, Receiver]) -> None:
    root, url, _ = setup
    clock = FakeClock(T0)  # 07:00: the 06:00 slot has no backup yet
    service = _service(root, url, clock)
    try:
        assert service.run_once() == 0
        assert len(service.catalog.recovery_points(resource="app")) == 1
        clock.advance(30 * 60)
        assert service.run_once() == 0  # same slot: nothing to do
        assert len(service.catalog.recovery_points(resource="app")) == 1
        assert _ok_runs(service, "pg-backup") == 1
        clock.advance(5 * 3600)  # 12:30: the 12:00 slot is due
        assert service.run_once() == 0
        assert len(service.catalog.recovery_points(resource="app")) == 2
        assert _ok_runs(service, "pg-backup") == 2
        assert _ok_runs(service, "heartbeat") == 3  # every --once is a new minute slot here
    finally:
        service.close()


def test_once_does_nothing_while_another_instance_holds_the_leader_lock(setup: tuple[Path, str, Receiver]) -> None:
    root, url, _ = setup
    service = _service(root, url, FakeClock(T0))
    other = PgAdvisoryLock(service.engine.url)
    try:
        assert other.try_acquire()
        assert service.run_once() == 0
        assert service.catalog.recovery_points() == [] and service.catalog.job_runs() == []
        other.release()
        assert service.run_once() == 0
        assert len(service.catalog.recovery_points()) == 1
    finally:
        other.release()
        service.close()


def test_one_leader_and_a_dead_leaders_lock_passes_to_the_follower(fresh_db: str, pg_dsn: str) -> None:
    from drkit.catalog.connect import normalize_url

    url = normalize_url(_url(fresh_db))
    leader, follower = PgAdvisoryLock(url), PgAdvisoryLock(url)
    try:
        assert leader.try_acquire() and leader.still_held()
        assert not follower.try_acquire()
        # The leader's process dies: its session ends on the server (as after kill -9).
        with psycopg.connect(pg_dsn, autocommit=True) as admin:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' AND granted "
                "AND database = (SELECT oid FROM pg_database WHERE datname = %s)",
                (conninfo_to_dict(fresh_db)["dbname"],),
            )
        # pg_terminate_backend only signals the backend: the follower retries, as the service does.
        deadline = time.monotonic() + 10
        while not follower.try_acquire():
            assert time.monotonic() < deadline, "the follower never got the dead leader's lock"
            time.sleep(0.1)
        assert not leader.still_held()  # the old leader notices and steps down
    finally:
        leader.release()
        follower.release()


def test_failures_alert_once_and_the_next_success_resolves(
    setup: tuple[Path, str, Receiver], monkeypatch: pytest.MonkeyPatch, source_db: str
) -> None:
    root, url, receiver = setup
    clock = FakeClock(T0)
    monkeypatch.setenv("APP_DATABASE_URL", make_conninfo(source_db, dbname="drkit_no_such_db"))
    service = _service(root, url, clock)
    try:
        for _ in range(3):
            assert service.run_once() == 1
            clock.advance(60)
        failures = [b["text"] for b in receiver.bodies]
        # One incident per key: pg-backup and heartbeat each alert once, not three times.
        assert len(failures) == 2, failures
        assert any("pg-backup local/app FAILED" in t for t in failures)
        assert sum(1 for r in service.catalog.job_runs(job="pg-backup") if r.status == "failed") == 3
        assert 'drkit_job_runs_total{kind="pg-backup",resource="app",schedule="local",status="failed"} 3.0' in (
            service.metrics.exposition().decode()
        )
        monkeypatch.setenv("APP_DATABASE_URL", source_db)
        assert service.run_once() == 0
        resolved = [b["text"] for b in receiver.bodies[2:]]
        assert len(resolved) == 2 and all("working again" in t for t in resolved)
    finally:
        service.close()


def test_a_backup_slot_that_passes_without_a_run_is_an_incident(setup: tuple[Path, str, Receiver]) -> None:
    root, url, receiver = setup
    clock = FakeClock(T0)
    service = _service(root, url, clock)
    try:
        service.check_missed()
        assert receiver.bodies == []  # 06:00 was before the service started
        clock.advance(6 * 3600)  # 13:00: the 12:00 slot is an hour late
        service.check_missed()
        service.check_missed()
        assert len(receiver.bodies) == 1 and "MISSED" in receiver.bodies[0]["text"]
        store = CatalogIncidentStore(service.engine)
        assert [i.reason for i in store.open_incidents()] == ["missed"]
    finally:
        service.close()


def test_the_job_store_persists_and_reload_reconciles_or_keeps_the_old_jobs(
    setup: tuple[Path, str, Receiver],
) -> None:
    root, url, receiver = setup
    clock = FakeClock(T0)
    service = _service(root, url, clock)
    try:
        assert service.lock.try_acquire()
        service._become_leader()
        jobs = {j.id: j for j in service._scheduler.get_jobs()}
        assert set(jobs) == {"local:pg-backup:app", "local:heartbeat:app"}
        assert jobs["local:pg-backup:app"].trigger.cron == "0 */6 * * *"

        (root / "schedules" / "local.yaml").write_text(SCHEDULE % {"cron": "15 1 * * *"})
        (root / "drills").mkdir()
        (root / "drills" / "monthly.yaml").write_text(DRILL)
        assert service.reload()
        jobs = {j.id: j for j in service._scheduler.get_jobs()}
        assert set(jobs) == {"local:pg-backup:app", "local:heartbeat:app", "local:drill:monthly"}
        assert jobs["local:pg-backup:app"].trigger.cron == "15 1 * * *"

        (root / "schedules" / "local.yaml").write_text("environment: [broken\n")
        assert not service.reload()
        assert {j.id for j in service._scheduler.get_jobs()} == set(jobs)  # the old jobs stay
        assert any("configuration reload failed" in b["text"] for b in receiver.bodies)
        service._step_down()
    finally:
        service.close()

    (root / "schedules" / "local.yaml").write_text(SCHEDULE % {"cron": "15 1 * * *"})
    again = _service(root, url, clock)
    try:
        assert again.lock.try_acquire()
        again._become_leader()  # a restarted leader finds the jobs already stored
        assert {j.id for j in again._scheduler.get_jobs()} == set(jobs)
        again._step_down()
    finally:
        again.close()
    with psycopg.connect(url) as conn:
        stored = conn.execute("SELECT count(*) FROM drkit_apscheduler_jobs").fetchone()
    assert stored == (3,)


def test_metrics_report_recovery_points_and_rpo_exposure(setup: tuple[Path, str, Receiver]) -> None:
    root, url, _ = setup
    # Real time here: the backup's data watermark is the source server's now() (its heartbeat).
    clock = FakeClock(datetime.now(UTC))
    service = _service(root, url, clock)
    try:
        service.run_once()
        clock.advance(600)
        service.metrics.set_recovery_points(service.catalog.recovery_points(), clock.now())
        text = service.metrics.exposition().decode()
        assert 'drkit_recovery_points{kind="dump",region="local",resource="app"} 1.0' in text
        exposure = next(line for line in text.splitlines() if line.startswith("drkit_rpo_exposure_seconds{"))
        assert 590 <= float(exposure.split()[-1]) < 660  # the watermark is a second or so after the start
    finally:
        service.close()
