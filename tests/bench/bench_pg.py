"""Benchmark: drkit's PostgreSQL engine (backup, drill, peak memory) against plain PostgreSQL tools.

A plain script (run by tests/bench/run.py, or on its own):

    .venv/bin/python tests/bench/bench_pg.py [--scale 50] [--noise-mb 200] [--repeat 2]
        [--mem-scales 10,50] [--out FILE.json]

Data set: a database on the local server (127.0.0.1:5432, user postgres) holding
`pgbench -i -s SCALE` plus a table `noise` of NOISE_MB of incompressible bytes
(gen_random_bytes from pgcrypto, else os.urandom through COPY). Dropped at the end.

Every side is run as a user runs it (a subprocess), interleaved round by round
(baseline, drkit, baseline, drkit, ...), each after `sync; echo 3 > drop_caches` when
permitted; medians are compared:

- backup: `drkit backup run` (pg_dump -Z0 -> zstd -> AES-GCM -> file store) against
  `pg_dump -Fc -f FILE` (gzip at pg_dump's default level). Target: ratio <= 1.0.
- restore: `drkit drill run` (tables loaded into a tuned throwaway cluster while the backup is
  decrypted, then pg_restore -jN for the rest; checks, teardown, signed reports) against
  (a) a DEFAULT cluster (PostgreSQL's default settings: fsync on, ...), `pg_restore` (no -j)
      of the `pg_dump -Fc` file, checks through psql. Target: drkit/baseline <= 0.7;
  (b) a throwaway cluster with drkit's own tuned settings (fsync off, ...), `pg_restore -j2`
      of an uncompressed `pg_dump -Fc -Z0` file. Target: drkit/baseline <= 1.1.
  Two measures: "steps" = drkit's report steps restore + verify, against the baseline's
  pg_restore + checks (cluster initdb/start/CREATE DATABASE excluded on both sides);
  "wall" = the whole `drkit drill run` command against initdb + start + CREATE DATABASE +
  pg_restore + checks + stop + remove (cluster start included on both sides).
- memory: peak RSS of the drkit process itself during backup and drill at each of
  --mem-scales (noise scaled in proportion); target: no growth with database size.

Benchmarks inform, they do not gate: each target prints PASS or MISS; the exit status is
0 unless something errored.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, LiteralString

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchproc import CommandFailed, Measured, drop_caches, load_average, run_measured, save_results  # noqa: E402

from drkit.pg.cluster import (  # noqa: E402
    DEFAULT_SETTINGS,
    EphemeralCluster,
    find_stale_clusters,
    remove_stale_cluster,
)
from drkit.pg.engine import list_backups  # noqa: E402
from drkit.pg.tools import CLIENT_TOOLS, SERVER_TOOLS, PgTools, find_tools  # noqa: E402
from drkit.store import FileStore  # noqa: E402

SERVER_DSN = os.environ.get("DRKIT_BENCH_PG_DSN", "host=127.0.0.1 port=5432 user=postgres dbname=postgres")
TUNED_JOBS = 2
NOISE_ROW_BYTES = 1024  # gen_random_bytes() returns at most 1024 bytes per call

#: PostgreSQL's own defaults for what drkit's ephemeral cluster tunes (DEFAULT_SETTINGS).
PG_DEFAULTS: dict[str, str] = {
    "fsync": "on",
    "synchronous_commit": "on",
    "full_page_writes": "on",
    "wal_level": "replica",
    "max_wal_senders": "10",
    "checkpoint_timeout": "5min",
    "max_wal_size": "1GB",
    "maintenance_work_mem": "64MB",
    "autovacuum": "on",
    "shared_buffers": "128MB",
}


def default_settings() -> dict[str, str]:
    """PostgreSQL's defaults for every setting drkit's ephemeral cluster tunes."""
    unknown = sorted(set(DEFAULT_SETTINGS) - set(PG_DEFAULTS))
    if unknown:
        raise RuntimeError(f"drkit now tunes {', '.join(unknown)}: add PostgreSQL's default to PG_DEFAULTS")
    return dict(PG_DEFAULTS)


TARGET_BACKUP = 1.0
TARGET_RESTORE_DEFAULT = 0.7
TARGET_RESTORE_TUNED = 1.1
#: "Flat": the peak at the largest scale may exceed the smallest by this much at most.
MEM_SLACK_KIB = 16 * 1024
MEM_SLACK_RATIO = 0.10

SCHEDULE_YAML = """\
environment: bench
targets: {rto: 4h, rpo: 7d}
timezone: UTC
postgres:
  - name: app
    dsn_env: APP_DATABASE_URL
    backups: {cron: "0 */6 * * *", keep: {last: 100}}
    store: file://backups
    encryption: {key_file: keys/backup.key}
"""

DRILL_HEAD = """\
environment: bench
targets: {rto: 4h, rpo: 7d}
scenario: data-corruption
source:
  postgres: {schedule: local, resource: app}
  recovery_point: latest
verify:
  database: bench
  checks:
"""
DRILL_TAIL = """\
teardown: always
report: {dir: reports, formats: [json, md, html, junit]}
"""


@dataclass(frozen=True)
class Check:
    name: str
    sql: str
    expected: int


def checks_for(scale: int, noise_rows: int) -> list[Check]:
    """The same checks for drkit (drill YAML) and the baselines (psql); they read every table."""
    return [
        Check("accounts", "SELECT count(*) FROM pgbench_accounts", scale * 100_000),
        Check("branches", "SELECT count(*) FROM pgbench_branches", scale),
        Check("tellers", "SELECT count(*) FROM pgbench_tellers", scale * 10),
        Check("balances", "SELECT coalesce(sum(abalance), 0) FROM pgbench_accounts", 0),
        Check(
            "accounts reference branches",
            "SELECT count(*) FROM pgbench_accounts a LEFT JOIN pgbench_branches b ON b.bid = a.bid WHERE b.bid IS NULL",
            0,
        ),
        Check("noise rows", "SELECT count(*) FROM noise", noise_rows),
        Check("noise bytes", "SELECT coalesce(sum(length(data)), 0) FROM noise", noise_rows * NOISE_ROW_BYTES),
    ]


# -- the data set ----------------------------------------------------------------------------


@dataclass
class Dataset:
    name: str
    scale: int
    noise_mb: float
    noise_rows: int
    dsn: str
    db_bytes: int = 0
    build_s: float = 0.0
    noise_source: str = ""


def _admin(verb: LiteralString, name: str, tail: LiteralString = "") -> None:
    with psycopg.connect(SERVER_DSN, autocommit=True) as conn:
        conn.execute(sql.SQL(verb + " {}" + tail).format(sql.Identifier(name)))


def _dsn_for(dbname: str) -> str:
    return make_conninfo(SERVER_DSN, dbname=dbname)


def build_dataset(name: str, scale: int, noise_mb: float, tools: PgTools, log: Path) -> Dataset:
    """pgbench -i -s SCALE plus `noise` (incompressible) in a new database `name`."""
    t0 = time.monotonic()
    rows = max(1, round(noise_mb * (1 << 20) / NOISE_ROW_BYTES))
    ds = Dataset(name, scale, noise_mb, rows, _dsn_for(name))
    _admin("CREATE DATABASE", name)
    run_measured(
        [str(tools.path("pgbench")), "-i", "-q", "-s", str(scale), ds.dsn],  # a conninfo as the dbname
        log=log,
        measure=False,
        what="pgbench -i",
    )
    with psycopg.connect(ds.dsn, autocommit=True) as conn:
        try:
            conn.execute("CREATE EXTENSION IF NOT EXISTS pgcrypto")
            conn.execute(
                "CREATE TABLE noise AS SELECT g AS id, gen_random_bytes(%s) AS data FROM generate_series(1, %s) g",
                (NOISE_ROW_BYTES, rows),
            )
            # Keep the dump free of extensions: the table is what matters.
            conn.execute("DROP EXTENSION pgcrypto")
            ds.noise_source = "gen_random_bytes (pgcrypto)"
        except psycopg.Error:
            conn.execute("DROP TABLE IF EXISTS noise")
            conn.execute("CREATE TABLE noise (id int, data bytea)")
            with conn.cursor() as cur, cur.copy("COPY noise (id, data) FROM STDIN") as copy:
                for i in range(1, rows + 1):
                    copy.write_row((i, os.urandom(NOISE_ROW_BYTES)))
            ds.noise_source = "os.urandom via COPY"
        conn.execute("ALTER TABLE noise ADD PRIMARY KEY (id)")
        conn.execute("VACUUM ANALYZE noise")
        row = conn.execute("SELECT pg_database_size(current_database())").fetchone()
        ds.db_bytes = int(row[0]) if row else 0
    ds.build_s = time.monotonic() - t0
    return ds


def drop_dataset(name: str) -> None:
    _admin("DROP DATABASE IF EXISTS", name, " WITH (FORCE)")


# -- drkit as a user runs it -------------------------------------------------------------------


@dataclass
class DrkitEnv:
    """A config dir (schedule + drill), its own catalog, state dir and TMPDIR."""

    root: Path
    vars: dict[str, str]

    @classmethod
    def create(cls, base: Path, ds: Dataset, tmpdir: Path) -> DrkitEnv:
        root = base / "config"
        (root / "schedules").mkdir(parents=True)
        (root / "drills").mkdir()
        (root / "schedules" / "local.yaml").write_text(SCHEDULE_YAML)
        lines = [
            f'    - {{name: {json.dumps(c.name)}, sql: {json.dumps(c.sql)}, expect: "== {c.expected}"}}\n'
            for c in checks_for(ds.scale, ds.noise_rows)
        ]
        (root / "drills" / "bench.yaml").write_text(DRILL_HEAD + "".join(lines) + DRILL_TAIL)
        variables = {
            **os.environ,
            "APP_DATABASE_URL": ds.dsn,
            "DRKIT_CATALOG": f"sqlite:///{base / 'catalog.db'}",
            "XDG_STATE_HOME": str(base / "state"),
            "TMPDIR": str(tmpdir),
            "PYTHONPATH": str(REPO),
        }
        return cls(root, variables)

    def argv(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "drkit", "--config-dir", str(self.root), *args]

    def run(self, *args: str, log: Path, measure: bool = True) -> Measured:
        return run_measured(self.argv(*args), env=self.vars, log=log, measure=measure, what=f"drkit {args[0]}")


_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)([dhms])")
_UNIT_S = {"d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0}


def parse_shown_duration(text: str) -> float:
    """Seconds from drkit's format_duration output (`41.2s`, `1m12s`, `2h05m`)."""
    return sum(float(n) * _UNIT_S[u] for n, u in _DURATION_PART.findall(text))


def _iso(t: str) -> datetime:
    return datetime.fromisoformat(t.replace("Z", "+00:00"))


def read_drill_report(report_dir: Path) -> dict[str, Any]:
    """Step timings (s) of the single report under report_dir/bench/, and the restore split."""
    found = sorted((report_dir / "bench").glob("*.json"))
    if len(found) != 1:
        raise RuntimeError(f"expected one drill report in {report_dir / 'bench'}, found {len(found)}")
    report = json.loads(found[0].read_text())
    steps = {s["name"]: (_iso(s["finished_at"]) - _iso(s["started_at"])).total_seconds() for s in report["steps"]}
    restore_detail = next((s.get("detail", "") for s in report["steps"] if s["name"] == "restore"), "")
    out: dict[str, Any] = {
        "status": report["status"],
        "steps_s": steps,
        "restore_detail": restore_detail,
        "rto_s": report["rto"]["achieved_s"],
        "span_s": (_iso(report["finished_at"]) - _iso(report["started_at"])).total_seconds(),
        "checks_passed": sum(bool(c["passed"]) for c in report["checks"]),
        "checks": len(report["checks"]),
    }
    # engine detail: "... archive decrypted in 2.8s and authenticated ...; schema in 0.0s, 5 table(s) loaded
    # as they were decrypted in 7.0s (3 pg_restore), the rest with pg_restore -j2 in 1.1s"
    m = re.search(r"decrypted in (\S+) and authenticated", restore_detail)
    if m:
        out["decrypt_spool_s"] = parse_shown_duration(m.group(1))
    m = re.search(r"loaded as they were decrypted in (\S+) .*pg_restore -j(\d+) in (\S+)", restore_detail)
    if m:
        out["streamed_load_s"] = parse_shown_duration(m.group(1))
        out["jobs"] = int(m.group(2))
        out["pg_restore_s"] = parse_shown_duration(m.group(3))
    return out


# -- the plain baselines ----------------------------------------------------------------------


def psql_checks(tools: PgTools, cluster: EphemeralCluster, dbname: str, checks: list[Check], log: Path) -> None:
    """Run the checks in one psql session and compare every value to what it must be."""
    argv = [str(tools.path("psql")), "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", dbname]
    for c in checks:
        argv += ["-c", c.sql]
    out = log.with_suffix(".out")
    run_measured(argv, env={**os.environ, **cluster.env()}, log=out, measure=False, what="psql checks")
    values = [line.strip() for line in out.read_text().splitlines() if line.strip()]
    got = dict(zip([c.name for c in checks], values, strict=False))
    wrong = [
        f"{c.name}: expected {c.expected}, got {got.get(c.name)}" for c in checks if got.get(c.name) != str(c.expected)
    ]
    if wrong:
        raise RuntimeError("baseline checks failed: " + "; ".join(wrong))


def baseline_restore(
    tools: PgTools,
    *,
    label: str,
    dump: Path,
    settings: dict[str, str],
    jobs: int | None,
    checks: list[Check],
    parent: Path,
    logs: Path,
    dropped: bool,
) -> dict[str, Any]:
    """initdb + start + CREATE DATABASE, then timed pg_restore + checks, then stop + remove."""
    w0 = time.monotonic()
    with EphemeralCluster(tools, parent_dir=parent, settings=settings, purpose=f"bench {label}") as cluster:
        with psycopg.connect(cluster.dsn(), autocommit=True) as conn:
            conn.execute("CREATE DATABASE bench")
        started = time.monotonic()
        argv = ["pg_restore", "--dbname=bench", "--no-owner", "--no-acl", "--exit-on-error"]
        if jobs:
            argv.append(f"--jobs={jobs}")
        restore = run_measured(
            [*cluster.client_command(argv), str(dump)],
            env={**os.environ, **cluster.env()},
            log=logs / f"{label}-pg_restore.log",
            what=f"pg_restore ({label})",
        )
        c0 = time.monotonic()
        psql_checks(tools, cluster, "bench", checks, logs / f"{label}-psql.log")
        done = time.monotonic()
    w1 = time.monotonic()
    return {
        "side": label,
        "caches_dropped": dropped,
        "setup_s": started - w0,
        "pg_restore_s": c0 - started,
        "checks_s": done - c0,
        "steps_s": done - started,  # cluster start excluded
        "wall_s": w1 - w0,  # cluster initdb/start and stop/removal included
        "pg_restore_peak_kib": restore.self_peak_kib,
    }


# -- the benchmark ------------------------------------------------------------------------------


@dataclass
class Results:
    params: dict[str, Any]
    started_at: str
    load_before: tuple[float, float, float]
    load_after: tuple[float, float, float] | None = None
    drop_caches: bool | None = None  # None: no timed run happened
    dataset: dict[str, Any] = field(default_factory=dict)
    backup_runs: list[dict[str, Any]] = field(default_factory=list)
    restore_runs: list[dict[str, Any]] = field(default_factory=list)
    memory: list[dict[str, Any]] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)
    targets: list[dict[str, Any]] = field(default_factory=list)


def _median(runs: list[dict[str, Any]], side: str, key: str) -> float | None:
    vals = [r[key] for r in runs if r["side"] == side and r.get(key) is not None]
    return statistics.median(vals) if vals else None


def _mib(kib: int | None) -> float | None:
    return None if kib is None else round(kib / 1024, 1)


class Bench:
    """Owns everything the run creates, and removes it all in `cleanup` (also on Ctrl-C)."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.work = Path(tempfile.mkdtemp(prefix="drkit-bench-", dir=args.work_parent))
        self.work.chmod(0o755)  # the `postgres` OS user runs the clusters and must enter it
        self.tmp = self.work / "tmp"  # TMPDIR of drkit and parent of every cluster
        self.tmp.mkdir()
        self.tmp.chmod(0o755)
        self.logs = self.work / "logs"
        self.logs.mkdir()
        self.dumps = self.work / "dumps"
        self.dumps.mkdir()
        self.databases: list[str] = []
        self.tools = find_tools(require=(*CLIENT_TOOLS, *SERVER_TOOLS, "pgbench"))
        self.res = Results(
            params={
                "scale": args.scale,
                "noise_mb": args.noise_mb,
                "repeat": args.repeat,
                "mem_scales": args.mem_scales,
                "tuned_jobs": TUNED_JOBS,
                "postgres": self.tools.version,
                "cpus": os.cpu_count(),
                "server": SERVER_DSN,
            },
            started_at=datetime.now().astimezone().isoformat(timespec="seconds"),
            load_before=load_average(),
        )

    def say(self, msg: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)

    def _drop(self) -> bool:
        ok = drop_caches()
        self.res.drop_caches = ok
        return ok

    def dataset(self, scale: int, noise_mb: float) -> Dataset:
        name = f"drkit_bench_{os.getpid()}_s{scale}"
        self.databases.append(name)  # before creating: cleanup drops it even half-made
        self.say(f"building {name}: pgbench -i -s {scale} + {noise_mb:g} MB of noise")
        ds = build_dataset(name, scale, noise_mb, self.tools, self.logs / f"pgbench-s{scale}.log")
        self.say(f"  {ds.db_bytes / 1e6:.0f} MB on disk, built in {ds.build_s:.0f}s ({ds.noise_source})")
        return ds

    def drkit_env(self, ds: Dataset) -> DrkitEnv:
        base = self.work / f"drkit-s{ds.scale}"
        base.mkdir()
        env = DrkitEnv.create(base, ds, self.tmp)
        # Untimed warm-up: the config validates and the catalog exists before anything is timed.
        env.run("validate", log=self.logs / "drkit-validate.log", measure=False)
        env.run("drill", "history", log=self.logs / "drkit-warmup.log", measure=False)
        return env

    def drkit_backup(self, env: DrkitEnv, tag: str) -> dict[str, Any]:
        dropped = self._drop()
        m = env.run("backup", "run", "local", log=self.logs / f"drkit-backup-{tag}.log")
        newest = list_backups(FileStore(env.root / "backups"), "app")[0]
        return {
            "side": "drkit backup run",
            "caches_dropped": dropped,
            "wall_s": m.wall_s,
            "bytes": newest.stored_bytes,
            "dump_bytes": newest.dump_bytes,
            "self_peak_kib": m.self_peak_kib,
            "tree_peak_kib": m.tree_peak_kib,
            "children_peak_kib": m.children_peak_kib,
        }

    def drkit_drill(self, env: DrkitEnv, tag: str) -> dict[str, Any]:
        report_dir = self.work / f"reports-{tag}"
        dropped = self._drop()
        m = env.run("drill", "run", "bench", "--report-dir", str(report_dir), log=self.logs / f"drkit-drill-{tag}.log")
        rep = read_drill_report(report_dir)
        if rep["status"] != "passed":
            raise RuntimeError(f"drkit drill {tag} ended {rep['status']}: {rep}")
        steps = rep["steps_s"]
        return {
            "side": "drkit drill run",
            "caches_dropped": dropped,
            "steps_s": steps["restore"] + steps["verify"],  # cluster start (provision) excluded
            "wall_s": m.wall_s,
            "restore_step_s": steps["restore"],
            "verify_step_s": steps["verify"],
            "provision_step_s": steps.get("provision isolation"),
            "teardown_step_s": steps.get("teardown"),
            "decrypt_spool_s": rep.get("decrypt_spool_s"),
            "streamed_load_s": rep.get("streamed_load_s"),
            "rest_pg_restore_s": rep.get("pg_restore_s"),
            "pg_restore_s": steps["restore"],  # the whole restore step, for the table's column
            "jobs": rep.get("jobs"),
            "rto_s": rep["rto_s"],
            # Process start, imports, config and catalog, writing and signing the reports.
            "outside_steps_s": m.wall_s - rep["span_s"],
            "self_peak_kib": m.self_peak_kib,
            "tree_peak_kib": m.tree_peak_kib,
            "children_peak_kib": m.children_peak_kib,
        }

    def pg_dump(self, ds: Dataset, out: Path, *, compress: str | None, tag: str) -> dict[str, Any]:
        dropped = self._drop()
        argv = [str(self.tools.path("pg_dump")), "-Fc", "-f", str(out), f"--dbname={ds.dsn}"]
        if compress is not None:
            argv.insert(2, f"-Z{compress}")
        m = run_measured(argv, log=self.logs / f"pg_dump-{tag}.log", what="pg_dump")
        return {
            "side": "pg_dump -Fc" if compress is None else f"pg_dump -Fc -Z{compress}",
            "caches_dropped": dropped,
            "wall_s": m.wall_s,
            "bytes": out.stat().st_size,
            "self_peak_kib": m.self_peak_kib,
        }

    def run(self) -> Results:
        a = self.args
        ds = self.dataset(a.scale, a.noise_mb)
        self.res.dataset = asdict(ds) | {"dsn": ds.dsn}
        env = self.drkit_env(ds)
        checks = checks_for(ds.scale, ds.noise_rows)

        plain = self.dumps / "plain.dump"
        for i in range(1, a.repeat + 1):
            self.say(f"backup round {i}/{a.repeat}: pg_dump -Fc")
            r = self.pg_dump(ds, plain, compress=None, tag=f"r{i}")
            self.res.backup_runs.append(r | {"round": i})
            self.say(f"  {r['wall_s']:.1f}s, {r['bytes'] / 1e6:.0f} MB")
            self.say(f"backup round {i}/{a.repeat}: drkit backup run")
            r = self.drkit_backup(env, f"r{i}")
            self.res.backup_runs.append(r | {"round": i})
            self.say(f"  {r['wall_s']:.1f}s, {r['bytes'] / 1e6:.0f} MB stored, peak RSS {_mib(r['self_peak_kib'])} MiB")

        z0 = self.dumps / "z0.dump"
        self.say("pg_dump -Fc -Z0 for the tuned baseline (timed for information)")
        r = self.pg_dump(ds, z0, compress="0", tag="z0")
        self.res.extra["pg_dump_z0"] = r
        self.say(f"  {r['wall_s']:.1f}s, {r['bytes'] / 1e6:.0f} MB")

        tuned_settings = {**DEFAULT_SETTINGS, "max_parallel_maintenance_workers": str(TUNED_JOBS)}
        sides = (
            ("default pg_restore", plain, default_settings(), None),
            (f"tuned pg_restore -j{TUNED_JOBS}", z0, tuned_settings, TUNED_JOBS),
        )
        for i in range(1, a.repeat + 1):
            for label, dump, settings, jobs in sides:
                self.say(f"restore round {i}/{a.repeat}: {label}")
                dropped = self._drop()
                r = baseline_restore(
                    self.tools,
                    label=label,
                    dump=dump,
                    settings=settings,
                    jobs=jobs,
                    checks=checks,
                    parent=self.tmp,
                    logs=self.logs,
                    dropped=dropped,
                )
                self.res.restore_runs.append(r | {"round": i})
                self.say(
                    f"  restore+checks {r['steps_s']:.1f}s (pg_restore {r['pg_restore_s']:.1f}s), "
                    f"wall {r['wall_s']:.1f}s"
                )
            self.say(f"restore round {i}/{a.repeat}: drkit drill run")
            r = self.drkit_drill(env, f"r{i}")
            self.res.restore_runs.append(r | {"round": i})
            self.say(
                f"  restore+verify steps {r['steps_s']:.1f}s (decrypted in {r['decrypt_spool_s']}s, while "
                f"loading tables {r['streamed_load_s']}s, then pg_restore -j {r['rest_pg_restore_s']}s, "
                f"verify {r['verify_step_s']:.1f}s), wall {r['wall_s']:.1f}s, "
                f"peak RSS {_mib(r['self_peak_kib'])} MiB"
            )
        self.memory(ds, env)
        return self.res

    def memory(self, main: Dataset, main_env: DrkitEnv) -> None:
        for scale in self.args.mem_scales:
            if scale == main.scale:
                backups = [r for r in self.res.backup_runs if r["side"] == "drkit backup run"]
                drills = [r for r in self.res.restore_runs if r["side"] == "drkit drill run"]
                db_bytes = main.db_bytes
            else:
                noise = self.args.noise_mb * scale / main.scale
                ds = self.dataset(scale, noise)
                env = self.drkit_env(ds)
                self.say(f"memory at scale {scale}: drkit backup run + drkit drill run")
                backups = [self.drkit_backup(env, f"mem-s{scale}")]
                drills = [self.drkit_drill(env, f"mem-s{scale}")]
                db_bytes = ds.db_bytes
                drop_dataset(ds.name)
                self.databases.remove(ds.name)
                shutil.rmtree(env.root.parent, ignore_errors=True)
            entry = {
                "scale": scale,
                "db_bytes": db_bytes,
                "backup_self_peak_kib": max(r["self_peak_kib"] for r in backups),
                "backup_tree_peak_kib": max(r["tree_peak_kib"] for r in backups),
                "backup_children_peak_kib": backups[-1]["children_peak_kib"],
                "drill_self_peak_kib": max(r["self_peak_kib"] for r in drills),
                "drill_tree_peak_kib": max(r["tree_peak_kib"] for r in drills),
                "drill_children_peak_kib": drills[-1]["children_peak_kib"],
            }
            self.res.memory.append(entry)
            self.say(
                f"  scale {scale}: backup peak RSS {_mib(entry['backup_self_peak_kib'])} MiB, "
                f"drill {_mib(entry['drill_self_peak_kib'])} MiB"
            )

    def cleanup(self) -> list[str]:
        """Drop databases, stop leftover clusters, remove the work dir; returns what went wrong."""
        problems: list[str] = []
        for name in list(self.databases):
            try:
                drop_dataset(name)
                self.databases.remove(name)
            except psycopg.Error as exc:
                problems.append(f"could not drop database {name}: {exc}")
        if self.tmp.exists():
            for stale in find_stale_clusters(self.tmp):
                try:
                    remove_stale_cluster(stale)
                except Exception as exc:  # report it and go on cleaning
                    problems.append(f"leftover cluster {stale}: {exc}")
            for left in self.tmp.iterdir():
                problems.append(f"drkit left {left.name} in its TMPDIR")
        if not self.args.keep_work:
            shutil.rmtree(self.work, ignore_errors=True)
        return problems


def summarize(res: Results) -> None:
    """Medians, ratios and PASS/MISS per target into res.summary / res.targets."""
    b, r = res.backup_runs, res.restore_runs
    s: dict[str, Any] = {}
    s["backup_pg_dump_s"] = _median(b, "pg_dump -Fc", "wall_s")
    s["backup_drkit_s"] = _median(b, "drkit backup run", "wall_s")
    tuned = f"tuned pg_restore -j{TUNED_JOBS}"
    for side, key in (("default pg_restore", "default"), (tuned, "tuned"), ("drkit drill run", "drkit")):
        s[f"restore_{key}_steps_s"] = _median(r, side, "steps_s")
        s[f"restore_{key}_wall_s"] = _median(r, side, "wall_s")
    for key in (
        "decrypt_spool_s",
        "streamed_load_s",
        "rest_pg_restore_s",
        "pg_restore_s",
        "verify_step_s",
        "provision_step_s",
        "teardown_step_s",
        "outside_steps_s",
    ):
        s[f"drkit_{key}"] = _median(r, "drkit drill run", key)
    for key in ("pg_restore_s", "checks_s", "setup_s"):
        s[f"default_{key}"] = _median(r, "default pg_restore", key)
        s[f"tuned_{key}"] = _median(r, tuned, key)
    res.summary = s

    def target(name: str, num: float | None, den: float | None, limit: float) -> None:
        ratio = None if not num or not den else num / den
        verdict = "n/a" if ratio is None else ("PASS" if ratio <= limit else "MISS")
        miss = None if ratio is None or ratio <= limit else f"{(ratio / limit - 1) * 100:.0f}% over"
        res.targets.append({"target": name, "ratio": ratio, "limit": limit, "verdict": verdict, "miss_by": miss})

    target("backup: drkit / pg_dump -Fc (wall)", s["backup_drkit_s"], s["backup_pg_dump_s"], TARGET_BACKUP)
    for measure in ("steps", "wall"):
        target(
            f"restore vs default pg_restore ({measure})",
            s[f"restore_drkit_{measure}_s"],
            s[f"restore_default_{measure}_s"],
            TARGET_RESTORE_DEFAULT,
        )
        target(
            f"restore vs tuned pg_restore -j{TUNED_JOBS} ({measure})",
            s[f"restore_drkit_{measure}_s"],
            s[f"restore_tuned_{measure}_s"],
            TARGET_RESTORE_TUNED,
        )
    if len(res.memory) >= 2:
        lo, hi = min(res.memory, key=lambda m: m["scale"]), max(res.memory, key=lambda m: m["scale"])
        for what in ("backup", "drill"):
            a, z = lo[f"{what}_self_peak_kib"], hi[f"{what}_self_peak_kib"]
            limit = max(MEM_SLACK_KIB, a * MEM_SLACK_RATIO)
            growth = z - a
            res.targets.append(
                {
                    "target": f"memory: {what} peak RSS flat, scale {lo['scale']} -> {hi['scale']}",
                    "ratio": z / a if a else None,
                    "limit": f"growth <= {limit / 1024:.0f} MiB",
                    "verdict": "PASS" if growth <= limit else "MISS",
                    "miss_by": None if growth <= limit else f"grew {growth / 1024:.0f} MiB",
                }
            )


def _f(v: float | None, unit: str = "s") -> str:
    return "-" if v is None else f"{v:.1f}{unit}"


CACHES = {True: "yes (sync; echo 3 > /proc/sys/vm/drop_caches)", False: "NO (not permitted)", None: "-"}


def render(res: Results) -> str:
    s, p = res.summary, res.params
    db_mb = res.dataset.get("db_bytes", 0) / 1e6
    after = f"{res.load_after[0]:.2f}" if res.load_after else "-"
    lines = [
        f"drkit PostgreSQL engine benchmark: scale {p['scale']}, noise {p['noise_mb']:g} MB "
        f"({db_mb:.0f} MB database), repeat {p['repeat']} (medians), PostgreSQL {p['postgres']}, {p['cpus']} CPUs",
        f"caches dropped before each timed run: {CACHES[res.drop_caches]}; "
        f"load average (1 min) before {res.load_before[0]:.2f}, after {after}",
        "",
        f"BACKUP {'':30s} {'wall':>8s}  {'size':>10s}",
    ]
    for side in ("pg_dump -Fc", "drkit backup run"):
        runs = [x for x in res.backup_runs if x["side"] == side]
        if runs:
            wall = _f(_median(res.backup_runs, side, "wall_s"))
            lines.append(f"  {side:34s} {wall:>8s}  {runs[-1]['bytes'] / 1e6:7.0f} MB")
    z0 = res.extra.get("pg_dump_z0")
    if z0:
        lines.append(f"  {'(info) pg_dump -Fc -Z0':34s} {_f(z0['wall_s']):>8s}  {z0['bytes'] / 1e6:7.0f} MB")

    def row(label: str, key: str, restore: str, checks: str, setup: str) -> str:
        cells = [s[f"restore_{key}_steps_s"], s[f"restore_{key}_wall_s"], s[restore], s[checks], s[setup]]
        return f"  {label:34s}" + "".join(f" {_f(v):>10s}" for v in cells)

    lines += [
        "",
        "RESTORE  steps = pg_restore + checks (drkit: report steps restore + verify), cluster start excluded;",
        "         wall = initdb + start + CREATE DATABASE + steps + stop + remove (drkit: the whole command)",
        f"  {'':34s}" + "".join(f" {h:>10s}" for h in ("steps", "wall", "pg_restore", "checks", "setup")),
        row("default cluster, pg_restore", "default", "default_pg_restore_s", "default_checks_s", "default_setup_s"),
        row(
            f"tuned cluster, -j{TUNED_JOBS} from -Z0 file",
            "tuned",
            "tuned_pg_restore_s",
            "tuned_checks_s",
            "tuned_setup_s",
        ),
        row("drkit drill run", "drkit", "drkit_pg_restore_s", "drkit_verify_step_s", "drkit_provision_step_s"),
        f"    drkit restore step: decrypt+decompress {_f(s['drkit_decrypt_spool_s'])} alongside provisioning and "
        f"the table loads {_f(s['drkit_streamed_load_s'])}, then the rest (pg_restore -j) "
        f"{_f(s['drkit_rest_pg_restore_s'])}; teardown {_f(s['drkit_teardown_step_s'])}; outside the drill's steps "
        f"(start-up, config, catalog, reports) {_f(s['drkit_outside_steps_s'])}",
    ]
    if res.memory:
        lines += ["", "PEAK RSS of the drkit process [largest in its process tree, incl. pg_dump/pg_restore/postgres]"]
        for m in res.memory:
            lines.append(
                f"  scale {m['scale']:>3d} ({m['db_bytes'] / 1e6:5.0f} MB):"
                f" backup {_mib(m['backup_self_peak_kib'])} MiB [{_mib(m['backup_tree_peak_kib'])}],"
                f" drill {_mib(m['drill_self_peak_kib'])} MiB [{_mib(m['drill_tree_peak_kib'])}]"
            )
    lines += ["", "TARGETS"]
    for t in res.targets:
        ratio = "-" if t["ratio"] is None else f"{t['ratio']:.2f}"
        miss = f"  ({t['miss_by']})" if t["miss_by"] else ""
        lines.append(f"  {t['verdict']:4s}  {t['target']:52s} {ratio:>6s}  (limit {t['limit']}){miss}")
    return "\n".join(lines)


def add_arguments(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--scale", type=int, default=50, help="pgbench scale (default 50, about 750 MB)")
    ap.add_argument("--noise-mb", type=float, default=200, help="MB of incompressible bytes (default 200)")
    ap.add_argument("--repeat", type=int, default=2, help="rounds of each side, interleaved (default 2)")
    ap.add_argument(
        "--mem-scales",
        type=lambda t: sorted({int(x) for x in t.split(",") if x.strip()}),
        default=[10, 50],
        help="scales for the peak-memory comparison (default 10,50; noise in proportion)",
    )
    ap.add_argument("--work-parent", type=Path, default=Path("/tmp"), help="where the work dir goes (default /tmp)")
    ap.add_argument("--keep-work", action="store_true", help="keep the work dir (logs, reports) for inspection")


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM takes the same cleanup path as Ctrl-C."""

    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    old = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


def run(args: argparse.Namespace, say: Callable[[str], None] = print) -> tuple[dict[str, Any], str, int]:
    """Run the whole PG benchmark; returns (figures, printed table, exit status)."""
    bench = Bench(args)
    bench.say(f"work dir {bench.work}; load average {bench.res.load_before}")
    status = 0
    error: str | None = None
    with sigterm_as_interrupt():
        try:
            bench.run()
        except KeyboardInterrupt:
            error, status = "interrupted", 130
        except (CommandFailed, RuntimeError, psycopg.Error, OSError) as exc:
            error, status = f"{type(exc).__name__}: {exc}", 1
        finally:
            bench.say("cleaning up")
            problems = bench.cleanup()
    res = bench.res
    res.load_after = load_average()
    summarize(res)
    data = asdict(res) | {"error": error, "cleanup_problems": problems}
    table = render(res)
    if error:
        table += f"\n\nERROR: {error}"
        status = status or 1
    if problems:
        table += "\n\nCLEANUP PROBLEMS:\n  " + "\n  ".join(problems)
        status = status or 1
    return data, table, status


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    add_arguments(ap)
    ap.add_argument("--out", type=Path, help="JSON results file (default /tmp/drkit-bench/<timestamp>-pg.json)")
    args = ap.parse_args()
    data, table, status = run(args)
    data["command"] = " ".join([sys.executable, *sys.argv])
    print("\n" + table)
    out = save_results(data, args.out, "pg")
    print(f"\ncommand: {data['command']}\nresults: {out}")
    return status


if __name__ == "__main__":
    sys.exit(main())
