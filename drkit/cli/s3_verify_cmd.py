"""`drkit s3 verify NAME`: compare a bucket with its replica; exit 1 if anything is overdue or FAILED."""

from __future__ import annotations

import json
from datetime import timedelta

import click
from rich.table import Table

from drkit.cli import context_of, output_option
from drkit.cli.s3_cmds import s3
from drkit.domain.durations import format_duration, parse_duration
from drkit.domain.s3compare import VerifyResult
from drkit.errors import ExitStatus, UsageError

SHOWN = 20  # keys per list in the table; --output json has up to 10,000


def _allowance(text: str | None) -> timedelta | None:
    if text is None:
        return None
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise UsageError(f"--lag-allowance: {exc}") from None


def render_table(result: VerifyResult) -> Table:
    """Counts, lag, then the first SHOWN keys of each list."""
    table = Table("", "COUNT", "KEYS", box=None, title=f"s3://{result.bucket} -> s3://{result.replica_bucket}")
    rows = [
        ("checked", result.checked, []),
        ("missing", result.missing_count, result.missing),
        ("size mismatch", result.mismatched_count, result.mismatched),
        ("FAILED", result.failed_count, result.failed),
        ("in flight", result.in_flight_count, result.in_flight),
        ("extra in replica", result.extra_count, []),
    ]
    for label, count, keys in rows:
        shown = "\n".join(keys[:SHOWN]) + (f"\n... {count - SHOWN} more" if count > SHOWN and keys else "")
        style = "red" if label in ("missing", "size mismatch", "FAILED") and count else ""
        table.add_row(f"[{style}]{label}[/]" if style else label, str(count), shown)
    return table


@s3.command("verify")
@click.argument("name")
@click.option("--schedule", metavar="SCHEDULE", help="The schedule NAME is in (needed only if several have it).")
@click.option(
    "--lag-allowance",
    metavar="DURATION",
    help="Missing objects younger than this are in flight, not failures (default: 15m with RTC, else the RPO target).",
)
@output_option
@click.pass_context
def s3_verify(ctx: click.Context, name: str, schedule: str | None, lag_allowance: str | None, output: str) -> None:
    """Compare bucket NAME with its replica: missing, size mismatches, FAILED, replication lag.

    One streaming pass over both listings (memory flat in the number of objects). Sizes are
    compared, not ETags (they differ across SSE-KMS keys and multipart uploads). Exit 1 if an
    object is missing or mismatched beyond the lag allowance, or S3 says its replication FAILED.
    """
    from drkit.jobs.s3 import verify

    context = context_of(ctx)
    allowance = _allowance(lag_allowance)
    result = verify(context, schedule, name, lag_allowance=allowance)
    if output == "json":
        click.echo(json.dumps(result.to_json(), indent=2, ensure_ascii=False))
    else:
        context.out.print(render_table(result))
        exposure = format_duration(result.lag_s) if result.lag_s else "0s"
        oldest = f" (oldest: {result.oldest_unreplicated})" if result.oldest_unreplicated else ""
        context.out.print(
            f"replication lag {exposure}{oldest}; allowance {format_duration(result.allowance_s)}", highlight=False
        )
        if result.heads_capped:
            context.say(f"[yellow]note[/] replication status read for the first {result.heads} candidates only")
    if result.truncated and output == "json":
        context.say("[yellow]note[/] key lists truncated at 10,000 entries; the counts are exact")
    if result.ok:
        context.say(f"[green]ok[/] {result.summary()}")
    else:
        context.say(f"[red]FAILED[/] {result.summary()}")
        ctx.exit(int(ExitStatus.FAILED))
