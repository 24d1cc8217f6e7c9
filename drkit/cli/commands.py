"""Importing this module registers every command on the `drkit` group."""

import importlib

MODULES = ("backup_cmds", "config_cmds", "demo_cmd", "drill_cmds", "plan_cmd", "report_cmds", "restore_cmds",
           "posture_cmd", "scheduler_cmd", "iam_cmd")

for _name in MODULES:
    try:
        importlib.import_module(f"drkit.cli.{_name}")
    except ModuleNotFoundError as exc:  # a command whose module is not in this build yet
        if exc.name != f"drkit.cli.{_name}":
            raise
