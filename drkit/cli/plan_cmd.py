"""`drkit plan`."""

from __future__ import annotations

import json

import click
from rich.table import Table

from drkit.cli import cli, context_of, output_option
from drkit.cli.drill_cmds import parse_time


@cli.command("plan")
@click.argument("schedule", required=False)
@click.option("--at", "at_text", metavar="TIME", help="Plan as of this time (ISO-8601 with a zone; default now).")
@output_option
@click.pass_context
def plan_cmd(ctx: click.Context, schedule: str | None, at_text: str | None, output: str) -> None:
    """What the scheduler would do at TIME: snapshots, copies, backups, prunes. Changes nothing."""
    from drkit.jobs.plan import plan

    context = context_of(ctx)
    at = parse_time(at_text, "--at") or context.clock.now()
    actions, warnings = plan(context, schedule, at)
    if output == "json":
        click.echo(json.dumps({"at": at.isoformat(), "actions": [a.to_dict() for a in actions],
                               "warnings": warnings}, indent=2))
        return
    for line in warnings:
        context.say(f"[yellow]warning[/] {line}")
    if not actions:
        context.say(f"nothing to do at {at.isoformat()}")
        return
    table = Table("SCHEDULE", "ACTION", "RESOURCE", "REGION", "TARGET", "WHY", box=None)
    for a in actions:
        table.add_row(a.schedule, a.action, a.resource, a.region or "local", a.target or "-", a.reason)
    context.out.print(table)
