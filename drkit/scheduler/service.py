"""`drkit scheduler run`: the long-running service, and `--once` for cron/Kubernetes CronJobs.

How it fits together:

- APScheduler 3 (BackgroundScheduler) holds one cron job per JobSpec in a persistent
  SQLAlchemyJobStore in the catalog database (table drkit_apscheduler_jobs); its trigger
  (scheduler.cron.SlotTrigger) fires at drkit's own cron slots, not CronTrigger's, with coalesce,
  max_instances=1 and a misfire grace (default 6 h): a slot missed while no scheduler was up
  fires once when the next leader starts.
- APScheduler only *enqueues* (its job function is `drkit.scheduler.service:run_spec`, a
  textual reference it can pickle). The main thread runs the queue, one job at a time, so that
  SIGTERM/Ctrl-C raise drkit.signals.Interrupted inside the job and its own `finally` blocks
  (child processes, drill teardown) run before drkit exits. The price: jobs run one after
  another; a long drill delays the next heartbeat (which then runs once, coalesced).
- Before running, every job is re-checked against the catalog: it runs only if its newest
  cron slot has no successful run yet. This makes runs once-per-slot across restarts, leader
  failover and `--once`, whatever APScheduler's own bookkeeping saw.
- Leader election (drkit.scheduler.leader): only the lock holder schedules; followers retry
  every `leader_retry` and take over when the leader dies. On taking over, jobs whose newest
  slot is within the misfire grace and has no success run at once (catch-up).
- SIGHUP reloads the configuration and reconciles the job store (add, remove, re-trigger); a
  broken configuration keeps the current jobs, logs one line and alerts once.
- Every run is recorded in the catalog's job_runs (job = kind), counted in /metrics, and
  failures/missed runs become incidents (drkit.notify: one alert per incident).
"""

from __future__ import annotations

import logging
import queue
import signal
import threading
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from types import FrameType
from typing import Any

from drkit import signals
from drkit.catalog import Catalog, default_catalog_url
from drkit.catalog.alerts import CatalogIncidentStore
from drkit.catalog.connect import create_catalog_engine, mask, normalize_url
from drkit.clock import Clock, SystemClock
from drkit.config import Config, load_config
from drkit.errors import DrkitError, ExitStatus, Interrupted
from drkit.jobs.context import Context
from drkit.jobs.registry import JobSpec, job_specs, run_job
from drkit.metrics import Metrics, MetricsServer
from drkit.notify import Incidents, Notifier
from drkit.scheduler.cron import apscheduler_trigger, is_due, is_missed, last_slot
from drkit.scheduler.leader import LeaderLock, leader_lock_for
from drkit.scheduler.state import RunState

log = logging.getLogger("drkit.scheduler")

JOB_FUNC = "drkit.scheduler.service:run_spec"
JOBSTORE_TABLE = "drkit_apscheduler_jobs"
# Kinds whose missed slot is an incident by itself (a late heartbeat or verify is not).
MISSED_KINDS = frozenset({"pg-backup", "rds-snapshot", "rds-copy"})
CONFIG_KEY = ("", "config", "")


@dataclass(frozen=True)
class ServiceOptions:
    metrics_port: int = 9187  # 0: no HTTP endpoint
    metrics_addr: str = "127.0.0.1"
    misfire_grace: timedelta = timedelta(hours=6)
    missed_grace: timedelta = timedelta(hours=1)
    leader_retry_s: float = 10.0
    tick_s: float = 15.0


@dataclass
class _Status:
    """What /healthz looks at (written by the main thread, read by the HTTP thread)."""

    alive_mono: float = 0.0
    tick_mono: float = 0.0
    leader: bool = False
    running: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


# The service of this process: APScheduler calls run_spec by reference and cannot carry it.
_ACTIVE: Service | None = None


def run_spec(config_dir: str, catalog_url: str, spec_id: str) -> None:
    """APScheduler's job function: hand the slot to this process's service to run."""
    service = _ACTIVE
    if service is None:
        log.warning("job %s fired but no scheduler service runs in this process; ignored", spec_id)
        return
    service.enqueue(spec_id)


class Service:
    """The scheduler: `run()` for the service, `run_once()` for --once. Both return an exit status."""

    def __init__(
        self,
        config_dir: Path,
        catalog_url: str | None,
        options: ServiceOptions | None = None,
        *,
        clock: Clock | None = None,
        lock: LeaderLock | None = None,
    ) -> None:
        self.config_dir = Path(config_dir)
        self.catalog_url = catalog_url or default_catalog_url()
        self.options = options or ServiceOptions()
        self.clock = clock or SystemClock()
        self.cfg: Config = load_config(self.config_dir)  # a broken config stops here: exit 2
        self.specs = {s.id: s for s in job_specs(self.cfg)}
        self.catalog = Catalog.open(self.catalog_url, clock=self.clock)  # also migrates
        self.engine = create_catalog_engine(normalize_url(self.catalog_url))
        self.state = RunState(self.engine)
        self.metrics = Metrics()
        self.incidents = Incidents(CatalogIncidentStore(self.engine), self.notifier_for, self.clock)
        self.lock = lock or leader_lock_for(self.catalog_url)
        self.started_at = self.clock.now()
        self.status = _Status()
        self._queue: queue.Queue[str] = queue.Queue()
        self._pending: set[str] = set()
        self._pending_lock = threading.Lock()
        self._reload = threading.Event()
        self._scheduler: Any = None
        self._job_interrupted = False

    # -- running one job ------------------------------------------------------------------

    def notifier_for(self, schedule: str) -> Notifier:
        """That schedule's channels; for service-wide incidents, every schedule's."""
        if schedule in self.cfg.schedules:
            return Notifier.from_schedule(self.cfg.schedules[schedule])
        channels = [c for s in self.cfg.schedules.values() for c in Notifier.from_schedule(s).channels]
        return Notifier(channels)

    def context(self) -> Context:
        ctx = Context(
            config_dir=self.config_dir, catalog_url=self.catalog_url, clock=self.clock,
            _config=self.cfg, _catalog=self.catalog,
        )  # fmt: skip
        ctx.cache["metrics"] = self.metrics  # jobs with figures of their own (s3 verify) export them
        return ctx

    def run_one(self, spec: JobSpec) -> str:
        """Run `spec` if its newest slot has no success yet; returns ok|failed|skipped.

        Raises Interrupted (after recording the run as interrupted) on SIGTERM/Ctrl-C.
        """
        label = f"{spec.kind} {spec.schedule}/{spec.resource or '-'}"
        now = self.clock.now()
        slot = last_slot(spec.cron, spec.timezone, now)
        with signals.shielded():
            history = self.state.history(spec)
        if not is_due(slot, history.last_success_start):
            log.info("%s: already done for its %s slot; skipping", label, slot.isoformat())
            return "skipped"
        with signals.shielded():
            job_id = self.catalog.start_job(spec.kind, spec.schedule, spec.resource)
        log.info("%s: started (slot %s)", label, slot.isoformat())
        t0 = self.clock.monotonic()
        status, detail = "ok", ""
        try:
            run_job(self.context(), spec)
            signals.check()  # an interrupt some job swallowed still stops us
        except (Interrupted, KeyboardInterrupt) as exc:
            self._finish(spec, job_id, "interrupted", str(exc), t0)
            self._job_interrupted = True
            raise
        except DrkitError as exc:
            if signals.received():  # e.g. run_backup reports an interrupt as a failed backup
                self._finish(spec, job_id, "interrupted", str(exc), t0)
                self._job_interrupted = True
                raise Interrupted(signals.received() or "SIGTERM") from exc
            status, detail = "failed", str(exc)
        except Exception as exc:  # a bug in a job must not kill the service; it is still a failure
            log.exception("%s: unexpected error", label)
            status, detail = "failed", f"{type(exc).__name__}: {exc}"
        self._finish(spec, job_id, status, detail, t0)
        return status

    def _finish(self, spec: JobSpec, job_id: int, status: str, detail: str, t0: float) -> None:
        label = f"{spec.kind} {spec.schedule}/{spec.resource or '-'}"
        seconds = self.clock.monotonic() - t0
        with signals.shielded():
            try:
                self.catalog.finish_job(job_id, status, detail)
            except DrkitError as exc:
                log.error("%s: could not record the run in the catalog: %s", label, exc)
            self.metrics.record_run(spec.kind, spec.schedule, spec.resource, status, seconds, self.clock.now())
            key = (spec.schedule, spec.kind, spec.resource or "")
            try:
                if status == "ok":
                    log.info("%s: ok in %.1fs", label, seconds)
                    self.incidents.succeeded(key, f"drkit: {label} is working again")
                elif status == "failed":
                    log.error("%s: FAILED in %.1fs: %s", label, seconds, detail)
                    self.incidents.failed(key, f"drkit: {label} FAILED", detail)
                else:
                    log.warning("%s: interrupted after %.1fs", label, seconds)
            except DrkitError as exc:  # the catalog is down: say so, keep going
                log.error("%s: could not update alert state: %s", label, exc)

    # -- --once ---------------------------------------------------------------------------

    def run_once(self) -> int:
        """Run every due job once and return; 0 if another instance holds the leader lock."""
        if not self.lock.try_acquire():
            log.info("another drkit scheduler holds the leader lock (%s); nothing to do", self.lock.description)
            return int(ExitStatus.OK)
        try:
            results = [self.run_one(spec) for spec in self.specs.values()]
        finally:
            with signals.shielded():
                self.lock.release()
        ran = [r for r in results if r != "skipped"]
        failed = results.count("failed")
        log.info("scheduler --once: %d job(s) due, %d ran ok, %d failed", len(ran), len(ran) - failed, failed)
        return int(ExitStatus.FAILED if failed else ExitStatus.OK)

    # -- the service ----------------------------------------------------------------------

    def enqueue(self, spec_id: str) -> None:
        """Called from APScheduler's thread: queue a run unless one is already waiting or running."""
        with self._pending_lock:
            if spec_id in self._pending or spec_id == self.status.running:
                log.info("job %s is already queued or running; this slot is coalesced", spec_id)
                return
            self._pending.add(spec_id)
        self._queue.put(spec_id)

    def run(self) -> int:
        """The service loop, until SIGTERM/SIGINT: 0 if idle then, 130 if a job was interrupted."""
        global _ACTIVE
        _ACTIVE = self
        logging.getLogger("apscheduler").setLevel(max(logging.WARNING, logging.getLogger().level))
        previous_hup = _install_sighup(self._reload.set)
        server = self._start_http()
        try:
            self._loop()
        except (Interrupted, KeyboardInterrupt) as exc:
            log.info("scheduler: stopping (%s)", getattr(exc, "signame", "interrupt"))
        finally:
            with signals.shielded():
                self._step_down()
                if server is not None:
                    server.stop()
                _restore_sighup(previous_hup)
                _ACTIVE = None
        return int(ExitStatus.INTERRUPTED if self._job_interrupted else ExitStatus.OK)

    def close(self) -> None:
        self.catalog.close()
        self.engine.dispose()

    def _start_http(self) -> MetricsServer | None:
        if not self.options.metrics_port:
            return None
        try:
            opts = self.options
            return MetricsServer(self.metrics, self.healthy, opts.metrics_addr, opts.metrics_port).start()
        except OSError as exc:
            raise DrkitError(
                f"cannot serve metrics on {self.options.metrics_addr}:{self.options.metrics_port}: {exc.strerror}; "
                "pass another --metrics-port (0 turns the endpoint off)"
            ) from exc

    def _loop(self) -> None:
        next_try = 0.0
        following_logged = False
        while True:
            # Housekeeping talks to the database: a signal must not land in the middle of a query
            # (it would leave the connection unusable and the error could hide the signal), so it
            # is deferred to the end of this block. Waiting and running jobs stay interruptible.
            with signals.shielded():
                mono = self.clock.monotonic()
                self.status.alive_mono = mono
                if self._reload.is_set():
                    self._reload.clear()
                    self.reload()
                if not self.status.leader:
                    if mono >= next_try:
                        if self.lock.try_acquire():
                            self._become_leader()
                            following_logged = False
                        else:
                            next_try = mono + self.options.leader_retry_s
                            if not following_logged:
                                log.info(
                                    "follower: another replica is the leader (%s); retrying every %.0fs",
                                    self.lock.description, self.options.leader_retry_s,
                                )  # fmt: skip
                                following_logged = True
                elif mono - self.status.tick_mono >= self.options.tick_s:
                    self.tick()
            signals.check()  # a signal whose Interrupted was swallowed somewhere still stops us
            try:
                spec_id = self._queue.get(timeout=0.5)
            except queue.Empty:
                continue
            self._run_queued(spec_id)

    def _run_queued(self, spec_id: str) -> None:
        with self._pending_lock:
            self._pending.discard(spec_id)
            self.status.running = spec_id
        try:
            spec = self.specs.get(spec_id)
            if spec is None:
                log.info("job %s is no longer in the configuration; not run", spec_id)
            elif self.status.leader:
                self.run_one(spec)
        except DrkitError as exc:
            if isinstance(exc, Interrupted):
                raise
            log.error("job %s: %s", spec_id, exc)  # e.g. the catalog is unreachable
        finally:
            self.status.running = None

    def healthy(self) -> tuple[bool, str]:
        """For /healthz: the loop is alive and, when leading, ticking."""
        mono = self.clock.monotonic()
        status = self.status
        if status.running is not None:
            return True, f"ok: running {status.running}"
        if mono - status.alive_mono > max(30.0, 3 * self.options.leader_retry_s):
            return False, "scheduler loop is not responding"
        if status.leader and mono - status.tick_mono > 3 * self.options.tick_s + 30:
            return False, "leader has not checked its jobs recently"
        return True, "ok" if status.leader else "ok (follower)"

    # -- leadership -----------------------------------------------------------------------

    def _become_leader(self) -> None:
        from apscheduler.executors.pool import ThreadPoolExecutor
        from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
        from apscheduler.schedulers.background import BackgroundScheduler

        log.info("leader: this replica now runs the jobs (%s)", self.lock.description)
        self.status.leader = True
        self.metrics.leader.set(1)
        scheduler = BackgroundScheduler(
            jobstores={"default": SQLAlchemyJobStore(engine=self.engine, tablename=JOBSTORE_TABLE)},
            executors={"default": ThreadPoolExecutor(max_workers=2)},
            job_defaults={
                "coalesce": True,
                "max_instances": 1,
                "misfire_grace_time": int(self.options.misfire_grace.total_seconds()),
            },
            timezone="UTC",
        )
        scheduler.start(paused=True)
        self._scheduler = scheduler
        added, changed, removed = reconcile(scheduler, self.specs.values(), self._job_args, self.options)
        log.info("scheduler: %d job(s) (%d added, %d changed, %d removed)", len(self.specs), added, changed, removed)
        self._load_last_success()
        self._catch_up()
        scheduler.resume()
        self.tick()

    def _job_args(self, spec: JobSpec) -> list[str]:
        # The masked URL: job state is stored in the database, and needs no password to run.
        return [str(self.config_dir), mask(normalize_url(self.catalog_url)), spec.id]

    def _catch_up(self) -> None:
        """Run at once what is due within the misfire grace (e.g. the old leader died mid-slot)."""
        now = self.clock.now()
        for spec in self.specs.values():
            slot = last_slot(spec.cron, spec.timezone, now)
            if now - slot <= self.options.misfire_grace and is_due(slot, self.state.history(spec).last_success_start):
                self.enqueue(spec.id)

    def _load_last_success(self) -> None:
        for spec in self.specs.values():
            end = self.state.history(spec).last_success_end
            if end is not None:
                self.metrics.last_success.labels(spec.kind, spec.schedule, spec.resource or "").set(end.timestamp())

    def _step_down(self) -> None:
        if self._scheduler is not None:
            try:
                self._scheduler.shutdown(wait=False)
            except Exception as exc:  # the job store's database may be gone: we are leaving anyway
                log.warning("scheduler shutdown: %s", exc)
            self._scheduler = None
        if self.status.leader:
            self.lock.release()
        self.status.leader = False
        self.metrics.leader.set(0)
        with self._pending_lock:
            self._pending.clear()
        while not self._queue.empty():
            self._queue.get_nowait()

    def tick(self) -> None:
        """The leader's periodic check: still leader? metrics from the catalog; missed runs."""
        self.status.tick_mono = self.clock.monotonic()
        if not self.lock.still_held():
            log.error("leader: lost the leader lock (%s); stepping down", self.lock.description)
            self._step_down()
            return
        try:
            now = self.clock.now()
            self.metrics.set_recovery_points(self.catalog.recovery_points(), now)
            self.check_missed()
        except DrkitError as exc:
            log.error("scheduler tick: %s", exc)

    def check_missed(self) -> None:
        """Open a "missed" incident for each backup job whose slot passed (plus grace) without a run."""
        now = self.clock.now()
        for spec in self.specs.values():
            if spec.kind not in MISSED_KINDS or spec.id in self._pending or spec.id == self.status.running:
                continue
            key = (spec.schedule, spec.kind, spec.resource or "")
            if self.incidents.is_open(key):
                continue
            history = self.state.history(spec)
            slot = is_missed(
                spec.cron, spec.timezone, now,
                grace=self.options.missed_grace, last_start=history.last_start, since=self.started_at,
            )  # fmt: skip
            if slot is not None:
                label = f"{spec.kind} {spec.schedule}/{spec.resource}"
                self.incidents.failed(
                    key,
                    f"drkit: {label} MISSED its {slot.isoformat()} run",
                    f"no run started since {slot.isoformat()} (grace {self.options.missed_grace})",
                    reason="missed",
                )

    # -- configuration --------------------------------------------------------------------

    def reload(self) -> bool:
        """Re-read the configuration (SIGHUP); a broken one keeps the current jobs."""
        try:
            cfg = load_config(self.config_dir)
            specs = {s.id: s for s in job_specs(cfg)}
        except DrkitError as exc:
            lines = str(exc).splitlines() or [type(exc).__name__]
            more = f" (and {len(lines) - 1} more problem(s))" if len(lines) > 1 else ""
            log.error("configuration reload failed; keeping the current jobs: %s%s", lines[0], more)
            try:
                summary = "drkit: configuration reload failed"
                self.incidents.failed(CONFIG_KEY, summary, "\n".join(lines), reason="config")
            except DrkitError as store_exc:
                log.error("could not record the configuration incident: %s", store_exc)
            return False
        self.cfg, self.specs = cfg, specs
        if self._scheduler is not None:
            added, changed, removed = reconcile(self._scheduler, specs.values(), self._job_args, self.options)
            log.info("configuration reloaded: %d added, %d changed, %d removed", added, changed, removed)
        else:
            log.info("configuration reloaded (%d jobs)", len(specs))
        try:
            self.incidents.succeeded(CONFIG_KEY, "drkit: configuration reloads cleanly again")
        except DrkitError as exc:
            log.error("could not record the configuration incident: %s", exc)
        return True


def reconcile(scheduler: Any, specs: Any, args_for: Any, options: ServiceOptions) -> tuple[int, int, int]:
    """Make the job store hold exactly `specs`: add new, re-trigger changed, remove gone.

    Unchanged jobs are left alone, so their stored next run time (and a pending misfire) survives.
    """
    existing = {job.id: job for job in scheduler.get_jobs()}
    grace = int(options.misfire_grace.total_seconds())
    added = changed = 0
    for spec in specs:
        trigger = apscheduler_trigger(spec.cron, spec.timezone)
        args = args_for(spec)
        job = existing.pop(spec.id, None)
        if job is None:
            scheduler.add_job(JOB_FUNC, trigger=trigger, id=spec.id, name=spec.id, args=args)
            added += 1
            continue
        if repr(job.trigger) != repr(trigger):
            job.reschedule(trigger)
            changed += 1
        if list(job.args) != args or job.misfire_grace_time != grace or job.func_ref != JOB_FUNC:
            job.modify(func=JOB_FUNC, args=args, misfire_grace_time=grace, coalesce=True, max_instances=1)
    for job_id in existing:
        scheduler.remove_job(job_id)
    return added, changed, len(existing)


def _install_sighup(callback: Any) -> Any:
    if threading.current_thread() is not threading.main_thread():
        return None

    def handler(signum: int, frame: FrameType | None) -> None:
        callback()

    return signal.signal(signal.SIGHUP, handler)


def _restore_sighup(previous: Any) -> None:
    if previous is not None and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGHUP, previous)
