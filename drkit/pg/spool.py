"""Decrypting a backup in a background thread while the ephemeral cluster starts.

Both are needed before pg_restore can run and neither needs the other, so a drill does
them side by side. The spool file is only handed over once it has authenticated to its
last chunk (see engine.spool_verified); errors surface in the step that waits for it.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

from drkit.pg.engine import WrapperResolver, spool_verified
from drkit.pg.manifest import BackupManifest
from drkit.store import BackupStore


class BackgroundSpool:
    def __init__(self, manifest: BackupManifest, store: BackupStore, resolve: WrapperResolver, workdir: Path) -> None:
        self.path = workdir / f"{manifest.id}.dump"
        self._cancel = threading.Event()
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
            self._size = spool_verified(manifest, store, resolve, self.path, self._cancel)
        except BaseException as exc:
            self._error = exc
            self.path.unlink(missing_ok=True)
        self._seconds = time.monotonic() - started

    def result(self) -> tuple[Path, int, float]:
        """Wait for the spool; (path, size, seconds it took) or the error it met."""
        while self._thread.is_alive():
            self._thread.join(timeout=0.5)  # short waits keep Ctrl-C and SIGTERM responsive
        if self._error is not None:
            raise self._error
        return self.path, self._size, self._seconds

    def cancel(self) -> None:
        self._cancel.set()
        self._thread.join(timeout=30)
        self.path.unlink(missing_ok=True)
