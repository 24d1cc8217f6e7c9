"""Which jobs a configuration implies, how they are dispatched, and the slot rules the
scheduler runs them by (once per slot; missed-run detection; APScheduler's weekday trap)."""

from __future__ import annotations

import sys
import types
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from drkit.config import load_config
from drkit.errors import DrkitError
from drkit.jobs.context import Context
from drkit.jobs.registry import JobSpec, job_specs, run_job
from drkit.scheduler.cron import apscheduler_trigger, is_due, is_missed, last_slot, next_slot

SCHEDULE = """\
environment: production
targets: {rto: 1h, rpo: 15m}
timezone: Europe/Paris
aws: {region: us-east-1, dr_region: us-west-2}
rds:
  - name: orders
    instance: orders-prod
    snapshots: {cron: "0 3 * * *", keep: {daily: 7}}
    copies: {cron: "0 4 * * 0", kms_key: alias/drkit-dr, keep: {weekly: 4}}
  - name: users
    cluster: users-aurora
    snapshots: {cron: "30 2 * * *", keep: {daily: 7}}
s3:
  - name: assets
    bucket: acme-assets-prod
    replica_bucket: acme-assets-prod-dr
    kms_key: alias/drkit-dr
    verify: {cron: "*/30 * * * *"}
  - name: logs
    bucket: acme-logs-prod
    replica_bucket: acme-logs-prod-dr
    kms_key: alias/drkit-dr
postgres:
  - name: app
    dsn_env: APP_DATABASE_URL
    backups: {cron: "0 */6 * * *", keep: {daily: 7}}
    store: file://backups
    encryption: {key_file: keys/backup.key}
"""

DRILL = """\
environment: production
targets: {rto: 1h, rpo: 15m}
scenario: data-corruption
%(schedule)s
source:
  postgres: {schedule: production, resource: app}
verify:
  database: app
  checks:
    - {name: one, sql: "SELECT 1", expect: "== 1"}
"""


@pytest.fixture
def config_dir(tmp_path: Path) -> Path:
    (tmp_path / "schedules").mkdir()
    (tmp_path / "drills").mkdir()
    (tmp_path / "schedules" / "production.yaml").write_text(SCHEDULE)
    (tmp_path / "drills" / "quarterly.yaml").write_text(DRILL % {"schedule": 'schedule: "0 2 1 1,4,7,10 *"'})
    (tmp_path / "drills" / "adhoc.yaml").write_text(DRILL % {"schedule": ""})
    return tmp_path


def test_every_configured_cron_becomes_one_job_with_a_stable_id(config_dir: Path) -> None:
    specs = job_specs(load_config(config_dir))
    paris = "Europe/Paris"
    assert specs == [
        JobSpec("production:rds-snapshot:orders", "production", "rds-snapshot", "orders", "0 3 * * *", paris),
        JobSpec("production:rds-copy:orders", "production", "rds-copy", "orders", "0 4 * * 0", paris),
        JobSpec("production:rds-snapshot:users", "production", "rds-snapshot", "users", "30 2 * * *", paris),
        JobSpec("production:s3-verify:assets", "production", "s3-verify", "assets", "*/30 * * * *", paris),
        JobSpec("production:pg-backup:app", "production", "pg-backup", "app", "0 */6 * * *", paris),
        JobSpec("production:heartbeat:app", "production", "heartbeat", "app", "* * * * *", paris),
        # A drill without `schedule:` (adhoc) is not scheduled; drill files' cron runs in UTC.
        JobSpec("production:drill:quarterly", "production", "drill", "quarterly", "0 2 1 1,4,7,10 *", "UTC"),
    ]
    assert len({s.id for s in specs}) == len(specs)


def test_kinds_not_in_this_build_fail_with_one_clear_line(config_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "drkit.jobs.s3", None)  # makes `import drkit.jobs.s3` fail
    spec = JobSpec("production:s3-verify:assets", "production", "s3-verify", "assets", "*/30 * * * *", "UTC")
    with pytest.raises(DrkitError, match="job kind s3-verify is not available in this drkit"):
        run_job(Context(config_dir=config_dir), spec)


def test_rds_kinds_call_the_rds_jobs_by_their_contract_names(config_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each RDS job snapshots (or copies) its resource, then applies that resource's retention."""
    calls: list[tuple[str, str, str]] = []
    done = types.SimpleNamespace(warnings=[])

    def record(what: str):  # type: ignore[no-untyped-def]
        return lambda ctx, schedule, resource: calls.append((what, schedule, resource)) or done

    fake = types.ModuleType("drkit.jobs.rds")
    fake.snapshot_resource = record("snapshot")  # type: ignore[attr-defined]
    fake.copy_resource = record("copy")  # type: ignore[attr-defined]
    fake_prune = types.ModuleType("drkit.jobs.rds_prune")
    fake_prune.prune_resource = record("prune")  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "drkit.jobs.rds", fake)
    monkeypatch.setitem(sys.modules, "drkit.jobs.rds_prune", fake_prune)
    ctx = Context(config_dir=config_dir)
    for spec in job_specs(load_config(config_dir)):
        if spec.kind.startswith("rds-"):
            run_job(ctx, spec)
    assert calls == [("snapshot", "production", "orders"), ("prune", "production", "orders"),
                     ("copy", "production", "orders"), ("prune", "production", "orders"),
                     ("snapshot", "production", "users"), ("prune", "production", "users")]  # fmt: skip


def test_unknown_kind_is_an_error(config_dir: Path) -> None:
    with pytest.raises(DrkitError, match="unknown job kind"):
        run_job(Context(config_dir=config_dir), JobSpec("x", "production", "nope", None, "* * * * *", "UTC"))


# -- slots ---------------------------------------------------------------------------------

T = datetime(2026, 3, 10, 7, 30, tzinfo=UTC)


def test_last_slot_includes_now_and_uses_the_schedule_zone() -> None:
    assert last_slot("0 */6 * * *", "UTC", T) == datetime(2026, 3, 10, 6, 0, tzinfo=UTC)
    assert last_slot("30 7 * * *", "UTC", T) == T  # a slot exactly now is the current slot
    # 03:00 in Paris is 02:00 UTC in winter.
    assert last_slot("0 3 * * *", "Europe/Paris", T) == datetime(2026, 3, 10, 2, 0, tzinfo=UTC)
    assert next_slot("0 3 * * *", "Europe/Paris", T) == datetime(2026, 3, 11, 2, 0, tzinfo=UTC)


def test_due_means_no_success_since_the_newest_slot() -> None:
    slot = datetime(2026, 3, 10, 6, 0, tzinfo=UTC)
    assert is_due(slot, None)
    assert is_due(slot, slot - timedelta(seconds=1))
    assert not is_due(slot, slot)
    assert not is_due(slot, slot + timedelta(minutes=5))


def test_a_missed_slot_is_reported_after_the_grace_but_not_before_we_ever_ran() -> None:
    grace = timedelta(hours=1)
    daily = "0 3 * * *"
    yesterday_run = datetime(2026, 3, 9, 3, 0, 5, tzinfo=UTC)
    # 03:30 today: the 03:00 slot is inside the grace: not missed yet.
    at = datetime(2026, 3, 10, 3, 30, tzinfo=UTC)
    assert is_missed(daily, "UTC", at, grace=grace, last_start=yesterday_run, since=at - timedelta(days=9)) is None
    # 04:30 today, newest run yesterday: today's 03:00 was missed.
    at = datetime(2026, 3, 10, 4, 30, tzinfo=UTC)
    missed = is_missed(daily, "UTC", at, grace=grace, last_start=yesterday_run, since=at - timedelta(days=9))
    assert missed == datetime(2026, 3, 10, 3, 0, tzinfo=UTC)
    # A run today (even a failed one: it alerts by itself) means nothing was missed.
    assert is_missed(daily, "UTC", at, grace=grace, last_start=missed + timedelta(seconds=2), since=at) is None
    # Never ran, service started at 04:00: the 03:00 slot predates us: not ours to report.
    assert is_missed(daily, "UTC", at, grace=grace, last_start=None, since=at - timedelta(minutes=30)) is None
    # Never ran, service up since yesterday noon: it was missed.
    assert is_missed(daily, "UTC", at, grace=grace, last_start=None, since=at - timedelta(hours=16)) == missed


@pytest.mark.parametrize(
    ("cron", "weekdays"),
    [
        ("0 4 * * 0", {"Sun"}),
        ("0 4 * * 7", {"Sun"}),
        ("0 4 * * 1-5", {"Mon", "Tue", "Wed", "Thu", "Fri"}),
        ("0 4 * * 5-7", {"Fri", "Sat", "Sun"}),
        ("0 4 * * */2", {"Sun", "Tue", "Thu", "Sat"}),
        ("0 4 * * sat,sun", {"Sat", "Sun"}),
        ("0 4 * * *", {"Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"}),
    ],
)
def test_apscheduler_triggers_fire_on_crons_weekdays(cron: str, weekdays: set[str]) -> None:
    """APScheduler 3 counts weekdays from Monday=0; cron from Sunday=0. They must agree."""
    trigger = apscheduler_trigger(cron, "UTC")
    at = T
    fired: set[str] = set()
    for _ in range(14):
        fire = trigger.get_next_fire_time(None, at)
        assert fire == next_slot(cron, "UTC", at - timedelta(microseconds=1)) or fire == next_slot(cron, "UTC", at)
        fired.add(fire.strftime("%a"))
        at = fire + timedelta(minutes=1)
    assert fired == weekdays


@pytest.mark.parametrize(
    "cron",
    [
        "0 3 1 * mon",  # the 1st of the month OR every Monday (cron ORs two restricted day fields)
        "30 2 1,15 * 0",  # the 1st and 15th OR Sundays
        "0 4 */10 * 5",  # "*/10" is restricted too (as in Kubernetes CronJobs): days 1, 11, 21, 31 OR Fridays
        "0 4 13 * fri",
        "0 6 * * 1-5",
        "15 1 28-31 2 *",
    ],
)
def test_apscheduler_wakes_up_exactly_at_drkits_slots(cron: str) -> None:
    """The service's wake-ups and drkit's slot math (plan, backup run, --once) must be the same times."""
    trigger = apscheduler_trigger(cron, "Europe/Berlin")
    at = T
    for _ in range(40):
        fire = trigger.get_next_fire_time(None, at)
        assert fire == next_slot(cron, "Europe/Berlin", at - timedelta(microseconds=1)), (cron, at)
        at = fire + timedelta(seconds=1)


def test_the_trigger_survives_the_job_store_and_catches_up_like_aps_cron_triggers() -> None:
    import pickle

    trigger = pickle.loads(pickle.dumps(apscheduler_trigger("0 3 * * *", "Europe/Berlin")))
    assert repr(trigger) == repr(apscheduler_trigger("0 3 * * *", "Europe/Berlin"))
    # Catching up after downtime: from the previous fire time, the next slots in order.
    previous = trigger.get_next_fire_time(None, T)
    later = trigger.get_next_fire_time(previous, previous + timedelta(days=3))
    assert later - previous == timedelta(days=1)
    with pytest.raises(ValueError):
        apscheduler_trigger("0 3 * *", "UTC")
