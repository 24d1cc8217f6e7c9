"""Importing this module registers every command on the `drkit` group."""

from drkit.cli import backup_cmds, config_cmds, demo_cmd, drill_cmds, report_cmds, restore_cmds

__all__ = ["backup_cmds", "config_cmds", "demo_cmd", "drill_cmds", "report_cmds", "restore_cmds"]
