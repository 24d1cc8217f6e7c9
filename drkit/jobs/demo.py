"""`drkit demo`: the whole main job on the embedded default, with no cloud account.

1. a source database (a throwaway cluster, or DRKIT_DEMO_DSN) loaded by `pgbench -i`;
2. heartbeats every second, so the data itself says how fresh it is;
3. an encrypted, compressed backup into the store of schedules/local.yaml;
4. more writes after the backup (that is the data an incident loses);
5. the incident: a bad deploy deletes half the accounts (throwaway source only);
6. `drills/local-demo.yaml`: restore into an isolated cluster, verify, measure RTO/RPO, report;
7. everything started here is stopped and removed.
"""

from __future__ import annotations

import os
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from drkit.domain.report import DrillReport
from drkit.errors import DrkitError, UsageError
from drkit.jobs.backup import run_backup
from drkit.jobs.context import Context
from drkit.jobs.drill import run_drill_job
from drkit.jobs.pgwiring import find_pg_resource
from drkit.pg.cluster import EphemeralCluster
from drkit.pg.conn import connect
from drkit.pg.heartbeat import write_heartbeat
from drkit.pg.tools import PgTools, find_tools

SCHEDULE, RESOURCE, DRILL, DATABASE = "local", "app", "local-demo", "app"


class Heartbeats:
    """Beats once a second on its own connection until stopped."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="drkit-heartbeat", daemon=True)
        self.count = 0
        self.error: Exception | None = None

    def _run(self) -> None:
        try:
            with connect(self.dsn, what="the demo source") as conn:
                while not self._stop.is_set():
                    write_heartbeat(conn, "drkit-demo")
                    self.count += 1
                    self._stop.wait(1.0)
        except Exception as exc:
            self.error = exc

    def __enter__(self) -> Heartbeats:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


def _run_pgbench(tools: PgTools, dsn_env: dict[str, str], dsn: str, args: list[str], what: str) -> None:
    proc = subprocess.run(
        [str(tools.path("pgbench")), *args, dsn],
        env={**os.environ, **dsn_env},
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        tail = " | ".join(proc.stderr.strip().splitlines()[-2:])
        raise DrkitError(f"pgbench ({what}) failed: {tail}")


@contextmanager
def _source(ctx: Context, tools: PgTools, scale: int) -> Iterator[tuple[str, bool]]:
    """Yields (dsn, throwaway). A user-given DRKIT_DEMO_DSN is never damaged."""
    given = os.environ.get("DRKIT_DEMO_DSN")
    if given:
        ctx.say("source: DRKIT_DEMO_DSN (your database; the demo writes only pgbench_* and drkit_heartbeat tables)")
        yield given, False
        return
    with EphemeralCluster(tools, purpose="demo source") as cluster:
        with connect(cluster.dsn(), what="the demo source cluster") as conn:
            conn.execute(f'CREATE DATABASE "{DATABASE}"')
        ctx.say(f"source: a throwaway PostgreSQL {tools.version} cluster (unix socket only)")
        yield cluster.dsn(DATABASE), True


def run_demo(
    ctx: Context, *, scale: int, report_dir: Path | None = None
) -> tuple[DrillReport, dict[str, Path], BaseException | None]:
    cfg = ctx.config()
    res = find_pg_resource(cfg, RESOURCE, SCHEDULE)
    cfg.drill(DRILL)
    if scale < 1:
        raise UsageError("--scale must be at least 1")
    tools = find_tools()
    dsn_var = str(res.spec.dsn_env)
    previous = os.environ.get(dsn_var)
    with _source(ctx, tools, scale) as (dsn, throwaway):
        os.environ[dsn_var] = dsn
        try:
            ctx.say(f"1/5 loading data: pgbench -i -s {scale} ({scale * 100_000:,} accounts)")
            _run_pgbench(tools, {}, dsn, ["-i", "-q", "-s", str(scale)], "load")
            with Heartbeats(dsn) as beats:
                ctx.say("2/5 taking an encrypted backup while heartbeats and writes go on")
                outcomes = run_backup(ctx, SCHEDULE, only=RESOURCE)
                if outcomes[0].error:
                    raise DrkitError(f"backup failed: {outcomes[0].error}")
                manifest = outcomes[0].manifest
                assert manifest is not None
                ctx.say(
                    f"    backup {manifest.id}: {manifest.dump_bytes / 1e6:.1f} MB dump -> "
                    f"{manifest.stored_bytes / 1e6:.1f} MB stored (zstd + AES-256-GCM)"
                )
                ctx.say("3/5 the application keeps writing after the backup (pgbench -T 3)")
                _run_pgbench(tools, {}, dsn, ["-T", "3", "-c", "2", "-n"], "writes")
            if beats.error:
                raise DrkitError(f"heartbeats stopped: {beats.error}")
            incident_at = ctx.clock.now()
            if throwaway:
                with connect(dsn, what="the demo source") as conn:
                    gone = conn.execute("DELETE FROM pgbench_accounts WHERE aid % 2 = 0").rowcount
                ctx.say(f"4/5 INCIDENT at {incident_at:%H:%M:%S}: a bad deploy deleted {gone:,} accounts")
            else:
                ctx.say(f"4/5 INCIDENT declared at {incident_at:%H:%M:%S} (your database is left as it is)")
            ctx.say(f"5/5 drill {DRILL}: restore the newest backup into isolation, verify, measure")
            return run_drill_job(ctx, DRILL, report_dir=report_dir, incident_at=incident_at)
        finally:
            if previous is None:
                os.environ.pop(dsn_var, None)
            else:
                os.environ[dsn_var] = previous
