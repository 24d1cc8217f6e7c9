"""`drkit s3 ...`: the group; each subcommand lives in its own module (s3_*_cmd.py)."""

from __future__ import annotations

from drkit.cli import cli


@cli.group()
def s3() -> None:
    """S3 cross-region replication with KMS: set up, verify, restore to a point in time."""
