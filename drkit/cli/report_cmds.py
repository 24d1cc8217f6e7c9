"""`drkit report render|verify`."""

from __future__ import annotations

from pathlib import Path

import click

from drkit.cli import cli
from drkit.errors import ExitStatus, UsageError

PUBLIC_KEY_NAME = "signing-key.pub.pem"


@cli.group()
def report() -> None:
    """Stored drill reports."""


def _load(path: Path) -> dict:
    from drkit.render import load_report

    try:
        return load_report(path)
    except (OSError, ValueError) as exc:
        raise UsageError(f"{path}: cannot read the report ({exc})") from exc


@report.command("render")
@click.argument("path", type=click.Path(path_type=Path, exists=True, dir_okay=False))
@click.option("--format", "fmt", type=click.Choice(["html", "md", "junit"]), default="md", show_default=True)
def report_render(path: Path, fmt: str) -> None:
    """Re-render a stored JSON report to stdout."""
    from drkit.domain.report import DrillReport
    from drkit.render import render_html, render_junit, render_markdown

    data = DrillReport.from_dict(_load(path))
    render = {"html": render_html, "md": render_markdown, "junit": render_junit}[fmt]
    click.echo(render(data))


@report.command("verify")
@click.argument("path", type=click.Path(path_type=Path, exists=True, dir_okay=False))
@click.option(
    "--public-key",
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    help=f"PEM public key (default: {PUBLIC_KEY_NAME} in the report folder or its parent).",
)
@click.pass_context
def report_verify(ctx: click.Context, path: Path, public_key: Path | None) -> None:
    """Check a stored report's signature; exit 1 if it was changed after signing."""
    from drkit.signing import verify_report

    doc = _load(path)
    if public_key is None:
        from drkit.render import find_public_key

        key_id = (doc.get("signature") or {}).get("key_id")
        public_key = find_public_key(path, key_id)
    if public_key is None:
        raise UsageError(f"no {PUBLIC_KEY_NAME} beside {path}; pass --public-key")
    ok, reason = verify_report(doc, public_key_pem=public_key.read_bytes())
    click.echo(f"{'ok' if ok else 'INVALID'}: {path}: {reason}")
    if not ok:
        ctx.exit(int(ExitStatus.FAILED))
