"""The self-managed PostgreSQL engine: pg_dump -> zstd -> AES-256-GCM -> store, and back.

Backup streams: pg_dump writes an uncompressed custom-format archive to a pipe; drkit
compresses it with multi-threaded zstd (faster than pg_dump's own gzip at similar ratio)
and encrypts it in 1 MiB authenticated chunks straight into the store. Memory stays flat
whatever the database size. The dump runs on a snapshot that drkit exports itself, so the
heartbeat watermark it reads is exactly the data the dump contains.

Restore into a user's database authenticates before it acts: the object is decrypted and
decompressed into a private spool file, and only a backup that verified to its last chunk
reaches pg_restore, which then runs with parallel jobs (custom-format parallel restore needs
a seekable file, so a pipe would also cost the parallelism). A tampered, truncated or
wrong-key backup therefore never touches the target database. A drill's throwaway cluster
instead loads tables while the spool grows (pg/streamrestore.py).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import secrets
import subprocess
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, BinaryIO, cast

import zstandard

from drkit.clock import Clock
from drkit.crypto import DecryptReader, EncryptWriter, KeyWrapper
from drkit.errors import DrkitError, IntegrityError, StoreError
from drkit.pg.conn import connect, database_name, mask_dsn, split_password
from drkit.pg.heartbeat import newest_heartbeat
from drkit.pg.manifest import MANIFEST_SUFFIX, BackupManifest, data_name, manifest_name, new_backup_id
from drkit.pg.tools import PgTools, check_dump_compatible
from drkit.store import BackupStore

CHUNK = 1 << 20
WrapperResolver = Callable[[str, str], KeyWrapper]


class _HashingSink:
    """Counts and hashes what goes into the store, so the manifest can vouch for it."""

    def __init__(self, sink: BinaryIO) -> None:
        self._sink = sink
        self.sha256 = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes | memoryview) -> int:
        self.sha256.update(data)
        self.size += len(data)
        return self._sink.write(data)

    def flush(self) -> None:
        self._sink.flush()


class _HashingReader:
    def __init__(self, source: BinaryIO) -> None:
        self._source = source
        self.sha256 = hashlib.sha256()

    def read(self, n: int = -1) -> bytes:
        data = self._source.read(n)
        self.sha256.update(data)
        return data

    def readinto(self, buf: memoryview | bytearray) -> int:
        n = self._source.readinto(buf)  # type: ignore[attr-defined]
        self.sha256.update(memoryview(buf)[:n])
        return int(n)


def stderr_tail(path: Path, lines: int = 3) -> str:
    try:
        text = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return " | ".join(line.strip() for line in text[-lines:])


def stop_process(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def backup_database(
    dsn: str,
    *,
    resource: str,
    schedule: str,
    store: BackupStore,
    wrapper: KeyWrapper,
    tools: PgTools,
    clock: Clock,
    zstd_level: int = 3,
) -> BackupManifest:
    """Dump one database into `store`; returns the manifest (written last, as the commit)."""
    with connect(dsn, what=f"source database of {resource}", autocommit=False) as conn:
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        row = conn.execute(
            "SELECT pg_export_snapshot(), now(), current_setting('server_version'),"
            " current_setting('server_version_num')::int / 10000, current_database()"
        ).fetchone()
        assert row is not None
        snapshot, created_at, server_version, server_major, dbname = row
        check_dump_compatible(tools, int(server_major))
        watermark = newest_heartbeat(conn)
        backup_id = new_backup_id(resource, created_at)
        conninfo, env = split_password(dsn)
        argv = [
            str(tools.path("pg_dump")),
            "--format=custom",
            "--compress=0",
            f"--snapshot={snapshot}",
            "--no-sync",
            f"--dbname={conninfo}",
        ]
        with tempfile.NamedTemporaryFile(prefix="drkit-pg_dump-", suffix=".log") as errlog:
            proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=errlog, env={**os.environ, **env}, bufsize=0)
            try:
                dump_bytes, stored = _write_encrypted(
                    proc, Path(errlog.name), store, resource, backup_id, wrapper, zstd_level
                )
            except BaseException:
                stop_process(proc)
                raise
            finally:
                assert proc.stdout is not None
                proc.stdout.close()
        conn.rollback()
    sha, stored_bytes = stored
    manifest = BackupManifest(
        id=backup_id,
        resource=resource,
        schedule=schedule,
        created_at=created_at,
        finished_at=clock.now(),
        server_version=str(server_version),
        database=str(dbname),
        dump_bytes=dump_bytes,
        stored_bytes=stored_bytes,
        sha256=sha,
        key_kind=wrapper.kind,
        key_id=wrapper.key_id,
        watermark_at=watermark,
    )
    try:
        with store.writer(manifest.manifest_name) as fh:
            fh.write(manifest.to_json())
    except BaseException:
        # Without its manifest the data object is unusable; do not leave it behind.
        store.delete(manifest.data_name)
        raise
    return manifest


def _write_encrypted(
    proc: subprocess.Popen[bytes],
    errlog: Path,
    store: BackupStore,
    resource: str,
    backup_id: str,
    wrapper: KeyWrapper,
    zstd_level: int,
) -> tuple[int, tuple[str, int]]:
    """Stream pg_dump's stdout into the store; the object commits only if pg_dump exits 0."""
    assert proc.stdout is not None
    stdout = cast(io.RawIOBase, proc.stdout)  # bufsize=0: a raw pipe with readinto
    name = data_name(resource, backup_id)
    dump_bytes = 0
    buf = bytearray(CHUNK)
    view = memoryview(buf)
    with store.writer(name) as sink:
        hashing = _HashingSink(sink)
        enc = EncryptWriter(hashing, wrapper, chunk_size=CHUNK)  # type: ignore[arg-type]
        cctx = zstandard.ZstdCompressor(level=zstd_level, threads=-1, write_checksum=True)
        with cctx.stream_writer(cast(IO[bytes], enc), closefd=False) as comp:
            while True:
                n = stdout.readinto(view)
                if not n:
                    break
                dump_bytes += n
                comp.write(view[:n])
        enc.close()
        code = proc.wait()
        if code != 0:
            # Raising inside the writer discards the partial object.
            raise DrkitError(f"pg_dump failed (exit {code}): {stderr_tail(errlog)}")
    return dump_bytes, (hashing.sha256.hexdigest(), hashing.size)


def list_backups(store: BackupStore, resource: str) -> list[BackupManifest]:
    """Committed backups of a resource in the store (the source of truth), newest first."""
    out = []
    for name in store.list(f"{resource}/"):
        if not name.endswith(MANIFEST_SUFFIX):
            continue
        with store.open(name) as fh:
            try:
                out.append(BackupManifest.from_dict(json.loads(fh.read())))
            except (ValueError, TypeError, KeyError) as exc:
                raise StoreError(f"store {store.uri}: {name} is not a valid manifest ({exc})") from exc
    return sorted(out, key=lambda m: (m.created_at, m.id), reverse=True)


def delete_backup(store: BackupStore, manifest: BackupManifest) -> None:
    """Manifest first: a half-deleted backup must never look restorable."""
    store.delete(manifest_name(manifest.resource, manifest.id))
    store.delete(manifest.data_name)


@dataclass(frozen=True)
class RestoreStats:
    archive_bytes: int
    decrypt_s: float
    restore_s: float


class Cancelled(DrkitError):
    """A background spool was told to stop (the drill is tearing down)."""


def spool_verified(
    manifest: BackupManifest, store: BackupStore, resolve: WrapperResolver, out_path: Path,
    cancel: threading.Event | None = None,
    on_written: Callable[[bytes], None] | None = None,
) -> int:
    """Decrypt + decompress a backup into `out_path` (created 0600); returns its size. Raises
    IntegrityError unless every chunk authenticated and the stored object's sha256 matches the
    manifest, so whoever reads `out_path` after a normal return reads an authentic archive.

    `on_written(piece)` is called after each piece reaches the file. Every byte written so far
    came out of an authenticated chunk; only the end of the stream (truncation) is proven last."""
    fd = os.open(out_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with store.open(manifest.data_name) as raw, os.fdopen(fd, "wb", buffering=0) as out:
        hashing = _HashingReader(raw)
        reader = DecryptReader(hashing, resolve)  # type: ignore[arg-type]
        dctx = zstandard.ZstdDecompressor()
        written = 0
        try:
            with dctx.stream_reader(cast(IO[bytes], reader), read_size=CHUNK, closefd=False) as plain:
                while chunk := plain.read(4 * CHUNK):
                    if cancel is not None and cancel.is_set():
                        raise Cancelled(f"decrypting {manifest.id} was cancelled")
                    _write_all(out, chunk)
                    written += len(chunk)
                    if on_written is not None:
                        on_written(chunk)
            # The last chunk's authentication is what proves nothing was cut off: read to EOF.
            if reader.read(1) != b"":
                raise IntegrityError(f"backup {manifest.id} has data after its compressed stream; it was changed")
        except zstandard.ZstdError as exc:
            raise IntegrityError(f"backup {manifest.id} does not decompress ({exc}); it is damaged") from exc
        if hashing.sha256.hexdigest() != manifest.sha256:
            raise IntegrityError(
                f"backup {manifest.id}: stored object's sha256 does not match its manifest; it was changed"
            )
    return written


def _write_all(out: io.RawIOBase, data: bytes) -> None:
    """A raw file's write may be partial; readers of the spool trust its reported progress."""
    view = memoryview(data)
    while view:
        n = out.write(view)
        if not n:
            raise StoreError("could not write the spool file (disk full?)")
        view = view[n:]


@contextlib.contextmanager
def verified_archive(
    manifest: BackupManifest, store: BackupStore, resolve: WrapperResolver, spool_dir: Path
) -> Iterator[tuple[Path, int]]:
    """`spool_verified` into a private temporary file, removed when the block ends."""
    spool_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = spool_dir / f"{manifest.id}-{secrets.token_hex(4)}.dump"
    try:
        yield path, spool_verified(manifest, store, resolve, path)
    finally:
        with contextlib.suppress(OSError):
            path.unlink()


def pg_restore(
    archive: Path, target_dsn: str, tools: PgTools, *, jobs: int, no_owner: bool, log_dir: Path,
    only: Path | None = None,
) -> None:
    """Run pg_restore into an existing database; one line with pg_restore's own words on failure.

    `only`: a pg_restore -L list file naming the entries to restore."""
    conninfo, env = split_password(target_dsn)
    argv = [str(tools.path("pg_restore")), f"--dbname={conninfo}", f"--jobs={max(1, jobs)}", "--exit-on-error"]
    if no_owner:
        argv += ["--no-owner", "--no-acl"]
    if only is not None:
        argv += ["-L", str(only)]
    argv.append(str(archive))
    with tempfile.NamedTemporaryFile(prefix="drkit-pg_restore-", suffix=".log", dir=log_dir) as errlog:
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=errlog, env={**os.environ, **env})
        try:
            code = proc.wait()
        except BaseException:
            stop_process(proc)
            raise
        if code != 0:
            raise DrkitError(
                f"pg_restore into {mask_dsn(target_dsn)} failed (exit {code}): {stderr_tail(Path(errlog.name))}"
            )


def target_is_empty(dsn: str) -> bool:
    """True when the database has no user tables, views, sequences or functions."""
    with connect(dsn, what=f"restore target {database_name(dsn)}") as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%%' "
            "AND c.relkind IN ('r', 'v', 'm', 'S', 'p', 'f')"
        ).fetchone()
    return bool(row and row[0] == 0)
