"""`drkit iam-policy`: the least-privilege IAM policy drkit needs, from its declared permissions."""

from __future__ import annotations

import json

import click

from drkit.aws.permissions import ROLE_NAMES, policy_document
from drkit.cli import cli


@cli.command("iam-policy")
@click.option(
    "--for",
    "role",
    type=click.Choice(ROLE_NAMES),
    default="all",
    show_default=True,
    help="scheduler: backups, copies, prune; drill: isolated restores and teardown; "
    "runbooks: incident restores; all: everything.",
)
def iam_policy(role: str) -> None:
    """Print the least-privilege IAM policy for a drkit role, as JSON.

    Resources are "*" so the policy fits every configuration; narrow them to your buckets,
    keys and drkit-* snapshot names where you can (see drkit/aws/permissions.py).

        drkit iam-policy --for scheduler > drkit-scheduler.json
        aws iam create-policy --policy-name drkit-scheduler --policy-document file://drkit-scheduler.json
    """
    click.echo(json.dumps(policy_document(role), indent=2))
