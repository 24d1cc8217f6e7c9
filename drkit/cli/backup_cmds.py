"""`drkit backup run|list`, `drkit prune`, `drkit heartbeat`."""

from __future__ import annotations

import json
import sys
import time
from typing import Any

import click
from rich.table import Table

from drkit.cli import cli, context_of, output_option
from drkit.domain.durations import format_duration, parse_duration
from drkit.errors import DrkitError, ExitStatus, UsageError


@cli.group()
def backup() -> None:
    """Take and list recovery points."""


@backup.command("run")
@click.argument("schedule")
@click.option("--only", metavar="NAME", help="Only this resource of the schedule.")
@click.option("--dry-run", is_flag=True, help="Say what would be backed up; change nothing.")
@output_option
@click.pass_context
def backup_run(ctx: click.Context, schedule: str, only: str | None, dry_run: bool, output: str) -> None:
    """Run SCHEDULE's backup work now."""
    from drkit.jobs.backup import run_backup

    context = context_of(ctx)
    sched = context.config().schedule(schedule)
    pg_names = {r.name for r in sched.postgres}
    lenient = bool(sched.rds) and only is None  # one misconfigured database must not stop the RDS work
    outcomes = (
        run_backup(context, schedule, only=only, dry_run=dry_run, lenient=lenient)
        if only is None or only in pg_names
        else []
    )
    rds_failed = False
    if sched.rds and (only is None or only not in pg_names):
        from drkit.jobs.rds_backup import run_rds_backups

        rds = run_rds_backups(context, schedule, only=only, dry_run=dry_run)
        for r in rds.outcomes:
            context.say(f"{r.resource} ({r.kind}): {r.action} {r.snapshot_id} in {r.region}")
        for line in rds.warnings:
            context.say(f"[yellow]warning[/] {line}")
        for line in rds.errors:
            context.say(f"[red]FAILED[/] {line}")
        for sid in rds.deleted:
            context.say(f"pruned {sid}")
        rds_failed = bool(rds.errors)
    if output == "json":
        click.echo(
            json.dumps(
                [
                    {
                        "resource": o.resource,
                        "id": o.manifest.id if o.manifest else None,
                        "error": o.error,
                        "size_bytes": o.manifest.stored_bytes if o.manifest else None,
                    }
                    for o in outcomes
                ],
                indent=2,
            )
        )
    for o in outcomes:
        if o.manifest:
            m = o.manifest
            ratio = m.dump_bytes / m.stored_bytes if m.stored_bytes else 0
            context.say(
                f"[green]ok[/] {o.resource}: backup {m.id} ({m.stored_bytes / 1e6:.1f} MB stored, "
                f"{ratio:.1f}x compressed, encrypted with {m.key_id})"
            )
        else:
            context.say(f"[red]FAILED[/] {o.resource}: {o.error}")
    if any(o.error for o in outcomes) or rds_failed:
        ctx.exit(int(ExitStatus.FAILED))


@backup.command("list")
@click.option("--resource", metavar="NAME")
@click.option("--region", metavar="R", help="Only recovery points in this region (RDS).")
@output_option
@click.pass_context
def backup_list(ctx: click.Context, resource: str | None, region: str | None, output: str) -> None:
    """Recovery points with age, kind, encryption and size (newest first)."""
    from drkit.jobs.backup import list_points

    context = context_of(ctx)
    rows = list_points(context, resource=resource)
    rds_names = {r.name for s in context.config().schedules.values() for r in s.rds}
    incomplete = None
    if rds_names and (resource is None or resource in rds_names):
        from drkit.jobs.rds_plan import rds_points

        try:
            rows = sorted(rows + rds_points(context, resource=resource), key=lambda r: r["created_at"] or "",
                          reverse=True)
        except DrkitError as exc:
            # Say what is missing, but still show what could be listed (e.g. no AWS credentials here).
            incomplete = f"RDS recovery points not listed: {exc}"
    if region:
        rows = [r for r in rows if r["region"] == region]
    if output == "json":
        click.echo(json.dumps(rows, indent=2))
        if incomplete:
            click.echo(f"drkit: {incomplete}", err=True)
            ctx.exit(int(ExitStatus.FAILED))
        return
    table = Table("ID", "RESOURCE", "KIND", "AGE", "SIZE", "KEY", "STATUS", "REGION", box=None)
    for r in rows:
        age = "-" if r["age_s"] is None else format_duration(r["age_s"])
        table.add_row(r["id"], r["resource"], r["kind"], age, f"{(r['size_bytes'] or 0) / 1e6:.1f} MB",
                      r["key_id"] or "-", r["status"], r["region"] or "local")
    context.out.print(table) if rows else click.echo("no recovery points", err=True)
    if incomplete:
        click.echo(f"drkit: {incomplete}", err=True)
        ctx.exit(int(ExitStatus.FAILED))


@cli.command()
@click.argument("schedule")
@click.option("--only", metavar="NAME", help="Only this resource.")
@click.option("--apply", is_flag=True, help="Delete what the policy expires (default: only show it).")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@output_option
@click.pass_context
def prune(ctx: click.Context, schedule: str, only: str | None, apply: bool, yes: bool, output: str) -> None:
    """Retention: show what SCHEDULE's keep policies expire; delete only with --apply."""
    from drkit.jobs.prune import apply_prune, plan_prune

    context = context_of(ctx)
    sched = context.config().schedule(schedule)
    pg_names = {r.name for r in sched.postgres}
    items = plan_prune(context, schedule, only=only) if only is None or only in pg_names else []
    rows: list[dict[str, Any]] = [{"id": i.manifest.id, "resource": i.resource, "region": None, "kind": "dump",
             "created_at": i.manifest.created_at.isoformat(), "keep": i.keep, "reasons": list(i.reasons)}
            for i in items]
    rds_items: list[Any] = []
    if sched.rds and (only is None or only not in pg_names):
        from drkit.jobs.rds_prune import plan_rds_prune

        rds_items, warnings = plan_rds_prune(context, schedule, only=only)
        for line in warnings:
            context.say(f"[yellow]warning[/] {line}")
        rows += [{"id": i.snapshot.id, "resource": i.resource, "region": i.region, "kind": i.kind,
                  "created_at": i.snapshot.created_at.isoformat(), "keep": i.keep, "reasons": list(i.reasons)}
                 for i in rds_items]
    expired = [r for r in rows if not r["keep"]]
    if output == "json":
        click.echo(json.dumps(rows, indent=2))
    else:
        table = Table("ID", "RESOURCE", "REGION", "DECISION", "WHY", box=None)
        for r in rows:
            table.add_row(r["id"], r["resource"], r["region"] or "local", "keep" if r["keep"] else "[red]delete[/]",
                          ", ".join(r["reasons"]) or "no rule keeps it")
        context.out.print(table)
    if not apply:
        context.say(f"{len(expired)} of {len(rows)} recovery point(s) would be deleted; "
                    "run with --apply to delete them")
        return
    if expired and not yes and sys.stdin.isatty():
        click.confirm(f"delete {len(expired)} recovery point(s)?", abort=True, err=True)
    deleted = len(apply_prune(context, schedule, items))
    if rds_items:
        from drkit.jobs.rds_prune import apply_rds_prune

        deleted += len(apply_rds_prune(context, schedule, rds_items))
    context.say(f"deleted {deleted} recovery point(s); kept {len(rows) - deleted}")


@cli.command()
@click.argument("resource")
@click.option("--schedule", metavar="NAME", help="The schedule that lists RESOURCE (when several do).")
@click.option("--every", metavar="DURATION", help="Keep beating at this interval until stopped.")
@click.pass_context
def heartbeat(ctx: click.Context, resource: str, schedule: str | None, every: str | None) -> None:
    """Write the current time into RESOURCE's drkit_heartbeat table (data-level RPO)."""
    from drkit.jobs.heartbeat import beat

    context = context_of(ctx)
    try:
        interval = parse_duration(every).total_seconds() if every else None
    except ValueError as exc:
        raise UsageError(f"--every: {exc}") from exc
    while True:
        at = beat(context, resource, schedule)
        click.echo(f"{resource}: heartbeat {at.isoformat()}")
        if interval is None:
            return
        time.sleep(interval)
