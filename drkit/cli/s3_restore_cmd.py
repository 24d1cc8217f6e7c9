"""`drkit s3 restore --bucket B --to-time T [--prefix P] [--dry-run] [--yes]`.

Prints the plan (counts and a sample of keys with their from/to version ids) before anything
changes, asks on a terminal unless --yes (as `drkit prune` does: scripts and pipelines have no
terminal and are not asked), then applies it. The logic is drkit/jobs/s3_restore.py.
"""

from __future__ import annotations

import json
import sys
from datetime import datetime

import click
from rich.table import Table

from drkit.cli import context_of, output_option
from drkit.cli.s3_cmds import s3
from drkit.errors import ExitStatus, UsageError


def parse_time(value: str) -> datetime:
    """ISO-8601 with a zone (CONTRACT.md: times carry a zone); `Z` is UTC."""
    try:
        at = datetime.fromisoformat(value.strip())
    except ValueError:
        raise UsageError(f"--to-time {value!r} is not an ISO-8601 time, e.g. 2026-11-28T10:00:00Z") from None
    if at.tzinfo is None:
        raise UsageError(f"--to-time {value!r} has no time zone: add one, e.g. {value}Z or {value}+02:00")
    return at


@s3.command("restore")
@click.option("--bucket", required=True, metavar="B", help="The versioned bucket to bring back.")
@click.option("--to-time", "to_time", required=True, metavar="T", help="ISO-8601 time with a zone.")
@click.option("--prefix", default="", metavar="P", help="Only keys under this prefix.")
@click.option("--dry-run", is_flag=True, help="Print the plan; change nothing.")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@click.option("--force", is_flag=True, help="Go ahead although versioning is Suspended (overwrites null versions).")
@click.option("--concurrency", type=click.IntRange(1, 64), default=8, show_default=True,
              help="Copies and delete markers in flight at once.")
@output_option
@click.pass_context
def s3_restore(
    ctx: click.Context, bucket: str, to_time: str, prefix: str, dry_run: bool, yes: bool, force: bool,
    concurrency: int, output: str,
) -> None:
    """Bring bucket B (or prefix P of it) back to how it was at T, keeping every version."""
    from drkit.jobs.s3_restore import action_dict, apply_restore, plan_restore

    context = context_of(ctx)
    at = parse_time(to_time)
    plan = plan_restore(context, bucket, at, prefix=prefix, force=force)
    where = f"s3://{bucket}/{prefix}"
    context.say(
        f"plan for {where} back to {at.isoformat()}: restore {plan.restores}, delete {plan.deletes}, "
        f"unchanged {plan.unchanged} ({plan.keys} keys, {plan.region})"
    )
    if output == "table" and plan.changes:
        table = Table("KEY", "ACTION", "FROM", "TO", "WHY", box=None)
        for a in plan.sample():
            row = action_dict(a)
            current = "delete marker" if row["from_is_delete_marker"] else (row["from"] or "-")
            table.add_row(a.key, a.kind, current, row["to"] or "(absent)", a.reason)
        context.out.print(table)
        if len(plan.changes) > len(plan.sample()):
            context.say(f"... and {len(plan.changes) - len(plan.sample())} more")
    if plan.replicas and plan.changes:
        context.say(
            f"note: {bucket} replicates to {', '.join(plan.replicas)}; the restore's copies and delete "
            "markers are new writes and will be replicated there too"
        )
    report = plan.to_dict()
    if dry_run or not plan.changes:
        context.say("dry run: nothing changed" if dry_run else "nothing to do: already as it was at that time")
        if output == "json":
            click.echo(json.dumps({**report, "applied": False}, indent=2))
        return
    if not yes and sys.stdin.isatty():
        click.confirm(
            f"restore {plan.restores} and hide {plan.deletes} object(s) in {where}?", abort=True, err=True
        )
    result = apply_restore(context, plan, concurrency=concurrency)
    for key, error in result.failed[:10]:
        context.say(f"[red]FAILED[/] {key}: {error}")
    context.say(
        f"restored {result.restored}, deleted {result.deleted}, failed {len(result.failed)}"
        + ("" if result.complete else " (stopped early: run again to continue)")
    )
    if output == "json":
        click.echo(json.dumps({**report, "applied": True, **result.to_dict()}, indent=2))
    if result.failed or not result.complete:
        ctx.exit(int(ExitStatus.FAILED))
