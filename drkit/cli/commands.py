"""Importing this module registers every command on the `drkit` group."""

from drkit.cli import (
    backup_cmds,
    config_cmds,
    demo_cmd,
    drill_cmds,
    iam_cmd,
    plan_cmd,
    posture_cmd,
    report_cmds,
    restore_cmds,
    s3_cmds,
    s3_replicate_cmd,
    s3_restore_cmd,
    s3_verify_cmd,
    scheduler_cmd,
)

__all__ = [
    "backup_cmds",
    "config_cmds",
    "demo_cmd",
    "drill_cmds",
    "iam_cmd",
    "plan_cmd",
    "posture_cmd",
    "report_cmds",
    "restore_cmds",
    "s3_cmds",
    "s3_replicate_cmd",
    "s3_restore_cmd",
    "s3_verify_cmd",
    "scheduler_cmd",
]
