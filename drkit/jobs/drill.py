"""`drkit drill run` / `drkit drill history`: wire an engine into the shared drill steps,
show progress, write the signed reports and record the run in the catalog."""

from __future__ import annotations

import dataclasses
import logging
import threading
from datetime import datetime
from pathlib import Path
from typing import Any

from rich.progress import Progress, ProgressColumn, SpinnerColumn, Task, TextColumn, TimeElapsedColumn
from rich.text import Text

from drkit import signals
from drkit.catalog import DrillRunRecord
from drkit.domain.drill import REPORT, DrillSpec, run_drill
from drkit.domain.durations import format_duration
from drkit.domain.report import DrillReport, StepResult
from drkit.errors import ExitStatus, Interrupted, UsageError
from drkit.jobs.context import Context
from drkit.jobs.pgdrill import PostgresDrillEngine
from drkit.jobs.pgwiring import find_pg_resource
from drkit.render import write_report
from drkit.signing import ReportSigner, default_signing_key_path

log = logging.getLogger("drkit.drill")

LOG_EVERY_S = 30.0
EXIT_FOR_STATUS = {"passed": ExitStatus.OK, "targets_missed": ExitStatus.TARGETS_MISSED, "failed": ExitStatus.FAILED}


class _SinceIncident(ProgressColumn):
    """Live "time since the incident / RTO budget": the number an incident commander watches."""

    def __init__(self, view: _ProgressView) -> None:
        super().__init__()
        self.view = view

    def render(self, task: Task) -> Text:
        since = (self.view.ctx.clock.now() - self.view.incident_at).total_seconds()
        return Text(f"{format_duration(since)} since incident, RTO budget {self.view.budget}", style="dim")


class _ProgressView:
    """Elapsed time against the RTO budget: a live line on a terminal, log lines elsewhere."""

    def __init__(self, ctx: Context, budget_s: float, incident_at: datetime) -> None:
        self.ctx = ctx
        self.budget = format_duration(budget_s)
        self.incident_at = incident_at
        self.live = ctx.console.is_terminal
        self.progress: Progress | None = None
        self.task: Any = None
        self.current: str | None = None
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None

    def __enter__(self) -> _ProgressView:
        if self.live:
            self.progress = Progress(
                SpinnerColumn(),
                TextColumn("{task.description}"),
                TimeElapsedColumn(),
                _SinceIncident(self),
                console=self.ctx.console,
                transient=True,
            )
            self.progress.start()
        else:
            self._ticker = threading.Thread(target=self._tick, name="drkit-progress", daemon=True)
            self._ticker.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self.progress is not None:
            self.progress.stop()

    def _tick(self) -> None:
        """Without a terminal: a plain line every LOG_EVERY_S while a step runs, so logs show progress."""
        while not self._stop.wait(LOG_EVERY_S):
            if self.current:
                since = format_duration((self.ctx.clock.now() - self.incident_at).total_seconds())
                log.info(
                    "drill step %s: still running (%s since incident, RTO budget %s)", self.current, since, self.budget
                )

    def event(self, step: str, status: str, detail: str) -> None:
        since = format_duration((self.ctx.clock.now() - self.incident_at).total_seconds())
        self.current = step if status == "started" else None
        if status == "started":
            if self.progress is not None:
                if self.task is not None:
                    self.progress.remove_task(self.task)
                self.task = self.progress.add_task(step)
            else:
                log.info("drill step %s: started (%s since incident, RTO budget %s)", step, since, self.budget)
            return
        mark = {"ok": "[green]ok[/]", "failed": "[red]FAILED[/]", "skipped": "[yellow]skipped[/]"}[status]
        if self.live:
            self.ctx.say(f"  {mark} {step}: {detail}  [dim]({since} since incident)[/]")
        else:
            level = logging.ERROR if status == "failed" else logging.INFO
            log.log(level, "drill step %s: %s: %s (%s since incident)", step, status, detail, since)


def run_drill_job(
    ctx: Context,
    drill_name: str,
    *,
    keep: bool = False,
    report_dir: Path | None = None,
    incident_at: datetime | None = None,
    jobs: int | None = None,
) -> tuple[DrillReport, dict[str, Path], BaseException | None]:
    cfg = ctx.config()
    drill = cfg.drill(drill_name)
    if drill.source.postgres is None:
        raise UsageError(
            f"drill {drill_name}: the RDS engine is not available in this drkit yet (postgres drills only)"
        )
    res = find_pg_resource(cfg, str(drill.source.postgres.resource), str(drill.source.postgres.schedule))
    spec = DrillSpec(
        drill=drill_name,
        environment=str(drill.environment),
        scenario=str(drill.scenario),
        rto_target=drill.targets.rto,
        rpo_target=drill.targets.rpo,
        teardown=str(drill.teardown),
    )
    engine = PostgresDrillEngine(ctx, res, drill, jobs=jobs)
    incident = incident_at or ctx.clock.now()
    catalog = ctx.catalog()
    with _ProgressView(ctx, spec.rto_target.total_seconds(), incident) as view:
        report, error = run_drill(
            spec,
            engine,
            ctx.clock,
            incident_at=incident,
            keep=keep,
            shield=signals.shielded,
            on_event=view.event,
            checkpoint=signals.check,
        )
    if error is None and signals.received():
        error = Interrupted(signals.received() or "SIGTERM")  # a raise some library swallowed
    out_dir = report_dir or cfg.resolve_path(str(drill.report.dir))
    with signals.shielded():
        now = ctx.clock.now()
        report = dataclasses.replace(
            report,
            steps=(*report.steps, StepResult(REPORT, now, now, "ok", f"{out_dir}/{drill_name}/")),
        )
        history = [DrillReport.from_dict(r.report) for r in catalog.drill_runs(drill_name, limit=20) if r.report]
        paths = write_report(
            report,
            out_dir,
            list(drill.report.formats),
            signer=ReportSigner(default_signing_key_path()),
            history=list(reversed(history)),
        )
        signed = paths.get("json")
        stored = _load(signed) if signed else report.to_dict()
        catalog.record_drill(
            DrillRunRecord(
                id=report.id,
                drill=drill_name,
                environment=report.environment,
                engine=report.engine,
                scenario=report.scenario,
                status=report.status,
                started_at=report.started_at,
                finished_at=report.finished_at,
                incident_at=report.incident_at,
                rto_target_s=report.rto.target_s,
                rto_achieved_s=report.rto.achieved_s,
                rpo_target_s=report.rpo.target_s,
                rpo_achieved_s=report.rpo.achieved_s,
                rpo_method=report.rpo.method,
                report_path=str(signed) if signed else None,
                report=stored,
            )
        )
        catalog.audit("drill", drill_name, {"id": report.id, "status": report.status})
    return report, paths, error


def _load(path: Path) -> dict[str, Any]:
    import json

    return dict(json.loads(path.read_text()))


def exit_status(report: DrillReport, error: BaseException | None) -> ExitStatus:
    if isinstance(error, Interrupted | KeyboardInterrupt):
        return ExitStatus.INTERRUPTED
    return EXIT_FOR_STATUS[report.status]


def summary_lines(report: DrillReport, paths: dict[str, Path]) -> list[str]:
    def objective(label: str, o: Any) -> str:
        achieved = "not achieved" if o.achieved_s is None else format_duration(o.achieved_s)
        verdict = "[green]met[/]" if o.met else "[red]MISSED[/]"
        method = f" ({o.method})" if getattr(o, "method", None) else ""
        return f"  {label}: {achieved}{method} against a target of {format_duration(o.target_s)}: {verdict}"

    colour = {"passed": "green", "failed": "red", "targets_missed": "yellow"}[report.status]
    lines = [
        f"drill {report.drill}: [bold {colour}]{report.status.upper()}[/]",
        objective("RTO", report.rto),
        objective("RPO", report.rpo),
    ]
    passed = sum(c.passed for c in report.checks)
    lines.append(f"  checks: {passed}/{len(report.checks)} passed")
    for c in report.checks:
        if not c.passed:
            lines.append(
                f"    [red]FAILED[/] {c.name}: expected {c.expected}, got {c.actual}"
                + (f" ({c.error})" if c.error else "")
            )
    if report.resources.leaked:
        lines.append(f"  [bold red]LEAKED[/]: {', '.join(report.resources.leaked)}")
    if paths:
        lines.append("  reports: " + ", ".join(str(p) for p in paths.values()))
    return lines
