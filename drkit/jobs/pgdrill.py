"""The PostgreSQL engine's side of a drill: restore a backup into an ephemeral cluster
that listens on a private unix socket only, run the checks there, and remove it all."""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path
from typing import Any

from drkit.domain.drill import ResourceLedger, Verification
from drkit.domain.durations import format_duration
from drkit.domain.report import RecoveryPointRef
from drkit.errors import UsageError
from drkit.jobs.cleanup import make_workdir
from drkit.jobs.context import Context
from drkit.jobs.pgwiring import PgResource, open_store, wrapper_resolver
from drkit.pg.cluster import EphemeralCluster
from drkit.pg.conn import connect
from drkit.pg.engine import list_backups
from drkit.pg.manifest import BackupManifest
from drkit.pg.spool import BackgroundSpool
from drkit.pg.streamrestore import StreamingRestore
from drkit.pg.tools import find_tools
from drkit.verify import CheckSpec, run_checks

log = logging.getLogger(__name__)


def default_jobs() -> int:
    return max(1, min(4, os.cpu_count() or 1))


class PostgresDrillEngine:
    name = "postgres"

    def __init__(self, ctx: Context, res: PgResource, drill: Any, *, jobs: int | None = None) -> None:
        self.ctx = ctx
        self.res = res
        self.drill = drill
        self.drill_name = str(getattr(drill, "name", "drill"))
        self.jobs = jobs or default_jobs()
        self.store = open_store(ctx.config(), res)
        self.manifest: BackupManifest | None = None
        self.cluster: EphemeralCluster | None = None
        self.workdir: Path | None = None
        self.spool: BackgroundSpool | None = None
        self.database = str(drill.verify.database)

    def select_recovery_point(self) -> RecoveryPointRef:
        wanted = str(self.drill.source.recovery_point or "latest")
        backups = list_backups(self.store, self.res.name)
        if not backups:
            raise UsageError(
                f"no backups of {self.res.name} in {self.store.uri}: run `drkit backup run {self.res.schedule}` first"
            )
        if wanted == "latest":
            self.manifest = backups[0]
        else:
            match = [m for m in backups if m.id == wanted]
            if not match:
                raise UsageError(f"no backup {wanted} of {self.res.name} in {self.store.uri}")
            self.manifest = match[0]
        m = self.manifest
        return RecoveryPointRef(id=m.id, kind="dump", created_at=m.created_at, region=None)

    def provision_isolation(self, ledger: ResourceLedger) -> str:
        tools = find_tools()
        ledger.creating("workdir")
        self.workdir = make_workdir()
        # Decrypting the backup needs no cluster: do it while the cluster starts.
        assert self.manifest is not None
        self.spool = BackgroundSpool(self.manifest, self.store, wrapper_resolver(self.ctx, self.res), self.workdir)
        ledger.creating("ephemeral-cluster")
        self.cluster = EphemeralCluster(
            tools, purpose=f"drill {self.drill_name}", settings={"max_parallel_maintenance_workers": str(self.jobs)}
        )
        self.cluster.start()
        with connect(self.cluster.dsn(), what="the ephemeral cluster") as conn:
            conn.execute(f'CREATE DATABASE "{self.database}"')
        return (
            f"PostgreSQL {tools.version} in {self.cluster.data_dir.parent}, unix socket only "
            "(listen_addresses=''), fsync off"
        )

    def restore(self, point: RecoveryPointRef, ledger: ResourceLedger) -> str:
        assert self.cluster is not None and self.workdir is not None and self.spool is not None
        assert self.manifest is not None
        restore = StreamingRestore(
            self.spool, self.cluster.dsn(self.database), find_tools(), jobs=self.jobs, workdir=self.workdir
        )
        try:
            size, spool_s = restore.run()
        finally:
            self.spool.path.unlink(missing_ok=True)
        t = restore.timings
        log.debug("streamed restore timeline: %s", t.timeline)
        how = (
            f"schema in {format_duration(t.schema_s)}, {t.streamed_blocks} table(s) loaded as they were decrypted "
            f"in {format_duration(t.data_s)} ({t.loaders} pg_restore), "
            f"the rest with pg_restore -j{self.jobs} in {format_duration(t.rest_s)}"
        )
        if t.fallback:
            how += f"; not streamed: {t.fallback}"
        return (
            f"{self.manifest.stored_bytes / 1e6:.1f} MB stored, {size / 1e6:.1f} MB archive decrypted in "
            f"{format_duration(spool_s)} and authenticated to its last chunk; {how}"
        )

    def verify(self) -> Verification:
        assert self.cluster is not None
        checks = [
            CheckSpec(
                name=c.name, sql=c.sql, expect=None if c.expect is None else str(c.expect), freshness=bool(c.freshness)
            )
            for c in self.drill.verify.checks
        ]
        return run_checks(self.cluster.dsn(self.database), checks, what="the restored copy")

    def teardown(self, ledger: ResourceLedger) -> str:
        done = []
        if self.spool is not None:
            self.spool.cancel()
        if self.cluster is not None:
            self.cluster.stop()
            ledger.deleted_ok("ephemeral-cluster")
            done.append("cluster stopped and removed")
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
            if not self.workdir.exists():
                ledger.deleted_ok("workdir")
                done.append("work directory removed")
        return ", ".join(done) or "nothing to remove"
