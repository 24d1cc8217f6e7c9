"""One scheduler runs jobs at a time: a PostgreSQL advisory lock, or a file lock for SQLite.

PostgreSQL (production, several replicas): the leader holds a *session-level*
`pg_try_advisory_lock(LEADER_LOCK_KEY)` on a dedicated connection. The server releases it
when that connection ends, so a leader that dies (kill -9, node loss) frees it and a
follower's next try succeeds. The leader checks its connection on every tick: if the
connection is gone, so is the lock, and it must stop scheduling.

SQLite (a single machine): an exclusive `fcntl.flock` on `<catalog>.scheduler.lock`, which the
kernel releases when the process dies. `:memory:` catalogs need no lock (one process only).
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
from pathlib import Path
from typing import IO, Protocol

from sqlalchemy import Connection, text
from sqlalchemy.engine import URL
from sqlalchemy.exc import DBAPIError

from drkit.catalog.connect import create_catalog_engine, mask, normalize_url

log = logging.getLogger("drkit.scheduler")

# The ASCII bytes of "drkitsch"; the catalog's migration lock is "drkitcat" (drkit.catalog.migrate).
LEADER_LOCK_KEY = int.from_bytes(b"drkitsch", "big")


class LeaderLock(Protocol):
    description: str

    def try_acquire(self) -> bool:
        """Take the lock if free (never blocks); True if we hold it now."""
        ...

    def still_held(self) -> bool:
        """False once the lock may have been lost (its connection died)."""
        ...

    def release(self) -> None: ...


class PgAdvisoryLock:
    """Session-level advisory lock on a dedicated connection (see the module docstring)."""

    def __init__(self, url: URL, key: int = LEADER_LOCK_KEY) -> None:
        self.url = url
        self.key = key
        self.description = f"PostgreSQL advisory lock {key} on {mask(url)}"
        self._engine = create_catalog_engine(url)
        self._conn: Connection | None = None

    def try_acquire(self) -> bool:
        if self._conn is not None:
            return self.still_held()
        try:
            conn = self._engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        except DBAPIError as exc:
            log.warning("cannot reach the catalog for the leader lock: %s", str(exc.orig or exc).strip())
            return False
        try:
            got = bool(conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": self.key}).scalar())
        except DBAPIError as exc:
            conn.close()
            log.warning("leader lock query failed: %s", str(exc.orig or exc).strip())
            return False
        if not got:
            conn.close()
            return False
        self._conn = conn
        return True

    def still_held(self) -> bool:
        if self._conn is None:
            return False
        try:
            self._conn.execute(text("SELECT 1"))
            return True
        except DBAPIError:
            self._drop()
            return False

    def release(self) -> None:
        if self._conn is None:
            return
        with contextlib.suppress(DBAPIError):  # if the connection is gone, so is the lock
            self._conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": self.key})
        self._drop()

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.invalidate()  # never hand a lock-holding connection back to the pool
                conn.close()
            except DBAPIError:
                pass
        self._engine.dispose()


class FileLock:
    """Exclusive flock on a file beside the SQLite catalog."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.description = f"file lock {path}"
        self._fh: IO[str] | None = None

    def try_acquire(self) -> bool:
        if self._fh is not None:
            return True
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fh = open(self.path, "a+")  # noqa: SIM115 - held open for as long as we lead
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.close()
            return False
        fh.seek(0)
        fh.truncate()
        fh.write(f"{os.getpid()}\n")
        fh.flush()
        self._fh = fh
        return True

    def still_held(self) -> bool:
        return self._fh is not None

    def release(self) -> None:
        if self._fh is not None:
            fcntl.flock(self._fh.fileno(), fcntl.LOCK_UN)
            self._fh.close()
            self._fh = None


class NoLock:
    """An in-memory SQLite catalog can only be used by this process."""

    description = "no lock (in-memory catalog)"

    def try_acquire(self) -> bool:
        return True

    def still_held(self) -> bool:
        return True

    def release(self) -> None:
        return None


def leader_lock_for(catalog_url: str) -> LeaderLock:
    """The right lock for the catalog at `catalog_url`."""
    url = normalize_url(catalog_url)
    if url.get_backend_name() == "postgresql":
        return PgAdvisoryLock(url)
    database = url.database or ""
    if not database or database == ":memory:" or database.startswith("file:"):
        return NoLock()
    path = Path(database).expanduser()
    return FileLock(path.with_name(path.name + ".scheduler.lock"))
