"""Recovery posture: the worst-case RPO / RTO a schedule implies, per resource and scenario.

Each case writes a schedule YAML into a temporary config directory, loads it the way drkit
does (drkit.config.load_config), and checks the verdict a user would read.
"""

from __future__ import annotations

import shutil
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from drkit.config import Schedule, load_config
from drkit.domain.posture import SCENARIOS, Facts, PostureLine, RdsFacts, S3Facts, assess, targets_missed

REPO = Path(__file__).resolve().parents[2]
M = timedelta(minutes=1)
H = timedelta(hours=1)
D = timedelta(days=1)

AWS = "aws: {region: us-east-1, dr_region: us-west-2}\n"


def load(tmp_path: Path, text: str, name: str = "prod") -> Schedule:
    folder = tmp_path / "schedules"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.yaml").write_text(textwrap.dedent(text))
    return load_config(tmp_path, kinds=("schedule",)).schedule(name)


def rds_schedule(
    tmp_path: Path,
    *,
    target: str = "target: instance: orders-prod",
    snapshots: str = 'snapshots: {cron: "0 3 * * *", keep: {daily: 7}}',
    copies: str | None = 'copies: {cron: "0 4 * * 0", kms_key: alias/drkit-dr, keep: {weekly: 4}}',
    targets: str = "{rto: 1h, rpo: 15m}",
    timezone: str = "UTC",
) -> Schedule:
    kind, ident = target.removeprefix("target: ").split(": ")
    lines = [f"{kind}: {ident}"]
    if snapshots:
        lines.append(snapshots)
    if copies:
        lines.append(copies)
    body = "\n".join(f"    {line}" for line in lines)
    return load(
        tmp_path,
        f"environment: production\ntargets: {targets}\ntimezone: {timezone}\n{AWS}rds:\n  - name: orders\n{body}\n",
    )


def line(lines: list[PostureLine], resource: str, scenario: str) -> PostureLine:
    found = [x for x in lines if x.resource == resource and x.scenario == scenario]
    assert len(found) == 1, found
    return found[0]


def rds_facts(**kwargs: object) -> Facts:
    return Facts(observed_at=datetime(2026, 5, 1, 12, tzinfo=UTC), rds={"orders": RdsFacts(**kwargs)})  # type: ignore[arg-type]


# --- the CONTRACT example ---------------------------------------------------------------------


@pytest.fixture
def production(tmp_path: Path) -> Schedule:
    (tmp_path / "schedules").mkdir()
    shutil.copy(REPO / "schedules" / "production.yaml", tmp_path / "schedules" / "production.yaml")
    return load_config(tmp_path, kinds=("schedule",)).schedule("production")


def test_contract_example_weekly_copies_miss_a_15_minute_region_loss_rpo(production: Schedule) -> None:
    lines = assess(production)
    got = line(lines, "orders", "region-loss")
    # Copies leave on Sunday 04:00 with the 03:00 snapshot: just before the next copy lands the
    # DR region's newest data is 7 days and 1 hour old.
    assert got.rpo_worst == 7 * D + H
    assert got.rpo_target == 15 * M
    assert got.rpo_met is False
    assert got.target_missed
    assert got.fix is not None
    assert got.fix.startswith(
        "enable cross-region automated backup replication (StartDBInstanceAutomatedBackupsReplication) "
        "or an Aurora global database"
    )
    assert got.fix.endswith("weekly copies alone give 7d1h")
    assert "cross-region automated backups: unknown (run with AWS access)" in got.basis


def test_contract_example_covers_every_resource_and_scenario_in_order(production: Schedule) -> None:
    lines = assess(production)
    assert [(x.resource, x.engine, x.scenario) for x in lines] == [
        (name, engine, scenario)
        for name, engine in (("orders", "rds"), ("app", "postgres"), ("assets", "s3"))
        for scenario in SCENARIOS
    ]
    assert {x.schedule for x in lines} == {"production"}
    assert {(x.rpo_target, x.rto_target) for x in lines} == {(15 * M, H)}


# --- RDS ---------------------------------------------------------------------------------------


def test_without_facts_a_pitr_dependent_line_says_unknown_instead_of_guessing(tmp_path: Path) -> None:
    lines = assess(rds_schedule(tmp_path))
    for scenario in ("instance-loss", "az-loss", "logical-corruption"):
        got = line(lines, "orders", scenario)
        assert got.rpo_worst is None and got.rpo_met is None, scenario
        assert "unknown (run with AWS access)" in got.basis
        assert not got.target_missed


def test_pitr_gives_five_minutes_for_instance_loss_and_logical_corruption(tmp_path: Path) -> None:
    lines = assess(rds_schedule(tmp_path), rds_facts(backup_retention_days=7, multi_az=False))
    for scenario in ("instance-loss", "az-loss", "logical-corruption"):
        got = line(lines, "orders", scenario)
        assert (got.rpo_worst, got.rpo_met) == (5 * M, True), scenario
        assert "every 5 min" in got.basis
    assert line(lines, "orders", "instance-loss").rto_estimate == (20 * M, 60 * M)


def test_multi_az_loses_nothing_on_instance_or_az_loss_and_fails_over_in_minutes(tmp_path: Path) -> None:
    lines = assess(rds_schedule(tmp_path), rds_facts(backup_retention_days=7, multi_az=True))
    for scenario in ("instance-loss", "az-loss"):
        got = line(lines, "orders", scenario)
        assert (got.rpo_worst, got.rpo_met) == (timedelta(0), True)
        assert got.rto_estimate == (M, 2 * M) and got.rto_met is True
    # a standby replicates the damage: logical corruption still needs PITR
    assert line(lines, "orders", "logical-corruption").rpo_worst == 5 * M


def test_without_pitr_the_snapshot_cron_bounds_the_loss(tmp_path: Path) -> None:
    lines = assess(rds_schedule(tmp_path), rds_facts(backup_retention_days=0, multi_az=False))
    for scenario in ("instance-loss", "az-loss", "logical-corruption"):
        got = line(lines, "orders", scenario)
        assert (got.rpo_worst, got.rpo_met) == (D, False), scenario
        assert got.target_missed
        assert got.fix is not None and "turn on automated backups" in got.fix
    assert "enable Multi-AZ" in (line(lines, "orders", "az-loss").fix or "")


def test_without_pitr_or_snapshots_nothing_can_be_restored(tmp_path: Path) -> None:
    lines = assess(rds_schedule(tmp_path, snapshots="", copies=None), rds_facts(backup_retention_days=0))
    got = line(lines, "orders", "instance-loss")
    assert got.rpo_worst is None and got.rpo_met is False and got.target_missed
    assert "nothing to restore" in got.basis


def test_unknown_pitr_is_decided_when_every_possibility_agrees(tmp_path: Path) -> None:
    hourly = 'snapshots: {cron: "0 * * * *", keep: {hourly: 24}}'
    met = assess(rds_schedule(tmp_path, snapshots=hourly, targets="{rto: 1h, rpo: 1h}"))
    got = line(met, "orders", "instance-loss")
    assert (got.rpo_worst, got.rpo_met) == (H, True)  # 5 min with PITR, 1 h without: both meet 1 h
    missed = assess(rds_schedule(tmp_path / "b", snapshots=hourly, targets="{rto: 1h, rpo: 1m}"))
    got = line(missed, "orders", "instance-loss")
    assert got.rpo_met is False and got.rpo_worst == H  # neither meets 1 min


def test_a_lagging_latest_restorable_time_is_the_real_exposure(tmp_path: Path) -> None:
    observed = datetime(2026, 5, 1, 12, tzinfo=UTC)
    facts = Facts(
        observed_at=observed,
        rds={"orders": RdsFacts(backup_retention_days=7, latest_restorable_time=observed - 40 * M)},
    )
    got = line(assess(rds_schedule(tmp_path), facts), "orders", "instance-loss")
    assert (got.rpo_worst, got.rpo_met) == (40 * M, False)
    assert "40m behind" in got.basis


def test_cross_region_automated_backups_meet_a_15_minute_region_loss_target(tmp_path: Path) -> None:
    lines = assess(rds_schedule(tmp_path), rds_facts(backup_retention_days=7, cross_region_backups=True))
    got = line(lines, "orders", "region-loss")
    assert (got.rpo_worst, got.rpo_met) == (15 * M, True)
    assert "~5 min typical, up to ~15 min" in got.basis
    assert not targets_missed([got])


def test_daily_copies_of_a_daily_snapshot_are_judged_on_their_own_cron(tmp_path: Path) -> None:
    copies = 'copies: {cron: "0 5 * * *", kms_key: alias/drkit-dr, keep: {daily: 14}}'
    lines = assess(rds_schedule(tmp_path, copies=copies, targets="{rto: 2h, rpo: 2d}"), rds_facts(multi_az=False))
    got = line(lines, "orders", "region-loss")
    assert (got.rpo_worst, got.rpo_met) == (D + 2 * H, True)  # copies at 05:00 of the 03:00 snapshot
    assert "daily copies to us-west-2" in got.basis


def test_no_copies_means_a_region_loss_loses_everything(tmp_path: Path) -> None:
    got = line(assess(rds_schedule(tmp_path, copies=None)), "orders", "region-loss")
    assert got.rpo_worst is None and got.rpo_met is False and got.target_missed
    assert "nothing leaves the region" in got.basis
    assert got.fix is not None and "add copies" in got.fix


def test_aurora_storage_survives_instance_and_az_loss_and_backups_are_always_on(tmp_path: Path) -> None:
    lines = assess(rds_schedule(tmp_path, target="target: cluster: orders-aurora"))
    for scenario in ("instance-loss", "az-loss"):
        assert line(lines, "orders", scenario).rpo_worst == timedelta(0)
    logical = line(lines, "orders", "logical-corruption")
    assert (logical.rpo_worst, logical.rpo_met) == (5 * M, True)  # no facts needed: always on
    region = line(lines, "orders", "region-loss")
    assert region.rpo_met is False
    assert region.fix is not None and region.fix.startswith("use an Aurora global database")
    assert "StartDBInstanceAutomatedBackupsReplication" not in region.fix


def test_logical_corruption_reports_how_far_back_you_can_go(tmp_path: Path) -> None:
    lines = assess(rds_schedule(tmp_path), rds_facts(backup_retention_days=14))
    basis = line(lines, "orders", "logical-corruption").basis
    assert "how far back you can go: PITR 14d, snapshots ~7d ({daily: 7}), copies ~28d ({weekly: 4})" in basis


# --- self-managed PostgreSQL --------------------------------------------------------------------

PG = """\
environment: production
targets: {rto: 1h, rpo: %(rpo)s}
timezone: %(tz)s
postgres:
  - name: app
    dsn_env: APP_DATABASE_URL
    backups: {cron: "%(cron)s", keep: {daily: 7, weekly: 4}}
    store: %(store)s
    encryption: {key_file: .drkit/backup.key}
%(extra)s"""


def pg_schedule(
    tmp_path: Path,
    *,
    cron: str = "0 */6 * * *",
    store: str = "file://.drkit/backups",
    rpo: str = "15m",
    tz: str = "UTC",
    extra: str = "",
) -> Schedule:
    return load(tmp_path, PG % {"cron": cron, "store": store, "rpo": rpo, "tz": tz, "extra": extra})


def test_a_dump_schedule_bounds_every_scenario_by_its_cron(tmp_path: Path) -> None:
    lines = assess(pg_schedule(tmp_path, store="s3://acme-backups/app", rpo="7h"))
    for scenario in SCENARIOS:
        got = line(lines, "app", scenario)
        assert (got.rpo_worst, got.rpo_met) == (6 * H, True), scenario
        assert "no point-in-time recovery" in got.basis
        assert got.rto_estimate == (5 * M, 60 * M)


def test_dumps_miss_a_15_minute_target_and_say_what_would_help(tmp_path: Path) -> None:
    got = line(assess(pg_schedule(tmp_path)), "app", "instance-loss")
    assert (got.rpo_worst, got.rpo_met) == (6 * H, False)
    assert got.fix is not None and "WAL archiving" in got.fix


def test_a_dump_schedule_in_new_york_counts_the_fall_back_hour(tmp_path: Path) -> None:
    got = line(assess(pg_schedule(tmp_path, cron="30 1 * * *", tz="America/New_York")), "app", "instance-loss")
    assert got.rpo_worst == 25 * H


def test_file_store_backups_are_lost_with_the_region(tmp_path: Path) -> None:
    got = line(assess(pg_schedule(tmp_path)), "app", "region-loss")
    assert got.rpo_worst is None and got.rpo_met is False
    assert got.rto_estimate is None and got.rto_met is False
    assert "lost with the region" in got.basis
    assert got.fix is not None and got.fix.startswith("store them in s3:// in another region")


def test_s3_store_survives_a_region_loss_if_the_key_does_too(tmp_path: Path) -> None:
    extra = (
        "aws: {region: us-east-1, dr_region: us-west-2}\n"
        "s3:\n"
        "  - {name: backups, bucket: acme-backups, replica_bucket: acme-backups-dr, kms_key: alias/k}\n"
    )
    got = line(assess(pg_schedule(tmp_path, store="s3://acme-backups/app", extra=extra)), "app", "region-loss")
    assert got.rpo_worst == 6 * H
    assert "replicated to us-west-2 by s3 resource backups" in got.basis
    assert "the key file .drkit/backup.key must be kept outside the region too" in got.basis


# --- S3 ----------------------------------------------------------------------------------------

S3 = """\
environment: production
targets: {rto: 1h, rpo: %(rpo)s}
aws: {region: us-east-1, dr_region: us-west-2}
s3:
  - name: assets
    bucket: acme-assets-prod
    replica_bucket: acme-assets-prod-dr
    kms_key: alias/drkit-dr
    replication_time_control: %(rtc)s
"""


def s3_lines(tmp_path: Path, *, rtc: bool = True, rpo: str = "15m", **facts: object) -> list[PostureLine]:
    schedule = load(tmp_path, S3 % {"rtc": str(rtc).lower(), "rpo": rpo})
    return assess(schedule, Facts(s3={"assets": S3Facts(**facts)}) if facts else None)  # type: ignore[arg-type]


def test_s3_with_rtc_has_a_15_minute_sla(tmp_path: Path) -> None:
    got = line(s3_lines(tmp_path), "assets", "region-loss")
    assert (got.rpo_worst, got.rpo_met) == (15 * M, True)
    assert "15 min SLA" in got.basis


def test_s3_rtc_cannot_promise_under_15_minutes(tmp_path: Path) -> None:
    got = line(s3_lines(tmp_path, rpo="5m"), "assets", "region-loss")
    assert got.rpo_met is False and got.target_missed
    assert got.fix is not None and "write to both regions" in got.fix


def test_s3_without_rtc_has_no_sla_unless_a_lag_was_measured(tmp_path: Path) -> None:
    got = line(s3_lines(tmp_path, rtc=False), "assets", "region-loss")
    assert got.rpo_worst is None and got.rpo_met is None
    assert "minutes, no SLA" in got.basis
    assert got.fix is not None and "replication_time_control" in got.fix
    measured = line(s3_lines(tmp_path / "b", rtc=False, lag=3 * M), "assets", "region-loss")
    assert (measured.rpo_worst, measured.rpo_met) == (3 * M, True)


def test_s3_lag_beyond_the_sla_is_reported_as_the_exposure(tmp_path: Path) -> None:
    got = line(s3_lines(tmp_path, lag=40 * M), "assets", "region-loss")
    assert (got.rpo_worst, got.rpo_met) == (40 * M, False)
    assert "drkit s3 verify assets" in got.basis


def test_s3_not_replicated_is_unbounded(tmp_path: Path) -> None:
    got = line(s3_lines(tmp_path, replication=False), "assets", "region-loss")
    assert got.rpo_worst is None and got.rpo_met is False and got.target_missed
    assert "not replicated: unbounded" in got.basis
    assert got.fix == "drkit s3 replicate assets"


def test_s3_versioning_makes_overwrites_and_deletes_reversible(tmp_path: Path) -> None:
    got = line(s3_lines(tmp_path, versioning=True), "assets", "logical-corruption")
    assert (got.rpo_worst, got.rpo_met) == (timedelta(0), True)
    off = line(s3_lines(tmp_path / "b", versioning=False), "assets", "logical-corruption")
    assert off.rpo_met is False and off.target_missed
    assert "versioning is off" in off.basis


def test_s3_survives_az_loss_without_failover(tmp_path: Path) -> None:
    got = line(s3_lines(tmp_path), "assets", "az-loss")
    assert (got.rpo_worst, got.rto_estimate, got.rto_met) == (timedelta(0), (timedelta(0), timedelta(0)), True)


# --- RTO estimates -----------------------------------------------------------------------------


def test_an_rto_target_inside_the_estimate_is_at_risk_not_a_miss(tmp_path: Path) -> None:
    facts = rds_facts(backup_retention_days=7, multi_az=False, cross_region_backups=True)
    got = line(assess(rds_schedule(tmp_path, targets="{rto: 30m, rpo: 15m}"), facts), "orders", "instance-loss")
    assert got.rto_estimate == (20 * M, 60 * M)
    assert got.rto_met is False  # the high end is over the target ...
    assert not got.target_missed  # ... but the low end meets it: a drill decides
    assert got.fix is not None and "measure it with a drill" in got.fix


def test_an_rto_target_below_the_whole_estimate_cannot_be_met(tmp_path: Path) -> None:
    facts = rds_facts(backup_retention_days=7, multi_az=False, cross_region_backups=True)
    lines = assess(rds_schedule(tmp_path, targets="{rto: 10m, rpo: 15m}"), facts)
    got = line(lines, "orders", "instance-loss")
    assert got.rpo_met is True and got.target_missed
    assert got in targets_missed(lines)


def test_a_well_protected_schedule_misses_nothing(tmp_path: Path) -> None:
    facts = rds_facts(backup_retention_days=14, multi_az=True, cross_region_backups=True)
    lines = assess(rds_schedule(tmp_path), facts)
    assert targets_missed(lines) == []
    assert all(x.rpo_met is True for x in lines)
