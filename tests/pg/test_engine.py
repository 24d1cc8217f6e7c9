"""The PostgreSQL engine against a real server: backup, restore, and every way a backup can be bad."""

from __future__ import annotations

import contextlib
import hashlib
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from drkit.clock import SystemClock
from drkit.crypto import LocalKeyFile
from drkit.errors import IntegrityError, SourceUnreachable, StoreError
from drkit.pg.conn import connect
from drkit.pg.engine import backup_database, list_backups, pg_restore, target_is_empty, verified_archive
from drkit.pg.heartbeat import write_heartbeat
from drkit.pg.tools import PgTools
from drkit.store import FileStore
from tests.pg.pgdata import load_sample, table_checksums


@pytest.fixture
def source(fresh_db: str) -> str:
    load_sample(fresh_db)
    with connect(fresh_db, what="source") as conn:
        write_heartbeat(conn, "test")
    return fresh_db


@pytest.fixture
def key(tmp_path: Path) -> LocalKeyFile:
    return LocalKeyFile(tmp_path / "keys" / "backup.key", create=True)


def _backup(source: str, store: FileStore, key: LocalKeyFile, tools: PgTools):  # type: ignore[no-untyped-def]
    return backup_database(
        source, resource="app", schedule="local", store=store, wrapper=key, tools=tools, clock=SystemClock()
    )


def _restore(manifest, store, key, target: str, tools: PgTools, work: Path) -> None:  # type: ignore[no-untyped-def]
    with verified_archive(manifest, store, key, work) as (archive, _size):
        pg_restore(archive, target, tools, jobs=2, no_owner=True, log_dir=work)


@pytest.fixture
def target(pg_dsn: str) -> Iterator[str]:
    name = "drkit_t_target"
    with psycopg.connect(pg_dsn, autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.execute(f"CREATE DATABASE {name}")
    yield psycopg.conninfo.make_conninfo(pg_dsn, dbname=name)
    with psycopg.connect(pg_dsn, autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def test_round_trip_restores_every_row_byte_for_byte(
    source: str, target: str, key: LocalKeyFile, pg_tools: PgTools, tmp_path: Path
) -> None:
    store = FileStore(tmp_path / "store")
    manifest = _backup(source, store, key, pg_tools)
    _restore(manifest, store, key, target, pg_tools, tmp_path / "work")
    assert table_checksums(target) == table_checksums(source)
    with psycopg.connect(target) as conn:
        assert conn.execute("SELECT count(*) FROM big_customers").fetchone() == (
            psycopg.connect(source).execute("SELECT count(*) FROM big_customers").fetchone()
        )
    assert not list((tmp_path / "work").glob("*.dump")), "the decrypted spool must be removed"


def test_manifest_vouches_for_the_stored_bytes_and_the_data_watermark(
    source: str, key: LocalKeyFile, pg_tools: PgTools, tmp_path: Path
) -> None:
    store = FileStore(tmp_path / "store")
    with connect(source, what="source") as conn:
        beat = write_heartbeat(conn, "test")
    manifest = _backup(source, store, key, pg_tools)
    stored = (tmp_path / "store" / manifest.data_name).read_bytes()
    assert hashlib.sha256(stored).hexdigest() == manifest.sha256
    assert len(stored) == manifest.stored_bytes
    assert manifest.watermark_at == beat
    assert manifest.key_id == key.key_id and manifest.key_kind == "file"
    assert manifest.id.startswith("app-") and manifest.server_version.startswith(str(pg_tools.version))
    # the stored object is not the plaintext dump: table contents must not be readable in it
    assert b"customer 1234" not in stored
    on_disk = json.loads((tmp_path / "store" / manifest.manifest_name).read_text())
    assert on_disk["sha256"] == manifest.sha256
    assert list_backups(store, "app") == [manifest]


def test_the_watermark_is_the_dump_snapshot_not_later_writes(
    source: str, key: LocalKeyFile, pg_tools: PgTools, tmp_path: Path, target: str
) -> None:
    """A heartbeat written after the dump started must not be in the backup nor in its watermark."""
    store = FileStore(tmp_path / "store")
    manifest = _backup(source, store, key, pg_tools)
    with connect(source, what="source") as conn:
        later = write_heartbeat(conn, "test")
    assert manifest.watermark_at is not None and manifest.watermark_at < later
    _restore(manifest, store, key, target, pg_tools, tmp_path / "work")
    with psycopg.connect(target) as conn:
        restored = conn.execute("SELECT max(beat_at) FROM drkit_heartbeat").fetchone()
    assert restored == (manifest.watermark_at,)


def _corrupt(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("where", ["header", "middle", "last byte"])
def test_a_tampered_backup_is_refused_and_the_target_stays_empty(
    where: str, source: str, target: str, key: LocalKeyFile, pg_tools: PgTools, tmp_path: Path
) -> None:
    store = FileStore(tmp_path / "store")
    manifest = _backup(source, store, key, pg_tools)
    obj = tmp_path / "store" / manifest.data_name
    size = obj.stat().st_size
    _corrupt(obj, {"header": 12, "middle": size // 2, "last byte": size - 1}[where])
    with pytest.raises(IntegrityError):
        _restore(manifest, store, key, target, pg_tools, tmp_path / "work")
    assert target_is_empty(target)
    assert not list((tmp_path / "work").glob("*.dump"))


@pytest.mark.parametrize("keep_fraction", [0.0, 0.5, 0.999])
def test_a_truncated_backup_is_refused(
    keep_fraction: float, source: str, target: str, key: LocalKeyFile, pg_tools: PgTools, tmp_path: Path
) -> None:
    store = FileStore(tmp_path / "store")
    manifest = _backup(source, store, key, pg_tools)
    obj = tmp_path / "store" / manifest.data_name
    data = obj.read_bytes()
    obj.write_bytes(data[: int(len(data) * keep_fraction)])
    with pytest.raises(IntegrityError):
        _restore(manifest, store, key, target, pg_tools, tmp_path / "work")
    assert target_is_empty(target)


def test_the_wrong_key_is_refused(
    source: str, target: str, key: LocalKeyFile, pg_tools: PgTools, tmp_path: Path
) -> None:
    store = FileStore(tmp_path / "store")
    manifest = _backup(source, store, key, pg_tools)
    other = LocalKeyFile(tmp_path / "other.key", create=True)
    with pytest.raises(IntegrityError, match="wrong key"):
        _restore(manifest, store, other, target, pg_tools, tmp_path / "work")
    assert target_is_empty(target)


def test_an_unreachable_source_writes_nothing(key: LocalKeyFile, pg_tools: PgTools, tmp_path: Path) -> None:
    store = FileStore(tmp_path / "store")
    with pytest.raises(SourceUnreachable, match="cannot connect"):
        _backup("host=127.0.0.1 port=1 dbname=nope user=postgres connect_timeout=2", store, key, pg_tools)
    assert store.list() == []


@contextlib.contextmanager
def _tiny_filesystem(path: Path, size: str) -> Iterator[Path]:
    path.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs to simulate a full disk: {proc.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def test_a_full_disk_fails_cleanly_and_keeps_the_older_backup(
    source: str, key: LocalKeyFile, pg_tools: PgTools, tmp_path: Path
) -> None:
    sizing = _backup(source, FileStore(tmp_path / "sizing"), key, pg_tools)
    room = (sizing.stored_bytes * 3 // 2 // 4096 + 4) * 4096  # one backup fits, a much larger one does not
    with _tiny_filesystem(tmp_path / "small", str(room)) as mount:
        store = FileStore(mount / "store")
        older = _backup(source, store, key, pg_tools)
        with psycopg.connect(source, autocommit=True) as conn:
            conn.execute(
                "CREATE TABLE filler AS SELECT g, decode(md5(g::text) || md5((g + 1)::text), 'hex') AS b "
                "FROM generate_series(1, 100000) g"
            )
        with pytest.raises(StoreError, match="full"):
            _backup(source, store, key, pg_tools)
        assert list_backups(store, "app") == [older]
        assert store.partials() == []
        data = (mount / "store" / older.data_name).read_bytes()
        assert hashlib.sha256(data).hexdigest() == older.sha256
