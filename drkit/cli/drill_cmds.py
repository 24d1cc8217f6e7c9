"""`drkit drill run|history|cleanup`, `drkit verify`."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import click
from rich.table import Table

from drkit.cli import cli, context_of, output_option
from drkit.domain.durations import format_duration, parse_duration
from drkit.errors import DrkitError, ExitStatus, UsageError


def parse_time(text: str | None, what: str) -> datetime | None:
    if text is None:
        return None
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise UsageError(f"{what}: {text!r} is not an ISO-8601 time (e.g. 2026-11-28T10:00:00Z)") from exc
    if value.tzinfo is None:
        raise UsageError(f"{what}: {text!r} has no time zone; add Z or +HH:MM")
    return value


@cli.group()
def drill() -> None:
    """Recovery drills: restore into isolation, verify, measure RTO/RPO, tear down, report."""


@drill.command("run")
@click.argument("name")
@click.option("--keep", is_flag=True, help="Keep the restored copy for inspection (no teardown).")
@click.option(
    "--report-dir", type=click.Path(path_type=Path), help="Where reports go (default: the drill's report.dir)."
)
@click.option(
    "--incident-at", metavar="TIME", help="When the incident happened (default: now); RTO and RPO count from it."
)
@click.option("--jobs", "-j", type=click.IntRange(1, 64), help="Parallel restore jobs (default: CPUs, at most 4).")
@output_option
@click.pass_context
def drill_run(
    ctx: click.Context,
    name: str,
    keep: bool,
    report_dir: Path | None,
    incident_at: str | None,
    jobs: int | None,
    output: str,
) -> None:
    """Run drill NAME end to end. Exit 0 passed, 1 failed, 3 targets missed, 130 interrupted."""
    from drkit.jobs.drill import exit_status, run_drill_job, summary_lines

    context = context_of(ctx)
    report, paths, error = run_drill_job(
        context,
        name,
        keep=keep,
        report_dir=report_dir,
        incident_at=parse_time(incident_at, "--incident-at"),
        jobs=jobs,
    )
    if output == "json":  # the signed report as written, so a pipeline can keep or verify it
        signed = paths.get("json")
        click.echo(signed.read_text() if signed else json.dumps(report.to_dict(), indent=2))
    for line in summary_lines(report, paths):
        context.say(line)
    if error is not None and not isinstance(error, DrkitError | KeyboardInterrupt):
        raise error
    if isinstance(error, DrkitError):
        click.echo(f"drkit: {error}", err=True)
    ctx.exit(int(exit_status(report, error)))


@drill.command("history")
@click.argument("name", required=False)
@click.option("--limit", default=20, show_default=True)
@output_option
@click.pass_context
def drill_history(ctx: click.Context, name: str | None, limit: int, output: str) -> None:
    """Past drills with achieved RTO/RPO against targets, newest first."""
    runs = context_of(ctx).catalog().drill_runs(name, limit=limit)
    if output == "json":
        out = []
        for r in runs:
            rep = r.report or {}
            out.append(
                {
                    "id": r.id,
                    "drill": r.drill,
                    "status": r.status,
                    "started_at": rep.get("started_at", r.started_at.isoformat()),
                    "rto": rep.get("rto"),
                    "rpo": rep.get("rpo"),
                    "report_path": r.report_path,
                }
            )
        click.echo(json.dumps(out, indent=2))
        return
    table = Table("STARTED", "DRILL", "STATUS", "RTO", "RPO", "REPORT", box=None)

    def cell(achieved: float | None, target: float | None) -> str:
        got = "-" if achieved is None else format_duration(achieved)
        return f"{got} / {format_duration(target or 0)}"

    for r in runs:
        table.add_row(
            r.started_at.strftime("%Y-%m-%d %H:%M"),
            r.drill,
            r.status,
            cell(r.rto_achieved_s, r.rto_target_s),
            cell(r.rpo_achieved_s, r.rpo_target_s),
            r.report_path or "",
        )
    context_of(ctx).out.print(table) if runs else click.echo("no drills recorded", err=True)


@drill.command("cleanup")
@click.option("--older-than", metavar="DURATION", default="0s", help="Only leftovers older than this.")
@click.option("--apply", is_flag=True, help="Remove them (default: only list).")
@click.pass_context
def drill_cleanup(ctx: click.Context, older_than: str, apply: bool) -> None:
    """Find (and with --apply remove) ephemeral clusters and work files that drills left behind."""
    from drkit.jobs.cleanup import find_leftovers, remove_leftover

    context = context_of(ctx)
    try:
        age = parse_duration(older_than) if older_than not in ("0", "0s") else None
    except ValueError as exc:
        raise UsageError(f"--older-than: {exc}") from exc
    found = find_leftovers(context, age)
    for item in found:
        click.echo(f"{'removing' if apply else 'left behind'}: {item.kind} {item.path} ({item.why})")
        if apply:
            remove_leftover(item)
    if not found:
        click.echo("nothing left behind")
    elif not apply:
        context.say(f"{len(found)} leftover(s); run with --apply to remove them")


@cli.command("verify")
@click.argument("drill_name", metavar="DRILL")
@click.option("--dsn", help="libpq connection string of the restored database.")
@click.option("--rds-instance", metavar="NAME", help="A restored RDS instance (RDS engine).")
@click.option("--region", metavar="R")
@output_option
@click.pass_context
def verify_cmd(
    ctx: click.Context, drill_name: str, dsn: str | None, rds_instance: str | None, region: str | None, output: str
) -> None:
    """Run DRILL's checks against a database that is already restored (incidents)."""
    from drkit.verify import CheckSpec, run_checks

    if bool(dsn) == bool(rds_instance):
        raise UsageError("give exactly one of --dsn DSN or --rds-instance NAME")
    if rds_instance:
        raise UsageError("--rds-instance needs the RDS engine, which this drkit does not have yet; use --dsn")
    assert dsn is not None
    drill_cfg = context_of(ctx).config().drill(drill_name)
    checks = [
        CheckSpec(c.name, c.sql, None if c.expect is None else str(c.expect), bool(c.freshness))
        for c in drill_cfg.verify.checks
    ]
    result = run_checks(dsn, checks, what="the database to verify")
    if output == "json":
        click.echo(
            json.dumps(
                [
                    {"name": c.name, "passed": c.passed, "expected": c.expected, "actual": c.actual, "error": c.error}
                    for c in result.checks
                ],
                indent=2,
                default=str,
            )
        )
    else:
        for c in result.checks:
            mark = "ok" if c.passed else "FAILED"
            click.echo(
                f"{mark:6} {c.name}: {c.actual}"
                + (f" (expected {c.expected})" if c.expected else "")
                + (f" [{c.error}]" if c.error else "")
            )
    if not all(c.passed for c in result.checks):
        ctx.exit(int(ExitStatus.FAILED))
