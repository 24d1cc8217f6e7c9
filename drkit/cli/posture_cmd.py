"""`drkit posture [SCHEDULE]`: worst-case RPO and RTO per resource and failure scenario."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import click
from rich.markup import escape
from rich.table import Table

from drkit.cli import cli, context_of, output_option
from drkit.domain.durations import format_duration
from drkit.domain.posture import Facts, PostureLine, targets_missed
from drkit.errors import ExitStatus
from drkit.jobs.context import Context


def _d(value: timedelta) -> str:
    text = format_duration(value)
    if value < timedelta(minutes=1):
        return f"{int(value.total_seconds())}s"
    return text[:-3] if text.endswith(("m00s", "h00m")) else text


def _seconds(value: timedelta | None) -> float | None:
    return None if value is None else value.total_seconds()


def as_json(line: PostureLine) -> dict[str, Any]:
    """The stable JSON shape of one line (keys documented in `drkit posture --help`)."""
    band = line.rto_estimate
    return {
        "schedule": line.schedule,
        "resource": line.resource,
        "engine": line.engine,
        "scenario": line.scenario,
        "rpo_worst_s": _seconds(line.rpo_worst),
        "rpo_target_s": line.rpo_target.total_seconds(),
        "rpo_met": line.rpo_met,
        "rto_estimate_s": None if band is None else [band[0].total_seconds(), band[1].total_seconds()],
        "rto_target_s": line.rto_target.total_seconds(),
        "rto_met": line.rto_met,
        "basis": line.basis,
        "fix": line.fix,
    }


def _rpo_cell(line: PostureLine) -> str:
    unbounded_or_unknown = "unbounded" if line.rpo_met is False else "unknown"
    worst = _d(line.rpo_worst) if line.rpo_worst is not None else unbounded_or_unknown
    verdict = {True: "[green]met[/]", False: "[red]MISSED[/]", None: "[yellow]unknown[/]"}[line.rpo_met]
    return f"{worst} vs {_d(line.rpo_target)}: {verdict}"


def _rto_cell(line: PostureLine) -> str:
    band = line.rto_estimate
    target = _d(line.rto_target)
    if band is None:
        if line.rto_met is False:
            return f"no restore possible vs {target}: [red]MISSED[/]"
        return f"unknown vs {target}: [yellow]unknown[/]"
    lo, hi = band
    shown = _d(hi) if lo == hi else f"{_d(lo)}-{_d(hi)}"
    if hi <= line.rto_target:
        verdict = "[green]met[/]"
    elif lo <= line.rto_target:
        verdict = "[yellow]at risk[/]"  # the target lies inside the band: a drill decides
    else:
        verdict = "[red]MISSED[/]"
    return f"{shown} (estimate) vs {target}: {verdict}"


def _gather(context: Context, schedule: str | None) -> dict[str, Facts]:
    """Facts from AWS per schedule; each gap is a warning on stderr, never an error."""
    from drkit.jobs.posture_facts import gather_facts

    names = [schedule] if schedule is not None else sorted(context.config().schedules)
    found: dict[str, Facts] = {}
    for name in names:
        found[name] = gathered = gather_facts(context, name)
        for warning in gathered.warnings:
            context.say(f"[yellow]warning[/]: {escape(warning)}")
    return found


@cli.command()
@click.argument("schedule", required=False)
@click.option(
    "--with-aws",
    is_flag=True,
    help="read the settings only AWS knows (backup retention, Multi-AZ, cross-region backups, "
    "S3 versioning, replication and RTC) with the schedule's AWS credentials (read-only).",
)
@output_option
@click.pass_context
def posture(ctx: click.Context, schedule: str | None, with_aws: bool, output: str) -> None:
    """Worst-case RPO and estimated RTO per resource and failure scenario (instance loss,
    AZ loss, region loss, logical corruption) that SCHEDULE's configuration implies (every
    schedule when omitted), against its targets, with what would fix a miss.

    RPO comes from the configuration (cron gaps, copies, replication); RTO is an estimate
    band (restores grow with data size: measure them with `drkit drill run`). Settings that
    only AWS knows (automated backups, Multi-AZ, cross-region backups) show as "unknown"
    unless --with-aws reads them; what cannot be read stays unknown, with a warning.

    JSON keys (-o json, a list): schedule, resource, engine, scenario, rpo_worst_s,
    rpo_target_s, rpo_met, rto_estimate_s [low, high], rto_target_s, rto_met, basis, fix;
    null means unbounded or unknown.

    Exit status: 0 when every target can be met or is unknown; 3 when the configuration
    cannot meet a target (an RPO miss, or an RTO estimate entirely over the target);
    2 for a configuration error or an unknown SCHEDULE.
    """
    from drkit.jobs.posture import posture as run_posture

    context = context_of(ctx)
    facts = _gather(context, schedule) if with_aws else None
    lines = run_posture(context, schedule, with_facts=False, facts=facts)
    missed = targets_missed(lines)
    if output == "json":
        click.echo(json.dumps([as_json(line) for line in lines], indent=2))
    else:
        several = len({line.schedule for line in lines}) > 1
        headers = (["SCHEDULE"] if several else []) + ["RESOURCE", "SCENARIO", "WORST RPO", "RTO"]
        table = Table(*headers, box=None)
        for line in lines:
            cells = [line.resource, line.scenario, _rpo_cell(line), _rto_cell(line)]
            table.add_row(*([line.schedule] if several else []), *cells)
        context.out.print(table)
        for line in lines:
            if line.rpo_met is True and line.rto_met is not False:
                continue
            who = f"{line.schedule}/{line.resource}" if several else line.resource
            context.out.print(f"\n{escape(who)} {line.scenario}:", highlight=False)
            context.out.print(f"  why: {escape(line.basis)}", highlight=False)
            if line.fix:
                context.out.print(f"  fix: {escape(line.fix)}", highlight=False)
    if missed:
        names = ", ".join(f"{line.resource} {line.scenario}" for line in missed)
        context.say(f"[red]{len(missed)} target(s) cannot be met by this configuration[/]: {escape(names)}")
        ctx.exit(int(ExitStatus.TARGETS_MISSED))
