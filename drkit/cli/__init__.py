"""The `drkit` command line: parse, build a Context, call a job, map errors to exit codes.

The CLI holds no logic of its own; the scheduler is the other door into the same jobs.
"""

from __future__ import annotations

import importlib
import logging
import sys
from pathlib import Path
from typing import Any

import click

from drkit import __version__, logs, signals
from drkit.errors import DrkitError, ExitStatus, Interrupted
from drkit.jobs.context import Context

log = logging.getLogger("drkit")


# Which modules of drkit.cli register each top-level command. Only the invoked command's
# modules are imported, so `drkit drill run` does not pay for boto3, prometheus-client and
# the scheduler (about half a second per call); `drkit --help` imports them all.
COMMAND_MODULES: dict[str, tuple[str, ...]] = {
    "backup": ("backup_cmds",),
    "heartbeat": ("backup_cmds",),
    "prune": ("backup_cmds",),
    "demo": ("demo_cmd",),
    "drill": ("drill_cmds",),
    "verify": ("drill_cmds",),
    "iam-policy": ("iam_cmd",),
    "plan": ("plan_cmd",),
    "posture": ("posture_cmd",),
    "report": ("report_cmds",),
    "restore": ("restore_cmds",),
    "s3": ("s3_cmds", "s3_replicate_cmd", "s3_restore_cmd", "s3_verify_cmd"),
    "scheduler": ("scheduler_cmd",),
    "schema": ("config_cmds",),
    "validate": ("config_cmds",),
}


class DrkitGroup(click.Group):
    """Maps DrkitError to one line and its exit status; tracebacks only with -v.

    Commands are loaded on first use (click's lazy-group recipe), see COMMAND_MODULES."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(self.commands) | set(COMMAND_MODULES))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        for module in COMMAND_MODULES.get(cmd_name, ()):
            importlib.import_module(f"drkit.cli.{module}")
        return self.commands.get(cmd_name)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except DrkitError as exc:
            verbose = (ctx.obj or {}).get("verbosity", 0) > 0 if isinstance(ctx.obj, dict) else False
            if verbose:
                log.exception("%s", exc)
            for line in str(exc).splitlines() or [type(exc).__name__]:
                click.echo(f"drkit: {line}" if not _is_located(line) else line, err=True)
            ctx.exit(int(exc.exit_status))
        except KeyboardInterrupt:
            click.echo("drkit: interrupted; cleanup done", err=True)
            ctx.exit(int(ExitStatus.INTERRUPTED))


def _is_located(line: str) -> bool:
    """Configuration errors already start with FILE:LINE."""
    head = line.split(":", 2)
    return len(head) > 2 and head[0].endswith((".yaml", ".yml")) and head[1].isdigit()


@click.group(cls=DrkitGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config-dir",
    type=click.Path(path_type=Path),
    envvar="DRKIT_CONFIG_DIR",
    default=".",
    show_default=True,
    help="Folder holding schedules/, drills/, runbooks/.",
)
@click.option(
    "--catalog",
    "catalog_url",
    envvar="DRKIT_CATALOG",
    default=None,
    help="SQLAlchemy URL of the catalog (default: SQLite under the user's state directory).",
)
@click.option("--log-format", type=click.Choice(["text", "json"]), envvar="DRKIT_LOG_FORMAT", default="text")
@click.option("-v", "--verbose", count=True, help="More detail; tracebacks on errors.")
@click.option("-q", "--quiet", is_flag=True, help="Warnings and errors only.")
@click.version_option(__version__, prog_name="drkit")
@click.pass_context
def cli(
    ctx: click.Context, config_dir: Path, catalog_url: str | None, log_format: str, verbose: int, quiet: bool
) -> None:
    """drkit: backups, drills and runbooks that prove your data is recoverable."""
    verbosity = -1 if quiet else verbose
    logs.setup(log_format, verbosity)
    signals.install()
    context = Context(config_dir=config_dir, catalog_url=catalog_url)
    ctx.obj = {"verbosity": verbosity, "context": context}
    ctx.call_on_close(context.close)


def context_of(ctx: click.Context) -> Context:
    return ctx.find_root().obj["context"]


def output_option(f: Any) -> Any:
    return click.option(
        "--output",
        "-o",
        type=click.Choice(["table", "json"]),
        default="table",
        help="table for people, json for scripts (stable keys).",
    )(f)


def main() -> None:
    try:
        cli.main(prog_name="drkit", standalone_mode=True)
    except Interrupted:
        sys.exit(int(ExitStatus.INTERRUPTED))
