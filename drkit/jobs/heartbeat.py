"""`drkit heartbeat RESOURCE`: stamp the source so restored copies can tell their age."""

from __future__ import annotations

import socket
from datetime import datetime

from drkit.jobs.context import Context
from drkit.jobs.pgwiring import find_pg_resource, source_dsn
from drkit.pg.conn import connect
from drkit.pg.heartbeat import write_heartbeat


def beat(ctx: Context, resource: str, schedule: str | None = None) -> datetime:
    res = find_pg_resource(ctx.config(), resource, schedule)
    with connect(source_dsn(res), what=f"source database of {resource}") as conn:
        return write_heartbeat(conn, f"drkit@{socket.gethostname()}")
