"""`drkit restore postgres`."""

from __future__ import annotations

import sys

import click

from drkit.cli import cli, context_of
from drkit.cli.drill_cmds import parse_time
from drkit.domain.durations import format_duration
from drkit.pg.conn import mask_dsn


@cli.group()
def restore() -> None:
    """Incident restores into a target you name."""


@restore.command("postgres")
@click.option("--backup", "backup_id", metavar="ID", help="The backup to restore (see `drkit backup list`).")
@click.option(
    "--resource", metavar="NAME", help="Restore this resource's newest backup (with --before: the newest before)."
)
@click.option("--before", metavar="TIME", help="With --resource: the newest backup taken at or before TIME.")
@click.option("--dsn", required=True, help="libpq connection string of the target database (must exist).")
@click.option("--force", is_flag=True, help="Restore even though the target database is not empty.")
@click.option("--jobs", "-j", type=click.IntRange(1, 64), default=2, show_default=True)
@click.option("--keep-owners", is_flag=True, help="Restore ownership and grants (the roles must exist on the target).")
@click.option("--dry-run", is_flag=True, help="Show what would be restored where; change nothing.")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@click.pass_context
def restore_postgres(
    ctx: click.Context,
    backup_id: str | None,
    resource: str | None,
    before: str | None,
    dsn: str,
    force: bool,
    jobs: int,
    keep_owners: bool,
    dry_run: bool,
    yes: bool,
) -> None:
    """Restore a PostgreSQL backup into the database named by --dsn."""
    from drkit.jobs.restore import plan_restore, run_restore

    context = context_of(ctx)
    plan = plan_restore(context, dsn, backup_id=backup_id, resource=resource, before=parse_time(before, "--before"))
    m = plan.manifest
    context.say(
        f"restore {m.id} ({m.resource}, taken {m.created_at.isoformat()}, "
        f"{m.stored_bytes / 1e6:.1f} MB) into {mask_dsn(dsn)}"
    )
    if dry_run:
        context.say("dry run: nothing changed")
        return
    if force and not yes and sys.stdin.isatty():
        click.confirm("the target is restored on top of its current contents; continue?", abort=True, err=True)
    took = run_restore(context, plan, force=force, jobs=jobs, no_owner=not keep_owners)
    context.say(f"[green]restored[/] {m.id} in {format_duration(took)}")
