"""`drkit posture` as a user runs it: a subprocess against the repository's schedules."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
KEYS = [
    "schedule",
    "resource",
    "engine",
    "scenario",
    "rpo_worst_s",
    "rpo_target_s",
    "rpo_met",
    "rto_estimate_s",
    "rto_target_s",
    "rto_met",
    "basis",
    "fix",
]


def drkit(*args: str, config_dir: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "drkit", "--config-dir", str(config_dir), *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_production_json_shows_the_region_loss_miss_and_exits_3() -> None:
    proc = drkit("posture", "production", "-o", "json")
    assert proc.returncode == 3, proc.stderr
    lines = json.loads(proc.stdout)
    assert all(list(item) == KEYS for item in lines)
    assert [(x["resource"], x["scenario"]) for x in lines][:4] == [
        ("orders", "instance-loss"),
        ("orders", "az-loss"),
        ("orders", "region-loss"),
        ("orders", "logical-corruption"),
    ]
    region = next(x for x in lines if x["resource"] == "orders" and x["scenario"] == "region-loss")
    assert region["rpo_worst_s"] == 7 * 86400 + 3600
    assert region["rpo_target_s"] == 900
    assert region["rpo_met"] is False
    assert region["rto_estimate_s"] == [1200, 3600]
    assert "StartDBInstanceAutomatedBackupsReplication" in region["fix"]
    unknown = next(x for x in lines if x["resource"] == "orders" and x["scenario"] == "instance-loss")
    assert unknown["rpo_worst_s"] is None and unknown["rpo_met"] is None
    assert "target(s) cannot be met" in proc.stderr


def test_production_table_names_the_verdicts_and_lists_fixes_under_it() -> None:
    proc = drkit("posture", "production")
    assert proc.returncode == 3, proc.stderr
    rows = [line for line in proc.stdout.splitlines() if line.strip().startswith("orders")]
    region = next(row for row in rows if "region-loss" in row)
    assert "7d1h vs 15m: MISSED" in region
    assert "20m-1h (estimate) vs 1h: met" in region
    assert "unknown vs 15m: unknown" in next(row for row in rows if "instance-loss" in row)
    assert "fix: enable cross-region automated backup replication" in proc.stdout


def test_a_schedule_that_meets_its_targets_exits_0(tmp_path: Path) -> None:
    (tmp_path / "schedules").mkdir()
    (tmp_path / "schedules" / "relaxed.yaml").write_text(
        textwrap.dedent(
            """\
            environment: staging
            targets: {rto: 2h, rpo: 1d}
            postgres:
              - name: app
                dsn_env: APP_DATABASE_URL
                backups: {cron: "0 */6 * * *", keep: {daily: 7}}
                store: s3://acme-staging-backups/app
                encryption: {kms_key: alias/drkit-backups}
            """
        )
    )
    proc = drkit("posture", "-o", "json", config_dir=tmp_path)
    assert proc.returncode == 0, proc.stderr
    lines = json.loads(proc.stdout)
    assert len(lines) == 4
    assert all(x["rpo_worst_s"] == 6 * 3600 and x["rpo_met"] is True for x in lines)


def test_an_unknown_schedule_is_a_usage_error() -> None:
    proc = drkit("posture", "nowhere")
    assert proc.returncode == 2
    assert "no schedule named nowhere" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_help_documents_the_exit_status_and_json_keys() -> None:
    proc = drkit("posture", "--help")
    assert proc.returncode == 0
    text = " ".join(proc.stdout.split())
    assert "3 when the configuration cannot meet a target" in text
    assert "rpo_worst_s" in text and "rto_estimate_s" in text
