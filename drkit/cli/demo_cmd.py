"""`drkit demo`."""

from __future__ import annotations

from pathlib import Path

import click

from drkit.cli import cli, context_of
from drkit.errors import DrkitError


@cli.command()
@click.option("--scale", default=10, show_default=True, help="pgbench scale: 100,000 accounts per unit.")
@click.option("--report-dir", type=click.Path(path_type=Path), help="Where the drill report goes.")
@click.pass_context
def demo(ctx: click.Context, scale: int, report_dir: Path | None) -> None:
    """The whole main job on local PostgreSQL: back up, simulate an incident, drill, report."""
    from drkit.jobs.demo import run_demo
    from drkit.jobs.drill import exit_status, summary_lines

    context = context_of(ctx)
    report, paths, error = run_demo(context, scale=scale, report_dir=report_dir)
    context.say("")
    for line in summary_lines(report, paths):
        context.say(line)
    context.say(
        "  everything the demo started has been stopped and removed; "
        "see `drkit drill history` and `drkit backup list --resource app`"
    )
    if error is not None and not isinstance(error, DrkitError | KeyboardInterrupt):
        raise error
    if isinstance(error, DrkitError):
        click.echo(f"drkit: {error}", err=True)
    ctx.exit(int(exit_status(report, error)))
