"""Catalog URLs and engines: defaults, the psycopg 3 rule, SQLite settings, friendly errors.

The catalog is SQLite by default (one file under the user's state directory) and
PostgreSQL in production (several scheduler replicas share it). Nothing else is
supported: the upsert and locking code is written for these two.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

import platformdirs
import sqlalchemy
from sqlalchemy import event
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.exc import ArgumentError, InterfaceError, OperationalError

from drkit.errors import DrkitError, UsageError

# How long a writer waits for another process's SQLite write lock before giving up (ms).
SQLITE_BUSY_TIMEOUT_MS = 30_000
# A PostgreSQL host that does not answer should fail in seconds, not after the TCP timeout.
PG_CONNECT_TIMEOUT_S = 10
# Execution option that makes a SQLite transaction take the write lock up front (BEGIN IMMEDIATE).
WRITE_OPTION = "drkit_write"


def default_catalog_url() -> str:
    """`sqlite:////<user state dir>/drkit/catalog.db` (the directory is created when opened)."""
    path = Path(platformdirs.user_state_dir("drkit")) / "catalog.db"
    return f"sqlite:///{path}"


def normalize_url(raw: str) -> URL:
    """Parse a catalog URL; PostgreSQL always goes through psycopg 3.

    `postgresql://` and `postgres://` become `postgresql+psycopg://`; another PostgreSQL
    driver (psycopg2, asyncpg, ...) is refused, because drkit ships and tests only psycopg 3.
    """
    try:
        url = make_url(raw.strip())
    except ArgumentError as exc:
        raise UsageError(
            f"catalog URL {raw!r} is not a SQLAlchemy URL; use sqlite:///PATH or postgresql://USER@HOST/DB"
        ) from exc
    backend, _, driver = url.drivername.partition("+")
    if backend in ("postgresql", "postgres"):
        if driver not in ("", "psycopg"):
            raise UsageError(
                f"catalog URL {mask(url)} uses the {driver} driver; drkit needs psycopg 3: "
                "write postgresql:// or postgresql+psycopg://"
            )
        return url.set(drivername="postgresql+psycopg")
    if backend == "sqlite":
        if driver not in ("", "pysqlite"):
            raise UsageError(f"catalog URL {mask(url)}: use sqlite:///PATH (the standard sqlite3 driver)")
        return url
    raise UsageError(
        f"catalog URL {mask(url)} is not supported; use sqlite:///PATH or postgresql://USER@HOST/DB"
    )


def mask(url: URL | str) -> str:
    """The URL as shown to people: the password replaced by ***."""
    if isinstance(url, str):
        try:
            url = make_url(url)
        except ArgumentError:
            return "<unparseable URL>"
    return url.render_as_string(hide_password=True)


def create_catalog_engine(url: URL) -> Engine:
    """An engine with drkit's settings for the backend (see the module docstring)."""
    if url.get_backend_name() == "sqlite":
        return _sqlite_engine(url)
    connect_args: dict[str, Any] = {}
    if "connect_timeout" not in url.query:
        connect_args["connect_timeout"] = PG_CONNECT_TIMEOUT_S
    # pre_ping: the scheduler holds the engine for days; servers restart and fail over.
    return sqlalchemy.create_engine(url, pool_pre_ping=True, connect_args=connect_args)


def _sqlite_engine(url: URL) -> Engine:
    database = url.database or ""
    if database and database != ":memory:" and not database.startswith("file:"):
        try:
            Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DrkitError(
                f"cannot create the directory for catalog {mask(url)}: {exc.strerror}; "
                "pass another --catalog or set DRKIT_CATALOG"
            ) from exc
    engine = sqlalchemy.create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Take transaction control away from the sqlite3 module (it would neither BEGIN before
        # DDL nor let us choose IMMEDIATE); SQLAlchemy's documented recipe for real transactions.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        try:
            cur.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
            cur.execute("PRAGMA foreign_keys = ON")
            _use_wal(cur)
        finally:
            cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: sqlalchemy.Connection) -> None:
        # Writers take the lock first, then wait up to the busy timeout; a deferred transaction
        # that reads and then writes could instead fail at once with SQLITE_BUSY.
        mode = "IMMEDIATE" if conn.get_execution_options().get(WRITE_OPTION) else "DEFERRED"
        conn.exec_driver_sql(f"BEGIN {mode}")

    return engine


def _use_wal(cur: Any) -> None:
    """Put the database in WAL mode: readers (drkit backup list) never block the scheduler's writes.

    The mode is stored in the file, so this is a cheap read after the first open. Switching
    needs an exclusive lock and SQLite does not call the busy handler for it: a second process
    opening a fresh catalog at the same instant gets "database is locked" at once. So retry,
    within the same budget a writer gets, until the switch (ours or the other's) has happened.
    """
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
    delay = 0.005
    while True:
        try:
            if str(cur.execute("PRAGMA journal_mode").fetchone()[0]).lower() == "wal":
                return
            cur.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            contended = "locked" in str(exc) or "busy" in str(exc)
            if not contended or time.monotonic() >= deadline:
                raise
        time.sleep(delay)
        delay = min(delay * 2, 0.2)


def db_error(url: URL | str, exc: BaseException) -> DrkitError:
    """The one-line error for a database failure while opening or using the catalog."""
    reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    first = reason[0] if reason else type(exc).__name__
    password = url.password if isinstance(url, URL) else None
    if password:
        first = first.replace(str(password), "***")
    if isinstance(exc, OperationalError | InterfaceError):
        return DrkitError(
            f"cannot use the catalog at {mask(url)}: {first}; check that the database is running and "
            "reachable, or pass another --catalog / DRKIT_CATALOG"
        )
    return DrkitError(
        f"the catalog at {mask(url)} refused the operation: {first}; check the database user's "
        "privileges, or pass another --catalog / DRKIT_CATALOG"
    )
