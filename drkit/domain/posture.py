"""Recovery posture: the worst-case RPO and an RTO estimate a schedule implies, per failure.

For every resource of a schedule and every scenario (instance loss, AZ loss, region loss,
logical corruption) `assess` answers "if this happened at the worst moment, how much data
would we lose and how long would we be down?", compares that with the schedule's targets, and
says in plain words why and what would fix a miss. `drkit posture` prints it.

    # schedules/production.yaml
    targets: {rto: 1h, rpo: 15m}
    rds:
      - name: orders
        instance: orders-prod
        snapshots: {cron: "0 3 * * *", keep: {daily: 7}}
        copies: {cron: "0 4 * * 0", kms_key: alias/drkit-dr, keep: {weekly: 4}}

    orders region-loss: 7d1h vs 15m MISSED -- weekly copies of a snapshot up to 1h old;
    fix: enable cross-region automated backup replication (...)

How the rules reason (an SRE's rules of thumb, each with its source in the basis text):

* RDS automated backups (PITR, retention >= 1 day) upload transaction logs every 5 minutes:
  instance loss and logical corruption lose at most ~5 min. Multi-AZ keeps a synchronous
  standby: instance and AZ loss lose nothing. Without PITR, only the snapshot cron bounds it.
  Aurora keeps six copies of its storage across three AZs and cannot turn backups off.
* A region loss takes everything in the region: only what is elsewhere counts, i.e.
  cross-region automated backups (~5-15 min) or the copies' cron (plus the copied snapshot's age).
* A pg_dump has no point in time: every scenario loses up to the backup cron's longest gap,
  and a file:// store does not survive the region (nor the host, if it is a local disk).
* S3 replication with Replication Time Control has a 15-minute SLA; without it there is none.
  Versioning makes every overwrite and delete reversible (RPO 0 for logical corruption).
* RTO figures are estimates (bands), because restore time grows with data size: compare
  them with a drill's measured RTO.

Facts about AWS settings that the schedule does not declare (`Facts`) refine the answer when
they are known. Without them drkit does not guess: automated backups are on by default, so a
line that depends on them says "unknown (run with AWS access)" unless every possibility gives
the same verdict; Multi-AZ and cross-region automated backup replication are opt-in, so the
worst case counts them as off and the line says they are unknown. What the schedule declares
(S3 replication, RTC) is assumed applied unless a fact says otherwise.

Pure: no AWS calls, no clock.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import lru_cache
from itertools import pairwise
from typing import Literal

from drkit.config import KeepConfig, PostgresResource, RdsResource, S3Resource, Schedule
from drkit.domain.durations import format_duration
from drkit.domain.schedule import REFERENCE_START, last_slot, max_interval, next_slot, slots

__all__ = [
    "SCENARIOS",
    "Facts",
    "PostureLine",
    "RdsFacts",
    "S3Facts",
    "Scenario",
    "assess",
    "targets_missed",
]

Scenario = Literal["instance-loss", "az-loss", "region-loss", "logical-corruption"]
SCENARIOS: tuple[Scenario, ...] = ("instance-loss", "az-loss", "region-loss", "logical-corruption")
UNKNOWN = "unknown (run with AWS access)"

# Rules of thumb (AWS documentation; see the module docstring).
PITR_LAG = timedelta(minutes=5)  # RDS uploads transaction logs every 5 minutes
XREGION_BACKUP_LAG = timedelta(minutes=15)  # logs every 5 min, copied across as soon as ready
S3_RTC_SLA = timedelta(minutes=15)  # 99.99% of objects within 15 minutes
ZERO = timedelta(0)
MINUTE = timedelta(minutes=1)
RESTORE_RDS = (timedelta(minutes=20), timedelta(minutes=60))
RESTORE_DUMP = (timedelta(minutes=5), timedelta(minutes=60))
FAILOVER_MULTI_AZ = (timedelta(minutes=1), timedelta(minutes=2))
FAILOVER_AURORA = (timedelta(seconds=30), timedelta(minutes=2))
REPLACE_AURORA_WRITER = (timedelta(minutes=5), timedelta(minutes=15))
S3_SWITCH = (timedelta(minutes=1), timedelta(minutes=15))
S3_ROLLBACK = (timedelta(minutes=5), timedelta(minutes=60))
RDS_RESTORE_NOTE = "restore into a new instance{where}: ~20-60 min, grows with size"
RDS_FASTER = "promoting a standby or read replica (Multi-AZ, cross-region replica) is faster than a restore"
PG_FASTER = "promoting a streaming replica is faster than restoring a dump"
DUMP_RESTORE_NOTE = "pg_restore into a new cluster: ~5-60 min, grows with size (indexes are rebuilt)"


@dataclass(frozen=True)
class RdsFacts:
    """What AWS says about one RDS instance or cluster (None: not known)."""

    backup_retention_days: int | None = None  # automated backups; 0 = off (no PITR)
    multi_az: bool | None = None  # instance: a standby; cluster: a reader in another AZ
    cross_region_backups: bool | None = None  # automated backups replicated to another region
    latest_restorable_time: datetime | None = None

    @property
    def pitr(self) -> bool | None:
        return None if self.backup_retention_days is None else self.backup_retention_days > 0


@dataclass(frozen=True)
class S3Facts:
    """What AWS says about one replicated bucket (None: not known)."""

    replication: bool | None = None  # a replication rule to the replica exists
    rtc: bool | None = None  # Replication Time Control on
    versioning: bool | None = None
    lag: timedelta | None = None  # measured: age of the oldest object not yet replicated


@dataclass(frozen=True)
class Facts:
    """Live settings gathered from AWS, by resource name; `observed_at` is when."""

    observed_at: datetime | None = None
    rds: Mapping[str, RdsFacts] = field(default_factory=dict)
    s3: Mapping[str, S3Facts] = field(default_factory=dict)


@dataclass(frozen=True)
class PostureLine:
    """One resource under one scenario. `rpo_worst` None: unbounded or unknown (see `rpo_met`:
    False = unbounded, None = unknown). `rto_estimate` is a (low, high) band; `rto_met` compares
    its high end with the target."""

    schedule: str
    resource: str
    engine: str  # rds | postgres | s3
    scenario: Scenario
    rpo_worst: timedelta | None
    rpo_target: timedelta
    rpo_met: bool | None
    rto_estimate: tuple[timedelta, timedelta] | None
    rto_target: timedelta
    rto_met: bool | None
    basis: str
    fix: str | None

    @property
    def target_missed(self) -> bool:
        """The configuration cannot meet a target: the RPO misses, or even the RTO estimate's
        low end is over the target (a target inside the band is a risk to drill, not a miss)."""
        if self.rpo_met is False:
            return True
        if self.rto_estimate is None:
            return self.rto_met is False
        return self.rto_estimate[0] > self.rto_target


def targets_missed(lines: list[PostureLine]) -> list[PostureLine]:
    return [line for line in lines if line.target_missed]


@dataclass(frozen=True)
class _Rpo:
    """An RPO finding before it meets the target: value (None = unbounded/unknown), whether it is
    known to be unbounded, the reason, and how to do better."""

    worst: timedelta | None
    basis: str
    unbounded: bool = False
    fix: str | None = None
    # Set when the answer hangs on an unknown fact: the bounds it could take.
    possible: tuple[timedelta | None, ...] = ()


@dataclass(frozen=True)
class _Rto:
    band: tuple[timedelta, timedelta] | None
    basis: str
    faster: str = "a standby to fail over to restores faster than a backup"


def _d(value: timedelta) -> str:
    """Durations for people: 7d, 1d1h, 5m, 30s (format_duration without the zero padding)."""
    if value < MINUTE:
        return f"{int(value.total_seconds())}s"
    text = format_duration(value)
    return text[:-3] if text.endswith(("m00s", "h00m")) else text


def _every(cron: str, tz: str) -> str:
    return f"'{cron}' ({tz}), at most {_d(max_interval(cron, tz))} apart"


def _keep_text(keep: KeepConfig) -> str:
    items = keep.model_dump(exclude_none=True).items()
    return "{" + ", ".join(f"{k}: {_d(v) if isinstance(v, timedelta) else v}" for k, v in items) + "}"


_PERIODS = {
    "hourly": timedelta(hours=1),
    "daily": timedelta(days=1),
    "weekly": timedelta(weeks=1),
    "monthly": timedelta(days=31),
    "yearly": timedelta(days=366),
}


def _reach(keep: KeepConfig, interval: timedelta) -> timedelta | None:
    """About how far back a keep policy reaches (None: no limit). restic counts periods that
    have a point, so `daily: 7` on a weekly cron reaches back 7 weeks."""
    reach = ZERO
    counts: dict[str, timedelta] = {"last": interval, **_PERIODS}
    for rule, period in counts.items():
        n = getattr(keep, rule)
        if n == -1:
            return None
        if n:
            reach = max(reach, n * max(period, interval))
    for rule in ("within", "within_hourly", "within_daily", "within_weekly", "within_monthly", "within_yearly"):
        window = getattr(keep, rule)
        if window is not None:
            reach = max(reach, window)
    return reach


def _reach_text(keep: KeepConfig, interval: timedelta, what: str) -> str:
    reach = _reach(keep, interval)
    return f"{what} ~{_d(reach) if reach is not None else 'no limit'} ({_keep_text(keep)})"


def _judge_rpo(found: _Rpo, target: timedelta) -> bool | None:
    if found.unbounded:
        return False
    if found.possible:  # an unknown fact: known only if every possibility agrees
        verdicts = {p is not None and p <= target for p in found.possible}
        return verdicts.pop() if len(verdicts) == 1 else None
    if found.worst is None:
        return None
    return found.worst <= target


def _line(schedule: Schedule, resource: str, engine: str, scenario: Scenario, rpo: _Rpo, rto: _Rto) -> PostureLine:
    targets = schedule.targets
    rpo_met = _judge_rpo(rpo, targets.rpo)
    worst = rpo.worst
    if rpo.possible and rpo_met is not None:
        # Every possibility agrees: the worst of them is the honest bound (None: unbounded).
        worst = None if any(p is None for p in rpo.possible) else max(p for p in rpo.possible if p is not None)
    rto_met = None if rto.band is None else rto.band[1] <= targets.rto
    if rto.band is None and rpo.unbounded:
        rto_met = False  # nothing to restore from
    fix = rpo.fix if rpo_met is not True else None  # unknown lines say how to be sure
    if rto.band is not None and rto.band[1] > targets.rto:
        more = (
            f"RTO target {_d(targets.rto)} is under the estimate's high end {_d(rto.band[1])}: "
            f"measure it with a drill; {rto.faster}"
        )
        fix = f"{fix}; {more}" if fix else more
    basis = f"RPO: {rpo.basis}. RTO (estimate): {rto.basis}."
    return PostureLine(
        schedule=schedule.name,
        resource=resource,
        engine=engine,
        scenario=scenario,
        rpo_worst=worst,
        rpo_target=targets.rpo,
        rpo_met=rpo_met,
        rto_estimate=rto.band,
        rto_target=targets.rto,
        rto_met=rto_met,
        basis=basis,
        fix=fix,
    )


# --- RDS -------------------------------------------------------------------------------------


def _in_region_rpo(res: RdsResource, facts: RdsFacts, observed_at: datetime | None, tz: str) -> _Rpo:
    """The newest point inside the region: PITR if on, else the snapshots' cron."""
    pitr = True if res.kind == "cluster" else facts.pitr
    snap = max_interval(res.snapshots.cron, tz) if res.snapshots else None
    snap_text = f"snapshots {_every(res.snapshots.cron, tz)}" if res.snapshots else "no snapshots in the schedule"
    enable_pitr = "turn on automated backups (backup retention >= 7 days) for point-in-time recovery to ~5 min"
    if pitr:
        lag = PITR_LAG
        text = "automated backups (PITR): transaction logs uploaded every 5 min"
        if res.kind == "cluster":
            text = "Aurora continuous backups (always on): restorable to within ~5 min"
        if facts.latest_restorable_time is not None and observed_at is not None:
            behind = observed_at - facts.latest_restorable_time
            text += f"; the latest restorable time was {_d(max(behind, ZERO))} behind when checked"
            lag = max(lag, behind)
        return _Rpo(
            worst=lag,
            basis=text,
            fix="PITR's ~5 min is the floor for RDS backups: a lower RPO needs a synchronous standby "
            "(Multi-AZ) or application-level protection",
        )
    if pitr is False:
        if snap is None:
            return _Rpo(
                None,
                "automated backups are off and the schedule takes no snapshots: nothing to restore",
                unbounded=True,
                fix=enable_pitr + ", or add snapshots",
            )
        return _Rpo(snap, f"automated backups are off (retention 0): only the {snap_text}", fix=enable_pitr)
    return _Rpo(
        None,
        f"automated backups (PITR): {UNKNOWN}; ~5 min if on (the RDS default), else "
        + (f"only the {snap_text}" if snap is not None else "unbounded (no snapshots)"),
        possible=(PITR_LAG, snap),
        fix=enable_pitr + " (check with AWS access)",
    )


def _rds_failover(res: RdsResource, facts: RdsFacts, scenario: Scenario) -> tuple[_Rpo, _Rto] | None:
    """Instance/AZ loss covered by a standby or by Aurora's storage; None if not covered."""
    if res.kind == "cluster":
        rpo = _Rpo(ZERO, "Aurora storage keeps six copies across three AZs, apart from the instances")
        if facts.multi_az:
            return rpo, _Rto(FAILOVER_AURORA, "failover to a reader in another AZ: ~30 s-2 min")
        if facts.multi_az is False:
            return rpo, _Rto(REPLACE_AURORA_WRITER, "no reader to promote: Aurora replaces the writer, ~5-15 min")
        return rpo, _Rto(
            (FAILOVER_AURORA[0], REPLACE_AURORA_WRITER[1]),
            f"readers in other AZs: {UNKNOWN}; ~30 s-2 min with one, ~5-15 min without",
        )
    if facts.multi_az:
        what = "the synchronous standby" if scenario == "instance-loss" else "the standby in another AZ"
        return _Rpo(ZERO, f"Multi-AZ: {what} has every committed write"), _Rto(
            FAILOVER_MULTI_AZ, "Multi-AZ failover: typically 60-120 s"
        )
    return None


def _rds_rpo_rto(
    res: RdsResource, facts: RdsFacts, observed_at: datetime | None, tz: str, scenario: Scenario
) -> tuple[_Rpo, _Rto]:
    if scenario in ("instance-loss", "az-loss"):
        covered = _rds_failover(res, facts, scenario)
        if covered is not None:
            return covered
        local = _in_region_rpo(res, facts, observed_at, tz)
        multi = "Multi-AZ: " + ("off" if facts.multi_az is False else f"{UNKNOWN}, counted as off")
        fix = "enable Multi-AZ (RPO 0, failover in 1-2 min)"
        return (
            _Rpo(
                local.worst,
                f"{local.basis} ({multi})",
                unbounded=local.unbounded,
                fix=f"{fix}; {local.fix}" if local.fix else fix,
                possible=local.possible,
            ),
            _Rto(RESTORE_RDS, RDS_RESTORE_NOTE.format(where=""), RDS_FASTER),
        )
    if scenario == "region-loss":
        return _rds_region_loss(res, facts, tz), _Rto(
            RESTORE_RDS,
            RDS_RESTORE_NOTE.format(where=" in the DR region") + ", plus repointing the application",
            RDS_FASTER,
        )
    # logical corruption: restore to just before the damage, as far back as retention reaches.
    local = _in_region_rpo(res, facts, observed_at, tz)
    windows = []
    if facts.backup_retention_days is not None:
        windows.append(f"PITR {facts.backup_retention_days}d")
    else:
        windows.append(f"PITR retention {UNKNOWN}")
    if res.snapshots:
        windows.append(_reach_text(res.snapshots.keep, max_interval(res.snapshots.cron, tz), "snapshots"))
    if res.copies:
        windows.append(_reach_text(res.copies.keep, max_interval(res.copies.cron, tz), "copies"))
    back = "; how far back you can go: " + ", ".join(windows) if windows else ""
    return (
        _Rpo(local.worst, local.basis + back, unbounded=local.unbounded, fix=local.fix, possible=local.possible),
        _Rto(
            RESTORE_RDS,
            RDS_RESTORE_NOTE.format(where="") + ", plus finding the moment before the damage",
            "a standby copies the damage, so only a smaller database or a faster restore helps",
        ),
    )


@lru_cache(maxsize=256)
def _copy_worst(copy_cron: str, snapshot_cron: str | None, tz: str) -> tuple[timedelta, timedelta]:
    """(worst RPO of the copies, the copied snapshot's worst age when copied).

    The DR region holds, just before a copy lands, the snapshot the previous copy took; so the
    worst case is the longest (next copy - snapshot before the previous copy). Without
    scheduled snapshots the copied snapshot's age is unknown and counts as 0. Cached: a fleet
    shares a handful of crons.
    """
    end = REFERENCE_START + timedelta(days=400)
    fires = [
        last_slot(copy_cron, tz, REFERENCE_START),
        *slots(copy_cron, tz, REFERENCE_START, end),
        next_slot(copy_cron, tz, end),
    ]
    fires = sorted(set(fires))[:500]  # a year of weekly or daily copies; enough to see DST and months
    if snapshot_cron is None:
        return max(b - a for a, b in pairwise(fires)), ZERO
    # A copy at the same minute as a snapshot cannot copy it yet: take the one before.
    snap = [last_slot(snapshot_cron, tz, c - MINUTE) for c in fires]
    worst = max(b - s for s, b in zip(snap, fires[1:], strict=False))
    stale = max(c - s for s, c in zip(snap, fires, strict=True))
    return worst, stale


def _rds_region_loss(res: RdsResource, facts: RdsFacts, tz: str) -> _Rpo:
    global_db = "an Aurora global database (replication typically under 1 s)"
    if res.kind == "instance" and facts.cross_region_backups:
        return _Rpo(
            XREGION_BACKUP_LAG,
            "cross-region automated backups: logs every 5 min, copied as soon as ready: ~5 min typical, up to ~15 min",
            fix="below ~15 min needs a cross-region read replica (asynchronous, seconds behind)",
        )
    if res.kind == "instance":
        replication = "cross-region automated backups: " + (
            "off" if facts.cross_region_backups is False else f"{UNKNOWN}, counted as off"
        )
        fix_start = (
            "enable cross-region automated backup replication (StartDBInstanceAutomatedBackupsReplication) "
            f"or {global_db}"
        )
    else:
        replication = "Aurora has no cross-region automated backups"
        fix_start = f"use {global_db}"
    if res.copies is None:
        return _Rpo(
            None,
            f"nothing leaves the region: no copies in the schedule ({replication})",
            unbounded=True,
            fix=f"{fix_start}, or add copies: {{cron, kms_key, keep}} to another region",
        )
    assert res.copies.region is not None
    interval = max_interval(res.copies.cron, tz)
    worst, stale = _copy_worst(res.copies.cron, res.snapshots.cron if res.snapshots else None, tz)
    cadence = {timedelta(days=7): "weekly", timedelta(days=1): "daily", timedelta(hours=1): "hourly"}.get(
        interval, f"'{res.copies.cron}'"
    )
    text = f"{cadence} copies to {res.copies.region} ({_every(res.copies.cron, tz)})"
    if stale:
        text += f" of a snapshot up to {_d(stale)} old when copied"
    else:
        text += " of the newest snapshot (its age at copy time adds to this)"
    return _Rpo(
        worst, f"{text}: up to {_d(worst)} ({replication})", fix=f"{fix_start}; {cadence} copies alone give {_d(worst)}"
    )


# --- self-managed PostgreSQL ------------------------------------------------------------------


def _pg_rpo_rto(schedule: Schedule, res: PostgresResource, scenario: Scenario) -> tuple[_Rpo, _Rto]:
    tz = schedule.timezone
    interval = max_interval(res.backups.cron, tz)
    dumps = f"pg_dump {_every(res.backups.cron, tz)}; a dump has no point-in-time recovery"
    fix = (
        f"back up at least every {_d(schedule.targets.rpo)}, or use WAL archiving / streaming "
        "replication for a lower RPO than dumps can give"
    )
    rto = _Rto(RESTORE_DUMP, DUMP_RESTORE_NOTE, PG_FASTER)
    where = res.store_location
    if scenario == "region-loss":
        if res.store_scheme == "file":
            return (
                _Rpo(
                    None,
                    f"unbounded: the backups ({res.store}) live on the same host and region, so they are lost with "
                    "the region; store them in s3:// in another region",
                    unbounded=True,
                    fix="store them in s3:// in another region (store: s3://BUCKET/PREFIX)",
                ),
                _Rto(None, "nothing to restore from outside the region"),
            )
        bucket = where.split("/", 1)[0]
        replicated = next((s for s in schedule.s3 if s.bucket == bucket), None)
        text = f"{dumps}; stored in s3://{bucket}: " + (
            f"replicated to {replicated.region} by s3 resource {replicated.name}"
            if replicated
            else "counts only if that bucket is outside the failed region"
        )
        if res.encryption.key_file is not None:
            text += f"; the key file {res.encryption.key_file} must be kept outside the region too"
        return _Rpo(interval, text, fix=fix), rto
    text = dumps
    if res.store_scheme == "file" and scenario in ("instance-loss", "az-loss"):
        text += f"; assumes {res.store} survives the host (a local disk does not: use s3://)"
    if scenario == "logical-corruption":
        text += "; how far back you can go: " + _reach_text(res.backups.keep, interval, "backups")
    return _Rpo(interval, text, fix=fix), rto


# --- S3 ---------------------------------------------------------------------------------------


def _s3_rpo_rto(res: S3Resource, facts: S3Facts, scenario: Scenario, target: timedelta) -> tuple[_Rpo, _Rto]:
    name = res.name
    if scenario in ("instance-loss", "az-loss"):
        return (
            _Rpo(ZERO, "S3 Standard stores every object in at least three AZs (not One Zone classes)"),
            _Rto((ZERO, ZERO), "no failover needed"),
        )
    if scenario == "logical-corruption":
        versioning = True if facts.versioning is None else facts.versioning
        if not versioning:
            return (
                _Rpo(
                    None,
                    "versioning is off: an overwrite or delete is unrecoverable",
                    unbounded=True,
                    fix=f"turn versioning on: drkit s3 replicate {name}",
                ),
                _Rto(None, "nothing to restore from"),
            )
        checked = "" if facts.versioning is not None else f" (versioning set by drkit s3 replicate; {UNKNOWN})"
        return (
            _Rpo(
                ZERO,
                "versioning keeps every overwritten and deleted version: drkit s3 restore --to-time brings them "
                "back (delete markers replicate, so the replica is no backup; lifecycle rules on noncurrent "
                f"versions limit how far back){checked}",
            ),
            _Rto(S3_ROLLBACK, "drkit s3 restore copies each changed key: grows with the number of keys"),
        )
    # region loss: what reached the replica region
    switch = _Rto(S3_SWITCH, f"the replica {res.replica_bucket} is readable at once: repoint clients")
    if facts.replication is False:
        return (
            _Rpo(None, "not replicated: unbounded", unbounded=True, fix=f"drkit s3 replicate {name}"),
            _Rto(None, "no replica to switch to"),
        )
    rtc = res.replication_time_control if facts.rtc is None else facts.rtc
    applied = "" if facts.replication is not None else f" (set up by drkit s3 replicate; {UNKNOWN})"
    under_sla = (
        "no S3 replication guarantee is under 15 min: write to both regions (dual writes, or a "
        "Multi-Region Access Point with synchronous application writes)"
    )
    if rtc:
        worst = S3_RTC_SLA if facts.lag is None else max(S3_RTC_SLA, facts.lag)
        text = f"Replication Time Control to {res.region}: 15 min SLA"
        if facts.lag is not None:
            text += f"; measured lag {_d(facts.lag)}"
            if facts.lag > S3_RTC_SLA:
                text += f" exceeds the SLA: look for failed replication (drkit s3 verify {name})"
        return _Rpo(worst, text + applied, fix=under_sla), switch
    turn_on = f"turn on replication_time_control for {name} (15 min SLA)"
    fix = turn_on if target >= S3_RTC_SLA else under_sla
    if facts.lag is not None:
        return (
            _Rpo(
                facts.lag,
                f"replication to {res.region} without RTC: measured lag {_d(facts.lag)}, no SLA" + applied,
                fix=fix,
            ),
            switch,
        )
    return (
        _Rpo(None, f"replication to {res.region} without RTC: minutes, no SLA; lag {UNKNOWN}" + applied, fix=fix),
        switch,
    )


# --- the whole schedule -----------------------------------------------------------------------


def _rules(
    schedule: Schedule, res: RdsResource | PostgresResource | S3Resource, facts: Facts, scenario: Scenario
) -> tuple[_Rpo, _Rto]:
    if isinstance(res, RdsResource):
        found = facts.rds.get(res.name, RdsFacts())
        return _rds_rpo_rto(res, found, facts.observed_at, schedule.timezone, scenario)
    if isinstance(res, PostgresResource):
        return _pg_rpo_rto(schedule, res, scenario)
    return _s3_rpo_rto(res, facts.s3.get(res.name, S3Facts()), scenario, schedule.targets.rpo)


ENGINES = {RdsResource: "rds", PostgresResource: "postgres", S3Resource: "s3"}


def assess(schedule: Schedule, facts: Facts | None = None) -> list[PostureLine]:
    """Every resource of `schedule` (rds, then postgres, then s3) under every scenario."""
    facts = facts or Facts()
    lines: list[PostureLine] = []
    resources: tuple[RdsResource | PostgresResource | S3Resource, ...] = (
        *schedule.rds,
        *schedule.postgres,
        *schedule.s3,
    )
    for res in resources:
        for scenario in SCENARIOS:
            rpo, rto = _rules(schedule, res, facts, scenario)
            lines.append(_line(schedule, res.name, ENGINES[type(res)], scenario, rpo, rto))
    return lines
