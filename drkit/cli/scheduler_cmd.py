"""`drkit scheduler run [--once]`: the long-running service, or one pass for cron/CronJobs."""

from __future__ import annotations

import click

from drkit.cli import cli, context_of
from drkit.domain.durations import parse_duration
from drkit.errors import UsageError
from drkit.metrics import DEFAULT_ADDR, DEFAULT_PORT


def _duration(name: str, text: str) -> float:
    try:
        return parse_duration(text).total_seconds()
    except ValueError as exc:
        raise UsageError(f"{name}: {exc}") from exc


@cli.group()
def scheduler() -> None:
    """The scheduler service: runs every schedule's jobs at their cron times."""


@scheduler.command("run")
@click.option("--once", is_flag=True, help="Run every job that is due now, then exit (for cron or a CronJob).")
@click.option(
    "--metrics-port",
    type=click.IntRange(0, 65535),
    default=DEFAULT_PORT,
    show_default=True,
    help="Port of /metrics and /healthz (0: off).",
)
@click.option("--metrics-addr", default=DEFAULT_ADDR, show_default=True, help="Address to bind /metrics to.")
@click.option(
    "--leader-retry",
    default="10s",
    show_default=True,
    metavar="DURATION",
    help="How often a follower tries to become the leader.",
)
@click.option(
    "--misfire-grace",
    default="6h",
    show_default=True,
    metavar="DURATION",
    help="A slot missed while no scheduler ran still runs (once) if it is at most this old.",
)
@click.option(
    "--missed-grace",
    default="1h",
    show_default=True,
    metavar="DURATION",
    help="Alert when a backup slot is this late without a run.",
)
@click.pass_context
def scheduler_run(ctx: click.Context, once: bool, metrics_port: int, metrics_addr: str, leader_retry: str,
                  misfire_grace: str, missed_grace: str) -> None:  # fmt: skip
    """Run the scheduler in the foreground until SIGTERM (or once, with --once).

    Several replicas may share a PostgreSQL catalog: one leads (advisory lock), the others
    wait and take over when it dies. SIGHUP reloads the configuration.
    """
    from datetime import timedelta

    from drkit.scheduler.service import Service, ServiceOptions

    context = context_of(ctx)
    options = ServiceOptions(
        metrics_port=0 if once else metrics_port,
        metrics_addr=metrics_addr,
        misfire_grace=timedelta(seconds=_duration("--misfire-grace", misfire_grace)),
        missed_grace=timedelta(seconds=_duration("--missed-grace", missed_grace)),
        leader_retry_s=_duration("--leader-retry", leader_retry),
    )
    service = Service(context.config_dir, context.catalog_url, options, clock=context.clock)
    try:
        status = service.run_once() if once else service.run()
    finally:
        service.close()
    ctx.exit(status)
