"""`drkit validate`, `drkit schema`."""

from __future__ import annotations

import json

import click

from drkit.cli import cli, context_of
from drkit.errors import ConfigError


@cli.command()
@click.pass_context
def validate(ctx: click.Context) -> None:
    """Load every file in schedules/, drills/, runbooks/; print each error as FILE:LINE: field: message."""
    context = context_of(ctx)
    try:
        cfg = context.config()
    except ConfigError as exc:
        for line in exc.issues:
            click.echo(line, err=True)
        click.echo(f"{len(exc.issues)} error(s) in {context.config_dir}", err=True)
        ctx.exit(int(exc.exit_status))
    click.echo(
        f"ok: {len(cfg.schedules)} schedule(s), {len(cfg.drills)} drill(s), {len(cfg.runbooks)} runbook(s) "
        f"in {context.config_dir}"
    )


@cli.command()
@click.argument("kind", required=False, type=click.Choice(["schedule", "drill", "runbook"]))
def schema(kind: str | None) -> None:
    """Print the JSON Schema of a config kind (all three when KIND is omitted), for editors."""
    from drkit.config import json_schema

    if kind:
        click.echo(json.dumps(json_schema(kind), indent=2))
    else:
        click.echo(json.dumps({k: json_schema(k) for k in ("schedule", "drill", "runbook")}, indent=2))
