"""Restoring while decrypting: the archive layout drkit reads, and the restore built on it.

The ground truth for the layout is pg_dump itself: given a seekable output file it records
each data block's offset in the TOC. drkit's backups come through a pipe (no offsets), so
the same snapshot dumped both ways must give the same offsets from drkit's tracker.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from drkit.clock import SystemClock
from drkit.crypto import LocalKeyFile
from drkit.errors import IntegrityError
from drkit.pg.archive import BlockTracker, parse_toc
from drkit.pg.cluster import EphemeralCluster
from drkit.pg.conn import connect
from drkit.pg.engine import backup_database
from drkit.pg.manifest import BackupManifest
from drkit.pg.spool import BackgroundSpool
from drkit.pg.streamrestore import StreamingRestore
from drkit.pg.tools import PgTools
from drkit.store import FileStore
from tests.pg.pgdata import TABLES, load_sample, table_checksums

EXTRA_SQL = """
CREATE TABLE "Odd Name ☕" (id int PRIMARY KEY, v text);
INSERT INTO "Odd Name ☕" SELECT g, repeat('x', g % 50) FROM generate_series(1, 100) g;
CREATE TABLE empty_one (id int);
CREATE TABLE wide (id int PRIMARY KEY, body text NOT NULL);
-- about 14 MB of COPY text: several of the spool's 4 MiB pieces, so a loader follows it as it grows
INSERT INTO wide SELECT g, md5(g::text) || md5((g * 7)::text) FROM generate_series(1, 200000) g;
-- things that depend on a table loaded as it arrives, or that cannot be loaded that way
CREATE TABLE ident (id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY, v text,
                    doubled int GENERATED ALWAYS AS (id * 2) STORED);
INSERT INTO ident (v) SELECT 'v' || g FROM generate_series(1, 50) g;
CREATE TABLE events (at date NOT NULL, what text) PARTITION BY RANGE (at);
CREATE TABLE events_2025 PARTITION OF events FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
CREATE TABLE events_2026 PARTITION OF events FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
INSERT INTO events SELECT date '2025-06-01' + g, 'e' || g FROM generate_series(1, 400) g;
CREATE TABLE parent_t (id int, label text);
CREATE TABLE child_t (extra int) INHERITS (parent_t);
INSERT INTO parent_t VALUES (1, 'p');
INSERT INTO child_t VALUES (2, 'c', 3);
CREATE MATERIALIZED VIEW order_totals AS SELECT customer_id, sum(total) AS total FROM orders GROUP BY 1;
"""
ALL_TABLES = (
    *TABLES, '"Odd Name ☕"', "empty_one", "wide", "ident", "events_2025", "events_2026", "parent_t", "child_t",
    "order_totals",
)
DATA_BLOCKS = len(ALL_TABLES) - 1  # a materialized view is refreshed, not loaded


@pytest.fixture
def source(fresh_db: str) -> str:
    load_sample(fresh_db)
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        conn.execute(EXTRA_SQL)
        conn.execute("SELECT setval('customers_id_seq', 987654)")
    with connect(fresh_db, what="source") as conn:
        from drkit.pg.heartbeat import write_heartbeat

        write_heartbeat(conn, "test")
    return fresh_db


def _dump_both_ways(dsn: str, tools: PgTools, out: Path) -> tuple[bytes, bytes]:
    """The same snapshot dumped to a pipe (as drkit does) and to a seekable file."""
    with psycopg.connect(dsn) as conn:
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        snapshot = conn.execute("SELECT pg_export_snapshot()").fetchone()[0]  # type: ignore[index]
        base = [str(tools.path("pg_dump")), "-Fc", "-Z0", f"--snapshot={snapshot}", f"--dbname={dsn}"]
        piped = subprocess.run(base, check=True, stdout=subprocess.PIPE).stdout
        subprocess.run([*base, f"--file={out}"], check=True)
    return piped, out.read_bytes()


@pytest.mark.parametrize("piece", [3, 64, 4099, 1 << 22])
def test_the_tracker_finds_the_blocks_where_pg_dump_itself_records_them(
    piece: int, source: str, pg_tools: PgTools, tmp_path: Path
) -> None:
    piped, seekable = _dump_both_ways(source, pg_tools, tmp_path / "seekable.dump")
    truth = parse_toc(seekable)
    assert truth is not None
    expected = sorted((e.offset, e.dump_id) for e in truth.entries if e.offset is not None)
    assert len(expected) == DATA_BLOCKS

    tracker = BlockTracker()
    for i in range(0, len(piped), piece):
        tracker.feed(piped[i : i + piece])
    tracker.finish()

    assert tracker.failed is None
    assert [(b.start, b.dump_id) for b in tracker.blocks] == expected
    ends = [b.end for b in tracker.blocks]
    assert ends[:-1] == [b.start for b in tracker.blocks[1:]], "blocks are back to back"
    assert ends[-1] == len(piped), "the last block ends the archive"
    assert tracker.toc is not None and tracker.toc.end == expected[0][0]


def test_an_archive_without_tables_is_read_to_its_end_in_small_pieces(
    fresh_db: str, pg_tools: PgTools, tmp_path: Path
) -> None:
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        conn.execute("CREATE SEQUENCE lonely START 42")
    piped, _ = _dump_both_ways(fresh_db, pg_tools, tmp_path / "a.dump")
    tracker = BlockTracker()
    for i in range(0, len(piped), 5):
        tracker.feed(piped[i : i + 5])
    tracker.finish()
    assert tracker.failed is None
    assert tracker.toc is not None and tracker.toc.end == len(piped)
    assert tracker.blocks == []
    assert any(e.desc == "SEQUENCE" and e.tag == "lonely" for e in tracker.toc.entries)


def test_the_tracker_gives_up_on_a_cut_off_archive_and_on_large_objects(
    source: str, pg_tools: PgTools, tmp_path: Path
) -> None:
    piped, _ = _dump_both_ways(source, pg_tools, tmp_path / "a.dump")
    cut = BlockTracker()
    cut.feed(piped[: len(piped) - 3])
    cut.finish()
    assert cut.failed is not None and "ended inside" in cut.failed

    with psycopg.connect(source, autocommit=True) as conn:
        conn.execute("SELECT lo_from_bytea(0, '\\x00000000000001'::bytea)")
    with_lo, _ = _dump_both_ways(source, pg_tools, tmp_path / "b.dump")
    lo = BlockTracker()
    lo.feed(with_lo)
    lo.finish()
    assert lo.failed is not None and "large objects" in lo.failed


@pytest.fixture
def key(tmp_path: Path) -> LocalKeyFile:
    return LocalKeyFile(tmp_path / "keys" / "backup.key", create=True)


@pytest.fixture
def cluster(pg_tools: PgTools) -> Iterator[EphemeralCluster]:
    with EphemeralCluster(pg_tools, purpose="test streaming restore") as c:
        with psycopg.connect(c.dsn(), autocommit=True) as conn:
            conn.execute("CREATE DATABASE restored")
        yield c


def _backup(source: str, tmp_path: Path, key: LocalKeyFile, tools: PgTools) -> tuple[FileStore, BackupManifest]:
    store = FileStore(tmp_path / "store")
    manifest = backup_database(
        source, resource="app", schedule="local", store=store, wrapper=key, tools=tools, clock=SystemClock()
    )
    return store, manifest


def _stream(
    store: FileStore, manifest: BackupManifest, key: LocalKeyFile, cluster: EphemeralCluster, tools: PgTools,
    work: Path,
) -> StreamingRestore:
    work.mkdir(exist_ok=True)
    spool = BackgroundSpool(manifest, store, lambda _kind, _id: key, work)
    restore = StreamingRestore(spool, cluster.dsn("restored"), tools, jobs=2, workdir=work)
    try:
        restore.run()
    finally:
        spool.cancel()
    return restore


def _catalog_facts(dsn: str) -> tuple[object, ...]:
    with psycopg.connect(dsn) as conn:
        return (
            conn.execute("SELECT last_value FROM customers_id_seq").fetchone(),
            conn.execute(
                "SELECT conrelid::regclass::text, contype FROM pg_constraint "
                "WHERE connamespace = 'public'::regnamespace ORDER BY 1, 2"
            ).fetchall(),
            conn.execute("SELECT viewname FROM pg_views WHERE schemaname = 'public'").fetchall(),
            conn.execute(
                "SELECT attrelid::regclass::text, attname, pg_get_expr(adbin, adrelid), attidentity, attgenerated "
                "FROM pg_attribute LEFT JOIN pg_attrdef ON adrelid = attrelid AND adnum = attnum "
                "WHERE attrelid::regclass::text NOT LIKE 'pg_%' AND attnum > 0 AND NOT attisdropped "
                "AND attrelid IN (SELECT oid FROM pg_class WHERE relnamespace = 'public'::regnamespace) ORDER BY 1, 2"
            ).fetchall(),
            conn.execute(
                "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid), i.inhparent::regclass::text FROM pg_class c "
                "JOIN pg_inherits i ON i.inhrelid = c.oid ORDER BY 1"
            ).fetchall(),
            conn.execute("SELECT pg_get_serial_sequence('ident', 'id'), last_value FROM ident_id_seq").fetchone(),
        )


def test_a_streamed_restore_equals_the_source_row_for_row_with_its_sequences_and_constraints(
    source: str, key: LocalKeyFile, cluster: EphemeralCluster, pg_tools: PgTools, tmp_path: Path
) -> None:
    store, manifest = _backup(source, tmp_path, key, pg_tools)
    restore = _stream(store, manifest, key, cluster, pg_tools, tmp_path / "work")

    target = cluster.dsn("restored")
    assert table_checksums(target, ALL_TABLES) == table_checksums(source, ALL_TABLES)
    assert _catalog_facts(target) == _catalog_facts(source)
    assert restore.timings.fallback is None
    # All but the inheritance child, which needs its parent (loaded as it arrives) first.
    assert restore.timings.streamed_blocks == DATA_BLOCKS - 1
    assert list((tmp_path / "work").iterdir()) == [], "the spool, lists and logs are removed"


def test_many_small_tables_are_loaded_by_a_few_pg_restores(
    fresh_db: str, key: LocalKeyFile, cluster: EphemeralCluster, pg_tools: PgTools, tmp_path: Path
) -> None:
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        for i in range(150):
            conn.execute(f"CREATE TABLE t{i} AS SELECT g AS id, 't{i}-' || g AS v FROM generate_series(1, {i}) g")
    store, manifest = _backup(fresh_db, tmp_path, key, pg_tools)
    restore = _stream(store, manifest, key, cluster, pg_tools, tmp_path / "work")

    tables = tuple(f"t{i}" for i in range(150))
    assert table_checksums(cluster.dsn("restored"), tables) == table_checksums(fresh_db, tables)
    assert restore.timings.streamed_blocks == 150
    assert restore.timings.loaders <= 10


def test_large_objects_fall_back_to_a_whole_file_restore_and_still_arrive(
    source: str, key: LocalKeyFile, cluster: EphemeralCluster, pg_tools: PgTools, tmp_path: Path
) -> None:
    with psycopg.connect(source, autocommit=True) as conn:
        oid = conn.execute("SELECT lo_from_bytea(0, '\\xdeadbeef00'::bytea)").fetchone()[0]  # type: ignore[index]
    store, manifest = _backup(source, tmp_path, key, pg_tools)
    restore = _stream(store, manifest, key, cluster, pg_tools, tmp_path / "work")

    target = cluster.dsn("restored")
    assert restore.timings.fallback is not None and "large objects" in restore.timings.fallback
    assert table_checksums(target, ALL_TABLES) == table_checksums(source, ALL_TABLES)
    with psycopg.connect(target) as conn:
        assert conn.execute("SELECT lo_get(%s)", (oid,)).fetchone() == (b"\xde\xad\xbe\xef\x00",)


def _pg_restores_of(pid: int) -> list[int]:
    found = []
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            fields = dict(line.split(":\t", 1) for line in status.read_text().splitlines() if ":\t" in line)
        except OSError:
            continue
        if fields.get("PPid", "").strip() == str(pid) and fields.get("Name", "").strip() == "pg_restore":
            found.append(int(status.parent.name))
    return found


@pytest.mark.parametrize("damage", ["flip a byte in the middle", "cut off the end"])
def test_a_damaged_backup_fails_the_streamed_restore_and_leaves_no_pg_restore_running(
    damage: str, source: str, key: LocalKeyFile, cluster: EphemeralCluster, pg_tools: PgTools, tmp_path: Path
) -> None:
    store, manifest = _backup(source, tmp_path, key, pg_tools)
    obj = tmp_path / "store" / manifest.data_name
    data = bytearray(obj.read_bytes())
    if damage == "cut off the end":
        del data[len(data) - 100 :]
    else:
        data[len(data) // 2] ^= 0x01
    obj.write_bytes(bytes(data))

    with pytest.raises(IntegrityError):
        _stream(store, manifest, key, cluster, pg_tools, tmp_path / "work")
    assert _pg_restores_of(os.getpid()) == []
    assert not list((tmp_path / "work").glob("*.dump"))
