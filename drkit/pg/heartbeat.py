"""Heartbeats: a one-row table in the source whose timestamp travels inside every backup.

The newest heartbeat found in a restored copy tells how fresh its data is, which makes RPO
a measurement of data rather than of backup metadata. One row per writer (`beat_by`), updated
in place, so the table never grows.

    CREATE TABLE drkit_heartbeat (beat_by text PRIMARY KEY, beat_at timestamptz NOT NULL)
"""

from __future__ import annotations

from datetime import datetime

import psycopg

TABLE = "drkit_heartbeat"
_DDL = f"CREATE TABLE IF NOT EXISTS {TABLE} (beat_by text PRIMARY KEY, beat_at timestamptz NOT NULL)"
_UPSERT = (
    f"INSERT INTO {TABLE} (beat_by, beat_at) VALUES (%s, now()) "
    "ON CONFLICT (beat_by) DO UPDATE SET beat_at = excluded.beat_at RETURNING beat_at"
)


def write_heartbeat(conn: psycopg.Connection, beat_by: str = "drkit") -> datetime:
    """Record the server's current time; returns it. Creates the table on first use."""
    with conn.transaction():
        conn.execute(_DDL)
        row = conn.execute(_UPSERT, (beat_by,)).fetchone()
    assert row is not None
    return row[0]


def newest_heartbeat(conn: psycopg.Connection) -> datetime | None:
    """The newest heartbeat visible to this connection's snapshot, or None without a table."""
    exists = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (TABLE,)).fetchone()
    if not exists or not exists[0]:
        return None
    row = conn.execute(f"SELECT max(beat_at) FROM {TABLE}").fetchone()
    return row[0] if row else None
