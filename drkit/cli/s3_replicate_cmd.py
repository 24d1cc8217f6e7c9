"""`drkit s3 replicate NAME [--dry-run] [--yes]`: show the replication plan, confirm, apply.

The plan goes to stdout (it is the command's result, like `terraform plan`); progress and
questions go to stderr. On a terminal the backfill shows a rich progress bar; elsewhere (CI,
cron, a pipe) a log line every `LOG_EVERY_S` seconds and one at the end.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from drkit.cli import context_of
from drkit.cli.s3_cmds import s3

log = logging.getLogger("drkit.s3")
LOG_EVERY_S = 10.0


@s3.command("replicate")
@click.argument("name")
@click.option("--schedule", metavar="NAME", help="The schedule that lists NAME (when several do).")
@click.option("--dry-run", is_flag=True, help="Print the plan; change nothing.")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@click.option("--concurrency", default=8, show_default=True, type=click.IntRange(1, 64),
              help="Backfill copies in flight at once.")
@click.pass_context
def replicate(ctx: click.Context, name: str, schedule: str | None, dry_run: bool, yes: bool,
              concurrency: int) -> None:
    """Set up cross-region replication with KMS for the configured bucket NAME, and backfill it.

    Prints the plan first ("+ create", "~ change", "= unchanged"); with --dry-run stops there.
    Running it again changes only what drifted.
    """
    from drkit.jobs.s3_replicate import apply_replication, plan_replication

    context = context_of(ctx)
    plan = plan_replication(context, schedule, name)
    for line in plan.lines():
        click.echo(line)
    if not plan.pending:
        context.say("nothing to do: replication is set up as configured")
        return
    if dry_run:
        context.say("dry run: nothing changed")
        return
    if not yes and sys.stdin.isatty():  # the house rule: ask a person, never a pipe (CI passes --yes anyway)
        click.confirm(f"apply these {len(plan.pending)} change(s)?", abort=True, err=True)
    with _progress(context.console.is_terminal and not context.console.quiet) as progress:
        result = apply_replication(context, plan, progress=progress, concurrency=concurrency)
    context.say(f"[green]done[/]: {len(result.applied)} change(s) applied" + (
        f"; backfill job {result.batch_job} started" if result.batch_job else
        f"; {result.copied} object(s) copied" if plan.backfill.missing else ""))


@contextmanager
def _progress(tty: bool) -> Iterator[Callable[[int, int, str], None]]:
    """A progress callback: a rich bar on a terminal, a log line every LOG_EVERY_S elsewhere."""
    if tty:
        columns = (TextColumn("backfill"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                   TextColumn("{task.description}"))
        with Progress(*columns, transient=False) as bar:
            task = bar.add_task("", total=None)

            def tick(done: int, total: int, key: str) -> None:
                bar.update(task, completed=done, total=total, description=key[-40:])

            yield tick
        return
    last = [0.0, 0]

    def line(done: int, total: int, key: str) -> None:
        now = time.monotonic()
        if done == total or now - last[0] >= LOG_EVERY_S:
            last[0], last[1] = now, done
            log.info("backfill: %d of %d objects copied", done, total)

    yield line
