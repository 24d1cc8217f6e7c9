"""Decrypting a backup in a background thread while the ephemeral cluster starts and loads it.

The spool file only grows, and every byte in it came out of an authenticated chunk. A
streaming restore (pg/streamrestore.py) reads it while it grows: `progress()` says how far
the file is written and what the BlockTracker has learnt of the archive's layout. The final
proof (the last chunk, the object's sha256) comes with `result()`; errors surface there.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path

from drkit.pg.archive import BlockTracker
from drkit.pg.engine import WrapperResolver, spool_verified
from drkit.pg.manifest import BackupManifest
from drkit.store import BackupStore


@dataclass(frozen=True)
class Progress:
    written: int  # bytes in the spool file
    done: bool  # the thread has ended (successfully or not: see result())


class BackgroundSpool:
    def __init__(self, manifest: BackupManifest, store: BackupStore, resolve: WrapperResolver, workdir: Path) -> None:
        self.path = workdir / f"{manifest.id}.dump"
        self.tracker = BlockTracker()
        self._cancel = threading.Event()
        self._changed = threading.Condition()
        self._written = 0
        self._done = False
        self._error: BaseException | None = None
        self._size = 0
        self._seconds = 0.0
        self._thread = threading.Thread(
            target=self._run, args=(manifest, store, resolve), name="drkit-spool", daemon=True
        )
        self._thread.start()

    def _run(self, manifest: BackupManifest, store: BackupStore, resolve: WrapperResolver) -> None:
        started = time.monotonic()
        try:
            self._size = spool_verified(manifest, store, resolve, self.path, self._cancel, self._on_written)
            self.tracker.finish()
        except BaseException as exc:
            self._error = exc
        self._seconds = time.monotonic() - started
        with self._changed:
            self._done = True
            self._changed.notify_all()

    def _on_written(self, piece: bytes) -> None:
        self.tracker.feed(piece)
        with self._changed:
            self._written += len(piece)
            self._changed.notify_all()

    def wait(self, seen: int, timeout: float) -> Progress:
        """Block until more than `seen` bytes are written, the spool ends, or `timeout` passes."""
        with self._changed:
            if self._written <= seen and not self._done:
                self._changed.wait(timeout)
            return Progress(self._written, self._done)

    def failed(self) -> bool:
        return self._done and self._error is not None

    def result(self) -> tuple[Path, int, float]:
        """Wait for the spool; (path, size, seconds it took) or the error it met."""
        while self._thread.is_alive():
            self._thread.join(timeout=0.5)  # short waits keep Ctrl-C and SIGTERM responsive
        if self._error is not None:
            self.path.unlink(missing_ok=True)
            raise self._error
        return self.path, self._size, self._seconds

    def cancel(self) -> None:
        self._cancel.set()
        self._thread.join(timeout=30)
        self.path.unlink(missing_ok=True)
