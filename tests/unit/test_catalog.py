"""The catalog against SQLite: records round-trip, ordering, upserts, migrations, refusals.

`CatalogContract` is the backend-independent suite; tests/pg/test_catalog_pg.py runs the
same class against a real PostgreSQL database. Each test gets a `url` of an empty database.
"""

from __future__ import annotations

import getpass
import os
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from drkit.catalog import (
    AuditEventRecord,
    Catalog,
    DrillRunRecord,
    JobRunRecord,
    RecoveryPointRecord,
    default_catalog_url,
)
from drkit.catalog.connect import create_catalog_engine, normalize_url
from drkit.catalog.migrate import VERSION_TABLE, head_revision
from drkit.catalog.models import Base
from drkit.clock import FakeClock
from drkit.errors import DrkitError, UsageError

REPO = Path(__file__).resolve().parents[2]
T0 = datetime(2026, 11, 29, 8, 55, 0, 123456, tzinfo=UTC)
PLUS2 = timezone(timedelta(hours=2))
CATALOG_TABLES = {"recovery_points", "job_runs", "drill_runs", "audit_log"}


def rp(id: str, created_at: datetime, **kw: Any) -> RecoveryPointRecord:
    fields: dict[str, Any] = {
        "resource": "app", "schedule": "local", "engine": "postgres", "kind": "dump",
        "location": f"file:///backups/{id}.drkit",
    }  # fmt: skip
    fields.update(kw)
    return RecoveryPointRecord(id=id, created_at=created_at, **fields)


def drill(id: str, started_at: datetime, **kw: Any) -> DrillRunRecord:
    fields: dict[str, Any] = {
        "drill": "quarterly-production", "environment": "production", "engine": "rds",
        "scenario": "region-loss", "status": "passed",
    }  # fmt: skip
    fields.update(kw)
    return DrillRunRecord(id=id, started_at=started_at, **fields)


def plain_engine(url: str) -> sa.Engine:
    """An engine that is not the catalog's: how a test looks at the database from outside."""
    parsed = normalize_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database:
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    return sa.create_engine(parsed)


def snapshot(url: str) -> dict[str, Any]:
    """Every table's name, columns and rows: to prove that something changed nothing."""
    engine = plain_engine(url)
    try:
        insp = sa.inspect(engine)
        out: dict[str, Any] = {}
        with engine.connect() as conn:
            for table in sorted(insp.get_table_names()):
                cols = [c["name"] for c in insp.get_columns(table)]
                rows = conn.execute(sa.text(f'SELECT * FROM "{table}" ORDER BY 1')).all()
                out[table] = (cols, [tuple(r) for r in rows])
        return out
    finally:
        engine.dispose()


class CatalogContract:
    """What every catalog backend must do. Subclasses provide the `url` fixture (an empty database)."""

    @pytest.fixture
    def clock(self) -> FakeClock:
        return FakeClock(T0)

    @pytest.fixture
    def catalog(self, url: str, clock: FakeClock) -> Iterator[Catalog]:
        cat = Catalog.open(url, clock=clock)
        yield cat
        cat.close()

    # -- migrations ---------------------------------------------------------------------

    def test_opening_an_empty_database_creates_every_table_and_stamps_head(self, url: str) -> None:
        Catalog.open(url).close()
        engine = plain_engine(url)
        try:
            assert CATALOG_TABLES | {VERSION_TABLE} <= set(sa.inspect(engine).get_table_names())
            with engine.connect() as conn:
                stamped = conn.execute(sa.text(f"SELECT version_num FROM {VERSION_TABLE}")).scalars().all()
        finally:
            engine.dispose()
        assert stamped == [head_revision()]

    def test_migrations_produce_exactly_the_models(self, url: str) -> None:
        # If models.py and the migrations drift apart, autogenerate sees a difference.
        Catalog.open(url).close()
        engine = plain_engine(url)
        try:
            with engine.connect() as conn:
                ctx = MigrationContext.configure(conn, opts={"compare_type": True})
                diffs = compare_metadata(ctx, Base.metadata)
        finally:
            engine.dispose()
        diffs = [d for d in diffs if not (d[0] == "remove_table" and d[1].name == VERSION_TABLE)]
        assert diffs == []

    def test_reopening_keeps_every_row(self, url: str, clock: FakeClock) -> None:
        first = Catalog.open(url, clock=clock)
        first.add_recovery_point(rp("app-1", T0))
        job = first.start_job("backup", "local", "app")
        first.finish_job(job, "ok")
        first.record_drill(drill("d-1", T0))
        first.audit("delete", "app-0")
        first.close()

        again = Catalog.open(url, clock=clock)
        try:
            assert [r.id for r in again.recovery_points()] == ["app-1"]
            assert [(j.id, j.status) for j in again.job_runs()] == [(job, "ok")]
            assert [d.id for d in again.drill_runs()] == ["d-1"]
            assert [(e.action, e.target) for e in again.audit_events()] == [("delete", "app-0")]
        finally:
            again.close()

    def test_a_catalog_from_a_newer_drkit_is_refused_and_left_unchanged(self, url: str) -> None:
        with Catalog.open(url) as cat:
            cat.add_recovery_point(rp("app-1", T0))
        engine = plain_engine(url)
        try:
            with engine.begin() as conn:
                conn.execute(sa.text(f"UPDATE {VERSION_TABLE} SET version_num = '9999'"))
        finally:
            engine.dispose()
        before = snapshot(url)

        with pytest.raises(DrkitError) as err:
            Catalog.open(url)

        message = str(err.value)
        assert "was written by a newer drkit (revision 9999); upgrade drkit" in message
        assert message.startswith("catalog at ")
        assert "\n" not in message
        assert snapshot(url) == before

    def test_a_failed_upgrade_leaves_no_half_built_catalog(self, url: str) -> None:
        # A database that already holds an unrelated `audit_log` table: the upgrade fails
        # part-way and must roll back completely (transactional DDL), leaving it as it was.
        engine = plain_engine(url)
        try:
            with engine.begin() as conn:
                conn.execute(sa.text("CREATE TABLE audit_log (whatever TEXT)"))
                conn.execute(sa.text("INSERT INTO audit_log VALUES ('theirs')"))
        finally:
            engine.dispose()
        before = snapshot(url)

        with pytest.raises(DrkitError) as err:
            Catalog.open(url)

        assert "audit_log" in str(err.value) and "\n" not in str(err.value)
        assert snapshot(url) == before

    # -- recovery points ----------------------------------------------------------------

    def test_recovery_point_round_trips_every_field_as_aware_utc(self, catalog: Catalog) -> None:
        written = RecoveryPointRecord(
            id="orders-20261129T085500Z-3f2a",
            resource="orders",
            schedule="production",
            engine="rds",
            kind="copy",
            created_at=datetime(2026, 11, 29, 10, 55, 0, 654321, tzinfo=PLUS2),
            region="us-west-2",
            location="arn:aws:rds:us-west-2:123456789012:snapshot:orders-20261129t085500z-3f2a",
            size_bytes=5 * 1024**4,  # 5 TiB: needs a BigInteger
            encrypted=True,
            key_id="arn:aws:kms:us-west-2:123456789012:key/abcd",
            status="available",
            watermark_at=datetime(2026, 11, 29, 8, 54, 58, tzinfo=UTC),
            manifest={"chunks": [1, 2, 3], "sha256": "ab" * 32, "nested": {"ok": True}},
            deleted_at=None,
        )
        catalog.add_recovery_point(written)

        got = catalog.get_recovery_point(written.id)

        assert got == written
        assert got is not None
        assert got.created_at == datetime(2026, 11, 29, 8, 55, 0, 654321, tzinfo=UTC)
        for stamp in (got.created_at, got.watermark_at):
            assert stamp is not None and stamp.tzinfo is not None and stamp.utcoffset() == timedelta(0)
        assert catalog.get_recovery_point("no-such-id") is None

    def test_recovery_points_are_newest_first(self, catalog: Catalog) -> None:
        for i, hours in enumerate([3, 1, 5, 2]):
            catalog.add_recovery_point(rp(f"app-{i}", T0 + timedelta(hours=hours)))
        # The same instant written in another zone must sort by instant, not by its text.
        catalog.add_recovery_point(rp("app-z", (T0 + timedelta(hours=4)).astimezone(PLUS2)))

        ids = [r.id for r in catalog.recovery_points()]

        assert ids == ["app-2", "app-z", "app-0", "app-3", "app-1"]

    def test_add_recovery_point_upserts_by_id(self, catalog: Catalog) -> None:
        catalog.add_recovery_point(rp("app-1", T0, status="creating", size_bytes=None))
        catalog.add_recovery_point(rp("app-1", T0, status="available", size_bytes=4096, encrypted=True))

        points = catalog.recovery_points()

        assert len(points) == 1
        assert (points[0].status, points[0].size_bytes, points[0].encrypted) == ("available", 4096, True)

    def test_recovery_point_filters(self, catalog: Catalog) -> None:
        catalog.add_recovery_point(rp("a1", T0, resource="app", schedule="local", region=None))
        catalog.add_recovery_point(rp("o1", T0, resource="orders", schedule="prod", region="us-east-1"))
        catalog.add_recovery_point(rp("o2", T0, resource="orders", schedule="prod", region="us-west-2"))
        catalog.add_recovery_point(rp("o3", T0, resource="orders", schedule="other", region="us-west-2"))

        def ids(**kw: Any) -> set[str]:
            return {r.id for r in catalog.recovery_points(**kw)}

        assert ids(resource="orders") == {"o1", "o2", "o3"}
        assert ids(schedule="prod") == {"o1", "o2"}
        assert ids(region="us-west-2") == {"o2", "o3"}
        assert ids(resource="orders", schedule="prod", region="us-west-2") == {"o2"}
        assert ids(resource="nothing") == set()
        assert ids() == {"a1", "o1", "o2", "o3"}

    def test_deleted_points_are_hidden_unless_asked_for(self, catalog: Catalog) -> None:
        catalog.add_recovery_point(rp("keep", T0))
        catalog.add_recovery_point(rp("gone", T0 - timedelta(days=1)))
        at = (T0 + timedelta(minutes=5)).astimezone(PLUS2)

        catalog.mark_deleted("gone", at)
        catalog.mark_deleted("never-recorded", at)  # the cloud is the truth: no error

        assert [r.id for r in catalog.recovery_points()] == ["keep"]
        both = catalog.recovery_points(include_deleted=True)
        assert [r.id for r in both] == ["keep", "gone"]
        gone = both[1]
        assert gone.status == "deleted"
        assert (
            gone.deleted_at == at
            and gone.deleted_at is not None
            and gone.deleted_at.utcoffset() == timedelta(0)
        )
        assert catalog.get_recovery_point("never-recorded") is None

    def test_naive_timestamps_are_refused_and_nothing_is_written(self, catalog: Catalog) -> None:
        with pytest.raises(ValueError, match="timezone-aware"):
            catalog.add_recovery_point(rp("naive", datetime(2026, 11, 29, 8, 55)))
        with pytest.raises(ValueError, match="timezone-aware"):
            catalog.record_drill(drill("naive", T0, finished_at=datetime(2026, 11, 29, 9, 0)))
        assert catalog.recovery_points(include_deleted=True) == []
        assert catalog.drill_runs() == []

    def test_unknown_enumerations_are_refused(self, catalog: Catalog) -> None:
        with pytest.raises(ValueError, match="kind"):
            catalog.add_recovery_point(rp("x", T0, kind="tarball"))
        with pytest.raises(ValueError, match="status"):
            catalog.record_drill(drill("x", T0, status="great"))
        assert catalog.recovery_points() == []

    # -- job runs -----------------------------------------------------------------------

    def test_job_run_round_trip(self, catalog: Catalog, clock: FakeClock) -> None:
        job_id = catalog.start_job("backup", "local", "app")
        running = catalog.job_runs()[0]
        assert running == JobRunRecord(
            id=job_id, job="backup", schedule="local", resource="app", started_at=T0, finished_at=None,
            status="running", detail="", host=socket.gethostname(), pid=os.getpid(),
        )  # fmt: skip

        clock.advance(42.5)
        catalog.finish_job(job_id, "failed", "pg_dump: connection refused")

        done = catalog.job_runs()[0]
        assert (done.status, done.detail) == ("failed", "pg_dump: connection refused")
        assert done.finished_at == T0 + timedelta(seconds=42.5)
        assert done.started_at.utcoffset() == timedelta(0)
        assert done.finished_at is not None and done.finished_at.utcoffset() == timedelta(0)

    def test_job_runs_newest_first_filtered_and_limited(self, catalog: Catalog, clock: FakeClock) -> None:
        started = []
        for job, resource in [("backup", "app"), ("prune", "app"), ("backup", "orders"), ("backup", "app")]:
            started.append(catalog.start_job(job, "local", resource))
            clock.advance(60)

        assert [j.id for j in catalog.job_runs()] == started[::-1]
        assert [j.id for j in catalog.job_runs(job="backup")] == [started[3], started[2], started[0]]
        assert [j.id for j in catalog.job_runs(resource="app")] == [started[3], started[1], started[0]]
        assert [j.id for j in catalog.job_runs(job="backup", resource="app", limit=1)] == [started[3]]
        assert catalog.job_runs(limit=0) == []

    def test_finishing_a_job_the_catalog_never_started_is_an_error(self, catalog: Catalog) -> None:
        with pytest.raises(DrkitError, match="no job run 4242"):
            catalog.finish_job(4242, "ok")
        job_id = catalog.start_job("backup", None, None)
        with pytest.raises(ValueError, match="status"):
            catalog.finish_job(job_id, "running")
        assert catalog.job_runs()[0].status == "running"

    # -- drills -------------------------------------------------------------------------

    def test_drill_round_trip_with_the_whole_report(self, catalog: Catalog) -> None:
        report = {
            "schema": "drkit.drill-report/1",
            "drill": "quarterly-production",
            "rto": {"target_s": 3600, "achieved_s": 812.4, "met": True},
            "rpo": {"target_s": 900, "achieved_s": 301.0, "met": True, "method": "data"},
            "checks": [{"name": "orders present", "passed": True, "expected": ">= 1000", "actual": 1204}],
            "resources": {"created": ["sg-1"], "deleted": ["sg-1"], "leaked": []},
        }
        written = drill(
            "quarterly-production-20261129T085500Z",
            T0.astimezone(PLUS2),
            finished_at=T0 + timedelta(minutes=14),
            incident_at=T0 - timedelta(seconds=1),
            rto_target_s=3600.0,
            rto_achieved_s=812.4,
            rpo_target_s=900.0,
            rpo_achieved_s=301.0,
            rpo_method="data",
            report_path="reports/quarterly-production/2026-11-29T08-55-00Z.json",
            report=report,
        )
        catalog.record_drill(written)

        [got] = catalog.drill_runs()

        assert got == written
        assert got.report == report
        for stamp in (got.started_at, got.finished_at, got.incident_at):
            assert stamp is not None and stamp.utcoffset() == timedelta(0)

    def test_record_drill_upserts_running_into_finished(self, catalog: Catalog) -> None:
        catalog.record_drill(drill("d-1", T0, status="running"))
        catalog.record_drill(
            drill(
                "d-1", T0, status="targets_missed", finished_at=T0 + timedelta(hours=2), rto_achieved_s=7200.0
            )
        )

        runs = catalog.drill_runs()

        assert [(r.id, r.status, r.rto_achieved_s) for r in runs] == [("d-1", "targets_missed", 7200.0)]

    def test_drill_runs_newest_first_filtered_and_limited(self, catalog: Catalog) -> None:
        catalog.record_drill(drill("q-1", T0, drill="quarterly"))
        catalog.record_drill(drill("m-1", T0 + timedelta(days=1), drill="monthly"))
        catalog.record_drill(drill("q-2", T0 + timedelta(days=90), drill="quarterly"))
        catalog.record_drill(drill("q-0", T0 - timedelta(days=90), drill="quarterly"))

        assert [r.id for r in catalog.drill_runs()] == ["q-2", "m-1", "q-1", "q-0"]
        assert [r.id for r in catalog.drill_runs("quarterly")] == ["q-2", "q-1", "q-0"]
        assert [r.id for r in catalog.drill_runs("quarterly", limit=2)] == ["q-2", "q-1"]
        assert catalog.drill_runs("nothing") == []

    # -- audit --------------------------------------------------------------------------

    def test_audit_records_who_what_and_when_newest_first(self, catalog: Catalog, clock: FakeClock) -> None:
        catalog.audit("prune", "app-20261101T000000Z-0001", {"schedule": "local", "apply": True})
        clock.advance(30)
        catalog.audit("restore", "orders-restored")

        events = catalog.audit_events()

        actor = f"{getpass.getuser()}@{socket.gethostname()}"
        assert [(e.action, e.target, e.detail, e.at, e.actor) for e in events] == [
            ("restore", "orders-restored", {}, T0 + timedelta(seconds=30), actor),
            ("prune", "app-20261101T000000Z-0001", {"schedule": "local", "apply": True}, T0, actor),
        ]
        assert all(isinstance(e, AuditEventRecord) and e.at.utcoffset() == timedelta(0) for e in events)
        assert [e.action for e in catalog.audit_events(limit=1)] == ["restore"]


# ---------------------------------------------------------------------------------------------
# SQLite


class TestCatalogSqlite(CatalogContract):
    @pytest.fixture
    def url(self, tmp_path: Path) -> str:
        return f"sqlite:///{tmp_path / 'state' / 'catalog.db'}"


def test_default_url_is_a_file_in_the_user_state_dir_created_on_open(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg-state"))
    expected = tmp_path / "xdg-state" / "drkit" / "catalog.db"

    assert default_catalog_url() == f"sqlite:///{expected}"
    with Catalog.open() as cat:
        cat.audit("test", "default-url")
    assert expected.is_file()


def test_sqlite_runs_in_wal_mode_with_foreign_keys_and_a_busy_timeout(tmp_path: Path) -> None:
    path = tmp_path / "catalog.db"
    Catalog.open(f"sqlite:///{path}").close()
    with sqlite3.connect(path) as raw:  # WAL is stored in the file itself
        assert raw.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    engine = create_catalog_engine(normalize_url(f"sqlite:///{path}"))
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert (conn.exec_driver_sql("PRAGMA busy_timeout").scalar() or 0) >= 5000
    finally:
        engine.dispose()


def test_a_writer_waits_for_another_process_lock_instead_of_failing(tmp_path: Path) -> None:
    path = tmp_path / "catalog.db"
    with Catalog.open(f"sqlite:///{path}") as cat:
        blocker = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        blocker.execute("BEGIN IMMEDIATE")  # another process holds the write lock...
        threading.Timer(1.0, lambda: blocker.execute("COMMIT")).start()  # ...for one second
        t = time.monotonic()
        cat.add_recovery_point(rp("app-1", T0))
        waited = time.monotonic() - t
        blocker.close()
        assert waited >= 0.8
        assert [r.id for r in cat.recovery_points()] == ["app-1"]


def test_two_processes_opening_a_fresh_sqlite_catalog_both_succeed(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'race' / 'catalog.db'}"
    # Four at once: the WAL switch on a fresh file used to fail one of them now and then.
    results = open_concurrently(url, tmp_path, processes=4)
    assert results == [(0, "opened")] * 4
    assert set(snapshot(url)[VERSION_TABLE][1]) == {(head_revision(),)}


def open_concurrently(url: str, tmp_path: Path, processes: int) -> list[tuple[int, str]]:
    """Start `processes` Pythons that each open the catalog the instant a go-file appears.

    Each child says it is ready once drkit is imported (the slow part), so that the opens
    themselves really start together. Returns (exit status, last line of output) per child.
    """
    go = tmp_path / "go"
    script = (
        "import sys, time, pathlib\n"
        "from drkit.catalog import Catalog\n"
        "pathlib.Path(sys.argv[3]).touch()\n"
        "go = pathlib.Path(sys.argv[2])\n"
        "while not go.exists(): time.sleep(0.0005)\n"
        "Catalog.open(sys.argv[1]).close()\n"
        "print('opened')\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    ready = [tmp_path / f"ready-{i}" for i in range(processes)]
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script, url, str(go), str(flag)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for flag in ready
    ]
    deadline = time.monotonic() + 60
    while not all(flag.exists() for flag in ready) and time.monotonic() < deadline:
        time.sleep(0.01)
    go.touch()
    out = []
    for p in procs:
        stdout, stderr = p.communicate(timeout=120)
        lines = (stdout.strip() or stderr.strip() or "(no output)").splitlines()
        out.append((p.returncode, lines[-1]))
    return out


# ---------------------------------------------------------------------------------------------
# URLs and errors (no database needed)


@pytest.mark.parametrize(
    ("given", "used"),
    [
        ("postgresql://u@db.example/cat", "postgresql+psycopg://u@db.example/cat"),
        ("postgres://u@db.example/cat", "postgresql+psycopg://u@db.example/cat"),
        ("postgresql+psycopg://u@db.example/cat", "postgresql+psycopg://u@db.example/cat"),
        ("sqlite:////var/lib/drkit/catalog.db", "sqlite:////var/lib/drkit/catalog.db"),
    ],
)
def test_postgresql_urls_use_psycopg_3(given: str, used: str) -> None:
    assert normalize_url(given).render_as_string(hide_password=False) == used


@pytest.mark.parametrize(
    "url", ["postgresql+psycopg2://u@h/db", "mysql://u@h/db", "not a url", "sqlite+aiosqlite:///x.db"]
)
def test_unsupported_urls_are_usage_errors(url: str) -> None:
    with pytest.raises(UsageError) as err:
        Catalog.open(url)
    assert "\n" not in str(err.value)


def test_an_unreachable_postgresql_is_one_line_naming_the_masked_url() -> None:
    with pytest.raises(DrkitError) as err:
        Catalog.open("postgresql://drkit:s3cr3t-pw@127.0.0.1:1/catalog")
    message = str(err.value)
    assert "postgresql+psycopg://drkit:***@127.0.0.1:1/catalog" in message
    assert "s3cr3t-pw" not in message
    assert "\n" not in message
    assert "--catalog" in message and "DRKIT_CATALOG" in message


def test_an_unusable_sqlite_path_is_one_line_naming_the_url(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    url = f"sqlite:///{blocker / 'catalog.db'}"
    with pytest.raises(DrkitError) as err:
        Catalog.open(url)
    assert url in str(err.value) and "\n" not in str(err.value)


def test_records_serialize_to_the_contract_json_shape() -> None:
    point = rp("app-1", T0, region="us-east-1", size_bytes=10, encrypted=True, key_id="k")
    data = point.to_dict()
    assert {
        "id",
        "resource",
        "kind",
        "created_at",
        "region",
        "encrypted",
        "key_id",
        "size_bytes",
        "status",
    } <= set(data)
    assert data["created_at"] == "2026-11-29T08:55:00.123456Z"
    assert data["deleted_at"] is None
