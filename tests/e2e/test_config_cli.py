"""`drkit validate` and `drkit schema` as a user runs them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def drkit(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "drkit", *args], cwd=cwd, capture_output=True, text=True, timeout=60, check=False
    )


def test_the_repository_configuration_validates() -> None:
    proc = drkit("validate")
    assert proc.returncode == 0, proc.stderr
    assert "2 schedule(s), 2 drill(s), 1 runbook(s)" in proc.stdout


def test_every_error_is_one_located_line_and_exit_2(tmp_path: Path) -> None:
    (tmp_path / "schedules").mkdir()
    (tmp_path / "drills").mkdir()
    (tmp_path / "schedules" / "local.yaml").write_text(
        "environment: demo\n"
        "targets: {rto: 15m, rpo: 5 minutes}\n"
        "postgres:\n"
        "  - name: app\n"
        "    dsn_env: APP_DATABASE_URL\n"
        '    backups: {cron: "0 */6 * * *", keep: {daily: 7}}\n'
        "    store: file://b\n"
        "    encryption: {key_file: k}\n"
        "    colour: blue\n"
    )
    (tmp_path / "drills" / "d.yaml").write_text(
        "environment: demo\n"
        "targets: {rto: 15m, rpo: 5m}\n"
        "scenario: data-corruption\n"
        "source:\n"
        "  postgres: {schedule: nowhere, resource: app}\n"
        "verify:\n"
        "  database: app\n"
        "  checks:\n"
        "    - {name: n, sql: SELECT 1, expect: bigger than 3}\n"
    )
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    proc = drkit("--config-dir", str(tmp_path), "validate")
    assert proc.returncode == 2
    lines = [line for line in proc.stderr.splitlines() if line.endswith(".yaml") is False and ".yaml:" in line]
    assert any(line.startswith("schedules/local.yaml:2: targets.rpo:") for line in lines), proc.stderr
    assert any(
        line.startswith("schedules/local.yaml:9: postgres[0].colour:")
        or line.startswith("schedules/local.yaml:9: postgres.0.colour:")
        for line in lines
    ), proc.stderr
    assert any(line.startswith("drills/d.yaml:5:") and "nowhere" in line for line in lines), proc.stderr
    assert any(line.startswith("drills/d.yaml:9:") and "expect" in line for line in lines), proc.stderr
    assert "Traceback" not in proc.stderr
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before  # nothing changed

    # any command that needs the configuration refuses in the same way
    run = drkit("--config-dir", str(tmp_path), "drill", "run", "d")
    assert run.returncode == 2 and "schedules/local.yaml:2:" in run.stderr


def test_schema_prints_json_schema_for_editors() -> None:
    proc = drkit("schema", "drill")
    assert proc.returncode == 0
    schema = json.loads(proc.stdout)
    assert "properties" in schema and "verify" in schema["properties"]
    bad = drkit("schema", "nonsense")
    assert bad.returncode == 2
