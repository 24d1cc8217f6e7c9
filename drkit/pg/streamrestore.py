"""Restore a backup into the drill's throwaway cluster while it is still being decrypted.

A plain `pg_restore -j` needs the whole archive in a seekable file first, so decrypting and
decompressing would be a pass of its own before the restore. Instead, as the spool file grows
(pg/spool.py, pg/archive.py):

1. once the TOC has arrived, the schema (pre-data) is restored from it, except the tables
   that will be loaded as they arrive and what depends on them;
2. each such table is created and loaded as soon as its data block starts to arrive, by a
   `pg_restore --single-transaction -L <table, its data>` reading the block from stdin, fed
   from the spool file as it grows. Creating and loading in one transaction lets a cluster
   with wal_level=minimal skip writing WAL for the data (pg_restore -j's own trick; measured
   here a fifth faster than loading a table created earlier). Up to `jobs` loads at once;
   runs of small finished blocks go together in one load;
3. once the spool has authenticated to its last chunk, everything else (what depended on
   those tables, sequences, indexes, constraints, and any data that could not be streamed,
   e.g. large objects) is restored from the complete file with `pg_restore -j`.

Only bytes of authenticated chunks ever reach pg_restore. A truncated backup is only proven
at the end, so this is for the drill's throwaway cluster, which fails and is removed if the
final proof fails; `drkit restore postgres` into a user's database authenticates everything
first (jobs/restore.py).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from drkit.errors import DrkitError
from drkit.pg.archive import Block, Toc
from drkit.pg.conn import mask_dsn, split_password
from drkit.pg.engine import pg_restore, stderr_tail, stop_process
from drkit.pg.spool import BackgroundSpool
from drkit.pg.tools import PgTools

# Finished blocks smaller than this are loaded together by one pg_restore (bounded, so that
# thousands of small tables cost a handful of processes, not thousands).
BATCH_BYTES = 64 << 20
FEED_PIECE = 1 << 20
POLL_S = 0.05


@dataclass
class Timings:
    schema_s: float = 0.0
    data_s: float = 0.0
    rest_s: float = 0.0
    streamed_blocks: int = 0
    loaders: int = 0
    fallback: str | None = None  # why streaming was not (fully) used
    # (what, seconds since the restore began): when each load started and ended, for tuning
    timeline: list[tuple[str, float]] = field(default_factory=list)


@dataclass(frozen=True)
class Plan:
    """Which TOC entries go where (see the module docstring)."""

    schema_first: tuple[int, ...]  # step 1, in TOC order
    table_of: dict[int, int]  # data entry -> its table entry, for the tables loaded as they arrive


def plan(toc: Toc) -> Plan:
    """Stream a table only when it depends on no other table with data (inheritance children,
    a column of another table's row type): those need their parent first, so they wait for step 3."""
    entries = {e.dump_id: e for e in toc.entries}
    table_of_data = {
        e.dump_id: next((d for d in e.deps if d in entries and entries[d].desc == "TABLE"), None)
        for e in toc.entries
        if e.desc == "TABLE DATA" and e.has_data
    }
    with_data = {t for t in table_of_data.values() if t is not None}
    closure: dict[int, frozenset[int]] = {}

    def deps_of(dump_id: int) -> frozenset[int]:
        """Every entry `dump_id` depends on, directly or not (pg_dump's dependencies form a DAG)."""
        if dump_id not in closure:
            closure[dump_id] = frozenset()  # guards against a cycle in a damaged TOC
            out: set[int] = set()
            for dep in entries[dump_id].deps if dump_id in entries else ():
                out.add(dep)
                out |= deps_of(dep)
            closure[dump_id] = frozenset(out)
        return closure[dump_id]

    streamed = {t for t in with_data if not (deps_of(t) & with_data)}
    section, first = "pre-data", []
    for entry in toc.entries:
        if entry.section != "none":  # ACLs and comments belong to the section before them
            section = entry.section
        if section == "pre-data" and entry.dump_id not in streamed and not (deps_of(entry.dump_id) & streamed):
            first.append(entry.dump_id)
    table_of = {d: t for d, t in table_of_data.items() if t in streamed}
    return Plan(tuple(first), table_of)


@dataclass
class _Loader:
    blocks: list[Block]
    proc: subprocess.Popen[bytes]
    errlog: Path
    feeder: threading.Thread
    feed_error: list[BaseException] = field(default_factory=list)


class StreamingRestore:
    def __init__(
        self, spool: BackgroundSpool, target_dsn: str, tools: PgTools, *, jobs: int, workdir: Path
    ) -> None:
        self.spool = spool
        self.dsn = target_dsn
        self.tools = tools
        self.jobs = max(1, jobs)
        self.workdir = workdir
        self.timings = Timings()
        self._loaders: list[_Loader] = []
        self._stop_feeding = threading.Event()
        self._t0 = time.monotonic()
        self._files: list[Path] = []  # lists, the TOC-only archive and logs: removed at the end

    def run(self) -> tuple[int, float]:
        """Restore everything; returns (archive size, seconds the spool took)."""
        try:
            toc = self._wait_for_toc()
            done: set[int] = set()  # entries restored in steps 1 and 2
            if toc is not None:
                p = plan(toc)
                head = self._read(0, toc.end)
                t = time.monotonic()
                self._pg_restore(self._write_head(head), jobs=1, only=self._list(p.schema_first))
                done.update(p.schema_first)
                self.timings.schema_s = time.monotonic() - t
                t = time.monotonic()
                done.update(self._load_data(head, p))
                self.timings.data_s = time.monotonic() - t
            else:
                self.timings.fallback = self.spool.tracker.failed or "the archive's TOC could not be read"
            path, size, spool_s = self.spool.result()  # the final proof: raises unless authentic to the end
            t = time.monotonic()
            rest = None if toc is None else self._list(e.dump_id for e in toc.entries if e.dump_id not in done)
            self._pg_restore(path, jobs=self.jobs, only=rest)
            self.timings.rest_s = time.monotonic() - t
            return size, spool_s
        finally:
            self._abort_loaders()
            for leftover in self._files:
                leftover.unlink(missing_ok=True)

    def _pg_restore(self, archive: Path, *, jobs: int, only: Path | None) -> None:
        pg_restore(archive, self.dsn, self.tools, jobs=jobs, no_owner=True, log_dir=self.workdir, only=only)

    def _mark(self, what: str) -> None:
        self.timings.timeline.append((what, round(time.monotonic() - self._t0, 2)))

    # -- the TOC and the lists --------------------------------------------------------------

    def _wait_for_toc(self) -> Toc | None:
        seen = 0
        while True:
            tracker = self.spool.tracker
            if tracker.toc is not None or tracker.failed is not None:
                return tracker.toc
            progress = self.spool.wait(seen, POLL_S)
            if progress.done:
                return tracker.toc
            seen = progress.written

    def _list(self, dump_ids: Iterable[int]) -> Path:
        """A pg_restore -L file naming these entries (pg_restore restores them in this order)."""
        fd, name = tempfile.mkstemp(prefix="drkit-list-", suffix=".txt", dir=self.workdir)
        with os.fdopen(fd, "w") as fh:
            fh.writelines(f"{i};\n" for i in dump_ids)
        self._files.append(Path(name))
        return Path(name)

    def _write_head(self, head: bytes) -> Path:
        path = self.workdir / "toc-only.dump"
        self._files.append(path)
        path.write_bytes(head)
        return path

    def _read(self, offset: int, size: int) -> bytes:
        with open(self.spool.path, "rb") as fh:
            return os.pread(fh.fileno(), size, offset)

    # -- the data, as it arrives ------------------------------------------------------------------

    def _load_data(self, head: bytes, p: Plan) -> set[int]:
        """Create and load every table of the plan as its block arrives; returns the entries done."""
        tracker = self.spool.tracker
        seen, taken, finished = 0, 0, False
        done: set[int] = set()
        while True:
            self._reap()
            if self.spool.failed():
                return done  # result() raises the spool's error
            blocks = tracker.blocks
            while len(self._loaders) < self.jobs and taken < len(blocks):
                if blocks[taken].dump_id not in p.table_of:
                    taken += 1  # restored from the complete file at the end
                    continue
                batch = self._next_batch(blocks, taken, p)
                taken += len(batch)
                self._start_loader(head, batch, p)
                done.update(x for b in batch for x in (b.dump_id, p.table_of[b.dump_id]))
            if tracker.failed is not None:
                # Something the tracker cannot follow (large objects): what it has not handed
                # out is restored from the complete file at the end.
                self.timings.fallback = tracker.failed
                while self._loaders:
                    self._reap()
                    time.sleep(POLL_S)
                return done
            if finished and taken == len(blocks) and not self._loaders:
                return done
            if finished:
                time.sleep(POLL_S)  # only the loads are left to wait for; wait() would return at once
                continue
            progress = self.spool.wait(seen, POLL_S)
            seen, finished = progress.written, progress.done

    @staticmethod
    def _next_batch(blocks: list[Block], first: int, p: Plan) -> list[Block]:
        """The block at `first`, plus the finished streamable blocks after it up to BATCH_BYTES."""
        batch = [blocks[first]]
        size = 0
        for block in blocks[first:]:
            if block.end is None or block.dump_id not in p.table_of:
                break
            if block is not blocks[first]:
                if size >= BATCH_BYTES:
                    break
                batch.append(block)
            size += block.end - block.start
        return batch

    def _start_loader(self, head: bytes, batch: list[Block], p: Plan) -> None:
        ids = [x for b in batch for x in (p.table_of[b.dump_id], b.dump_id)]
        conninfo, env = split_password(self.dsn)
        errlog = self.workdir / f"load-{batch[0].dump_id}.log"
        self._files.append(errlog)
        argv = [
            str(self.tools.path("pg_restore")), f"--dbname={conninfo}", "--single-transaction",
            "--no-owner", "--no-acl", "-L", str(self._list(ids)),
        ]  # no file name: the archive comes on stdin
        self._mark(f"start {[b.dump_id for b in batch]} at spool offset {batch[0].start}")
        with open(errlog, "wb") as err:
            proc = subprocess.Popen(
                argv, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=err, env={**os.environ, **env}
            )
        loader = _Loader(batch, proc, errlog, threading.Thread(target=lambda: None))
        loader.feeder = threading.Thread(target=self._feed, args=(loader, head), name="drkit-feed", daemon=True)
        self._loaders.append(loader)
        self.timings.loaders += 1
        self.timings.streamed_blocks += len(batch)
        loader.feeder.start()

    def _feed(self, loader: _Loader, head: bytes) -> None:
        """Write the TOC, then each block's bytes as they reach the spool file, to pg_restore.

        sendfile moves the bytes from the page cache to the pipe without a copy through Python."""
        assert loader.proc.stdin is not None
        stdin = loader.proc.stdin
        try:
            stdin.write(head)
            stdin.flush()
            out = stdin.fileno()
            with open(self.spool.path, "rb") as src:
                for block in loader.blocks:
                    pos = block.start
                    while block.end is None or pos < block.end:
                        if self._stop_feeding.is_set():
                            return
                        progress = self.spool.wait(pos, POLL_S)
                        limit = progress.written if block.end is None else min(block.end, progress.written)
                        if limit > pos:
                            pos += os.sendfile(out, src.fileno(), pos, min(FEED_PIECE, limit - pos))
                        elif progress.done:
                            return  # the spool ended early; its error is reported by result()
        except BrokenPipeError:
            pass  # pg_restore stopped reading; its exit status says why
        except BaseException as exc:
            loader.feed_error.append(exc)
        finally:
            with contextlib.suppress(OSError):
                stdin.close()

    def _reap(self) -> None:
        for loader in list(self._loaders):
            code = loader.proc.poll()
            if code is None:
                continue
            loader.feeder.join(timeout=5)
            self._loaders.remove(loader)
            self._mark(f"end {[b.dump_id for b in loader.blocks]}")
            if code != 0 or loader.feed_error:
                if self.spool.failed():
                    return  # a cut-off feed; the spool's own error is the one to report
                ids = ", ".join(str(b.dump_id) for b in loader.blocks)
                why = stderr_tail(loader.errlog) or (str(loader.feed_error[0]) if loader.feed_error else "")
                raise DrkitError(
                    f"pg_restore of data block(s) {ids} into {mask_dsn(self.dsn)} failed (exit {code}): {why}"
                )

    def _abort_loaders(self) -> None:
        self._stop_feeding.set()
        for loader in self._loaders:
            stop_process(loader.proc)
            loader.feeder.join(timeout=5)
        self._loaders.clear()
