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
    "scheduler_cmd",
]
