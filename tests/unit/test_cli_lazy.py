"""The CLI loads only the invoked command's modules, and none goes missing that way."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _python(code: str) -> str:
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, check=True, capture_output=True, text=True, timeout=120
    )
    return out.stdout


def test_the_lazy_map_names_every_command_and_the_module_that_registers_it() -> None:
    found = json.loads(
        _python(
            "import json, drkit.cli.commands\n"
            "from drkit.cli import cli, COMMAND_MODULES\n"
            "print(json.dumps({'registered': {n: c.callback.__module__ for n, c in cli.commands.items()},"
            " 'lazy': COMMAND_MODULES}))"
        )
    )
    assert set(found["registered"]) == set(found["lazy"])
    for name, module in found["registered"].items():
        assert module.removeprefix("drkit.cli.") in found["lazy"][name], name


def test_a_drill_command_does_not_import_aws_or_the_scheduler() -> None:
    loaded = json.loads(
        _python(
            "import json, sys\n"
            "from drkit.cli import cli\n"
            "try:\n"
            "    cli.main(['drill', 'history', '--help'], prog_name='drkit')\n"
            "except SystemExit:\n"
            "    pass\n"
            "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in ('boto3', 'apscheduler', 'drkit'))))"
        ).splitlines()[-1]
    )
    assert "drkit.cli.drill_cmds" in loaded
    assert not [m for m in loaded if m.startswith(("boto3", "apscheduler", "drkit.cli.scheduler_cmd", "drkit.aws"))]


def test_help_lists_every_command() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "drkit", "--help"], cwd=REPO, check=True, capture_output=True, text=True, timeout=120
    ).stdout
    for name in ("backup", "drill", "heartbeat", "iam-policy", "plan", "posture", "prune", "restore", "s3",
                 "scheduler", "schema", "validate", "verify", "demo", "report"):
        assert f"  {name} " in out, name
