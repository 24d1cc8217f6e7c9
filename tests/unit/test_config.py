"""Configuration loading: what a config author sees for each kind of mistake.

Every case writes real files into a temporary config directory and asserts the exact
`FILE:LINE: field.path: message` lines `drkit validate` would print.
"""
# The expected messages are kept long, so that they read like the output a user sees.

from __future__ import annotations

import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError

from drkit.config import Config, KeepConfig, json_schema, load_config
from drkit.errors import ConfigError, ExitStatus, UsageError

SCHEDULE = """\
environment: production
targets: {rto: 1h, rpo: 15m}
aws: {region: us-east-1, dr_region: us-west-2}
rds:
  - name: orders
    instance: orders-prod
    snapshots: {cron: "0 3 * * *", keep: {daily: 7}}
    copies: {cron: "0 4 * * 0", kms_key: alias/drkit-dr, keep: {weekly: 4}}
postgres:
  - name: app
    dsn_env: APP_DSN
    backups: {cron: "0 */6 * * *", keep: {daily: 7}}
    store: file://.drkit/backups
    encryption: {key_file: .drkit/backup.key}
"""

DRILL = """\
environment: demo
targets: {rto: 15m, rpo: 5m}
scenario: data-corruption
source:
  postgres: {schedule: prod, resource: app}
verify:
  database: app
  checks:
    - {name: one, sql: SELECT 1, expect: "== 1"}
"""

RDS_DRILL = """\
environment: production
targets: {rto: 1h, rpo: 15m}
scenario: region-loss
source:
  rds: {schedule: prod, resource: orders}
  recovery_point: latest-copy
restore: {region: us-west-2}
verify:
  database: orders
  checks:
    - {name: one, sql: SELECT 1}
"""

RUNBOOK = """\
title: Restore
when: Always
params:
  instance: {required: true}
  target: {default: "{instance}-restored"}
steps:
  - {name: restore, run: "drkit restore rds --instance {instance} --target {target}"}
"""


def write(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return root


def issues_of(root: Path, **kwargs: object) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config(root, **kwargs)  # type: ignore[arg-type]
    assert info.value.exit_status == ExitStatus.USAGE
    assert str(info.value) == "\n".join(info.value.issues)
    return info.value.issues


def base(root: Path, extra: dict[str, str] | None = None) -> Path:
    """A valid config (one schedule, one drill, one runbook) plus `extra` files."""
    files = {"schedules/prod.yaml": SCHEDULE, "drills/pg.yaml": DRILL, "runbooks/restore.yaml": RUNBOOK}
    return write(root, {**files, **(extra or {})})


def test_the_valid_base_config_loads(tmp_path: Path) -> None:
    config = load_config(base(tmp_path))
    assert sorted(config.schedules) == ["prod"]
    assert config.drill("pg").source.ref.resource == "app"
    assert config.runbook("restore").params["target"].default == "{instance}-restored"


# (case id, file, content, expected issues). Line numbers count from 1 in `content`.
CASES = [
    (
        "unknown key at depth",
        "schedules/bad.yaml",
        """\
        environment: x
        targets: {rto: 1h, rpo: 15m}
        postgres:
          - name: app
            dsn_env: APP_DSN
            backups:
              cron: "0 3 * * *"
              keep:
                daily: 7
                dayly: 3
            store: file://b
            encryption: {key_file: k}
        """,
        [
            "schedules/bad.yaml:10: postgres[0].backups.keep.dayly: unknown key 'dayly' (did you mean 'daily'?); "
            "expected one of: last, hourly, daily, weekly, monthly, yearly, within, within_hourly, within_daily, "
            "within_weekly, within_monthly, within_yearly"
        ],
    ),
    (
        "unknown top-level key (name comes from the file name)",
        "schedules/bad.yaml",
        "name: bad\nenvironment: x\ntargets: {rto: 1h, rpo: 15m}\n",
        [
            "schedules/bad.yaml:1: name: unknown key 'name'; expected one of: environment, targets, timezone, "
            "aws, rds, s3, postgres, notify"
        ],
    ),
    (
        "wrong type: text where a number is expected",
        "schedules/bad.yaml",
        """\
        environment: x
        targets: {rto: 1h, rpo: 15m}
        postgres:
          - name: app
            dsn_env: APP_DSN
            backups: {cron: "0 3 * * *", keep: {daily: seven}}
            store: file://b
            encryption: {key_file: k}
        """,
        ["schedules/bad.yaml:6: postgres[0].backups.keep.daily: expected a whole number, got 'seven'"],
    ),
    (
        "wrong type: a number where text is expected",
        "drills/bad.yaml",
        DRILL.replace("database: app", "database: 5"),
        ['drills/bad.yaml:7: verify.database: expected text, got 5 (quote it: "5")'],
    ),
    (
        "wrong type: a list where a mapping is expected",
        "schedules/bad.yaml",
        "environment: x\ntargets: [1h, 15m]\n",
        ["schedules/bad.yaml:2: targets: expected a mapping (key: value), got a list"],
    ),
    (
        "bad duration",
        "schedules/bad.yaml",
        "environment: x\ntargets:\n  rto: 1h\n  rpo: fifteen\n",
        [
            "schedules/bad.yaml:4: targets.rpo: 'fifteen' is not a duration: write a number and a unit, "
            "e.g. 30s, 15m, 1h, 7d, 4w"
        ],
    ),
    (
        "missing required key points at its parent",
        "schedules/bad.yaml",
        "environment: x\ntargets:\n  rto: 1h\n",
        [
            "schedules/bad.yaml:2: targets.rpo: required: recovery point objective: the most recent data you may lose"
        ],
    ),
    (
        "bad cron (four fields)",
        "drills/bad.yaml",
        DRILL + 'schedule: "0 3 * *"\n',
        [
            "drills/bad.yaml:10: schedule: '0 3 * *' is not a cron expression of five fields "
            "(minute hour day-of-month month day-of-week, e.g. '0 3 * * *')"
        ],
    ),
    (
        "bad cron (minute 61)",
        "drills/bad.yaml",
        DRILL + 'schedule: "61 3 * * *"\n',
        [
            "drills/bad.yaml:10: schedule: '61 3 * * *' is not a valid cron expression "
            "(minute hour day-of-month month day-of-week, e.g. '0 3 * * *')"
        ],
    ),
    (
        "naive time",
        "drills/bad.yaml",
        RDS_DRILL.replace("latest-copy", "point-in-time\n  to_time: 2026-11-28T10:00:00"),
        [
            "drills/bad.yaml:7: source.to_time: 2026-11-28T10:00:00 has no time zone: write it with a zone, "
            "e.g. 2026-11-28T10:00:00Z"
        ],
    ),
    (
        "point-in-time without to_time",
        "drills/bad.yaml",
        RDS_DRILL.replace("latest-copy", "point-in-time"),
        [
            "drills/bad.yaml:4: source.to_time: required with recovery_point: point-in-time, e.g. 2026-11-28T10:00:00Z"
        ],
    ),
    (
        "bad timezone",
        "schedules/bad.yaml",
        "environment: x\ntargets: {rto: 1h, rpo: 15m}\ntimezone: Mars/Olympus\n",
        [
            "schedules/bad.yaml:3: timezone: 'Mars/Olympus' is not a time zone: use an IANA name, "
            "e.g. UTC, Europe/Berlin, America/New_York"
        ],
    ),
    (
        "both instance and cluster",
        "schedules/bad.yaml",
        SCHEDULE.replace(
            "    instance: orders-prod\n", "    instance: orders-prod\n    cluster: orders-aurora\n"
        ),
        [
            "schedules/bad.yaml:5: rds[0]: give exactly one of instance or cluster (what to back up); found both"
        ],
    ),
    (
        "copy without kms_key",
        "schedules/bad.yaml",
        SCHEDULE.replace("kms_key: alias/drkit-dr, ", ""),
        [
            "schedules/bad.yaml:8: rds[0].copies.kms_key: required: a KMS key in the destination region, "
            "e.g. alias/drkit-dr"
        ],
    ),
    (
        "copy with no region and no aws.dr_region",
        "schedules/bad.yaml",
        SCHEDULE.replace(", dr_region: us-west-2", ""),
        ["schedules/bad.yaml:8: rds[0].copies.region: no destination region: set it, or aws.dr_region"],
    ),
    (
        "rds section without an aws section",
        "schedules/bad.yaml",
        SCHEDULE.replace("aws: {region: us-east-1, dr_region: us-west-2}\n", ""),
        [
            "schedules/bad.yaml:3: rds: an rds section needs an aws section (region, dr_region)",
            "schedules/bad.yaml:7: rds[0].copies.region: no destination region: set it, or aws.dr_region",
        ],
    ),
    (
        "resource names are unique across sections",
        "schedules/bad.yaml",
        SCHEDULE.replace("  - name: app", "  - name: orders"),
        ["schedules/bad.yaml:10: postgres[0].name: 'orders' is already the name of rds[0]"],
    ),
    (
        "a secret where an env var name belongs",
        "schedules/bad.yaml",
        SCHEDULE.replace("dsn_env: APP_DSN", "dsn_env: postgres://app:hunter2@db/app"),
        [
            "schedules/bad.yaml:11: postgres[0].dsn_env: 'postgres://app:hunter2@db/app' is not an environment "
            "variable name: that looks like a secret itself; put the secret in an environment variable and "
            "write its name here, e.g. APP_DATABASE_URL"
        ],
    ),
    (
        "bad store",
        "schedules/bad.yaml",
        SCHEDULE.replace("file://.drkit/backups", "/var/backups"),
        [
            "schedules/bad.yaml:13: postgres[0].store: '/var/backups' is not a backup store: "
            "write file://PATH (relative to the config directory) or s3://BUCKET/PREFIX"
        ],
    ),
    (
        "encryption needs exactly one key",
        "schedules/bad.yaml",
        SCHEDULE.replace("{key_file: .drkit/backup.key}", "{}"),
        [
            "schedules/bad.yaml:14: postgres[0].encryption: give exactly one of key_file or kms_key (how to encrypt); "
            "found neither"
        ],
    ),
    (
        "a notify item names two channels",
        "schedules/bad.yaml",
        SCHEDULE + "notify:\n  - slack: {webhook_env: HOOK}\n    pagerduty: {routing_key_env: PD}\n",
        [
            "schedules/bad.yaml:16: notify[0]: give exactly one of slack, sns, pagerduty or email "
            "(one channel per item); found slack and pagerduty"
        ],
    ),
    (
        "empty keep policy",
        "schedules/bad.yaml",
        SCHEDULE.replace("keep: {daily: 7}}\n    copies", "keep: {}}\n    copies"),
        [
            "schedules/bad.yaml:7: rds[0].snapshots.keep: empty keep policy would keep nothing: set at least one "
            "of last, hourly, daily, weekly, monthly, yearly, within, within_daily, ..., e.g. {daily: 7, weekly: 4}"
        ],
    ),
    (
        "keep count of zero",
        "schedules/bad.yaml",
        SCHEDULE.replace("keep: {weekly: 4}", "keep: {weekly: 0}"),
        [
            "schedules/bad.yaml:8: rds[0].copies.keep.weekly: 0 is not a count: write a number >= 1, or -1 for no limit"
        ],
    ),
    (
        "unknown schedule reference",
        "drills/bad.yaml",
        DRILL.replace("schedule: prod", "schedule: production"),
        [
            "drills/bad.yaml:5: source.postgres.schedule: no schedule named 'production' in schedules/ (have: prod)"
        ],
    ),
    (
        "unknown resource reference",
        "drills/bad.yaml",
        RDS_DRILL.replace("resource: orders", "resource: app"),
        [
            "drills/bad.yaml:5: source.rds.resource: schedule 'prod' has no rds resource named 'app' "
            "(rds resources: orders); 'app' is in its postgres section"
        ],
    ),
    (
        "a reference is checked even when the drill has other errors",
        "drills/bad.yaml",
        DRILL.replace("resource: app", "resource: ap").replace(
            "scenario: data-corruption", "scenario: meteor"
        ),
        [
            "drills/bad.yaml:3: scenario: 'meteor' is not one of 'instance-loss', 'region-loss', "
            "'data-corruption' or 'az-loss'",
            "drills/bad.yaml:5: source.postgres.resource: schedule 'prod' has no postgres resource named 'ap' "
            "(postgres resources: app)",
        ],
    ),
    (
        "restoring a copy in a region where there are no copies",
        "drills/bad.yaml",
        RDS_DRILL.replace("restore: {region: us-west-2}", "restore: {region: eu-west-1}"),
        [
            "drills/bad.yaml:7: restore.region: eu-west-1, but the copies of 'orders' are in us-west-2: "
            "restore where the copies are"
        ],
    ),
    (
        "latest-copy of a resource that has no copies",
        "schedules/prod.yaml",
        SCHEDULE.replace('    copies: {cron: "0 4 * * 0", kms_key: alias/drkit-dr, keep: {weekly: 4}}\n', ""),
        [
            "drills/rds.yaml:6: source.recovery_point: latest-copy, but 'orders' has no copies in schedules/prod.yaml"
        ],
    ),
    (
        "an rds drill needs restore",
        "drills/bad.yaml",
        RDS_DRILL.replace("restore: {region: us-west-2}\n", ""),
        [
            "drills/bad.yaml:1: restore: required for an rds source: "
            "{region: ..., instance_class: ..., isolation: {vpc_cidr: ...}}"
        ],
    ),
    (
        "a postgres drill takes no restore section",
        "drills/bad.yaml",
        DRILL + "restore: {region: us-west-2}\n",
        ["drills/bad.yaml:10: restore: a postgres drill restores into an ephemeral local cluster: remove it"],
    ),
    (
        "an rds recovery point for a postgres source",
        "drills/bad.yaml",
        DRILL.replace("resource: app}", "resource: app}\n  recovery_point: latest-copy"),
        [
            "drills/bad.yaml:6: source.recovery_point: 'latest-copy' is not a postgres recovery point: "
            "write 'latest' or a backup id"
        ],
    ),
    (
        "bad expect",
        "drills/bad.yaml",
        DRILL.replace('expect: "== 1"', 'expect: "bigger than 3"'),
        [
            "drills/bad.yaml:9: verify.checks[0].expect: 'bigger than 3' is not an expectation drkit understands: "
            "write e.g. '> 3' (forms: == N, >= N, <= N, > N, < N, between A and B, not null, or a literal value)"
        ],
    ),
    (
        "expect with a non-number",
        "drills/bad.yaml",
        DRILL.replace('expect: "== 1"', 'expect: ">= lots"'),
        ["drills/bad.yaml:9: verify.checks[0].expect: 'lots' is not a number"],
    ),
    (
        "duplicate check names",
        "drills/bad.yaml",
        DRILL + "    - {name: one, sql: SELECT 2, expect: 2}\n",
        ["drills/bad.yaml:10: verify.checks[1].name: 'one' is already the name of checks[0]"],
    ),
    (
        "no checks at all",
        "drills/bad.yaml",
        DRILL.replace('    - {name: one, sql: SELECT 1, expect: "== 1"}\n', "").replace(
            "checks:", "checks: []"
        ),
        ["drills/bad.yaml:8: verify.checks: must not be empty"],
    ),
    (
        "a bad report format",
        "drills/bad.yaml",
        DRILL + "report: {formats: [json, pdf]}\n",
        ["drills/bad.yaml:10: report.formats[1]: 'pdf' is not one of 'json', 'md', 'html' or 'junit'"],
    ),
    (
        "undeclared runbook placeholder",
        "runbooks/bad.yaml",
        RUNBOOK.replace("--target {target}", "--target {targte}"),
        [
            "runbooks/bad.yaml:7: steps[0].run: '{targte}' is not a declared param (did you mean 'target'?); "
            "params: instance, target"
        ],
    ),
    (
        "undeclared placeholder in a default",
        "runbooks/bad.yaml",
        RUNBOOK.replace('"{instance}-restored"', '"{db}-restored"'),
        [
            "runbooks/bad.yaml:5: params.target.default: '{db}' is not a declared param; params: instance, target"
        ],
    ),
    (
        "defaults that refer to each other",
        "runbooks/bad.yaml",
        RUNBOOK.replace("instance: {required: true}", 'instance: {default: "{target}"}'),
        [
            "runbooks/bad.yaml:4: params.instance.default: defaults refer to each other: instance -> target -> instance"
        ],
    ),
    (
        "a step with both run and manual",
        "runbooks/bad.yaml",
        RUNBOOK + '  - {name: switch, manual: "Flip it.", run: "flip"}\n',
        ["runbooks/bad.yaml:8: steps[1]: give exactly one of run or manual (what the step does); found both"],
    ),
    (
        "YAML syntax error with its line",
        "runbooks/bad.yaml",
        "title: x\nwhen: y\nsteps:\n  - {name: a, run: b\n  - {name: c, run: d}\n",
        [
            "runbooks/bad.yaml:5: invalid YAML: expected ',' or '}', but got '{', while parsing a flow mapping (line 4)"
        ],
    ),
    (
        "duplicate key",
        "drills/bad.yaml",
        DRILL.replace("scenario: data-corruption\n", "scenario: data-corruption\nscenario: region-loss\n"),
        ["drills/bad.yaml:4: scenario: duplicate key 'scenario' (first at line 3)"],
    ),
    (
        "duplicate key at depth",
        "schedules/bad.yaml",
        "environment: x\ntargets:\n  rto: 1h\n  rpo: 15m\n  rto: 2h\n",
        ["schedules/bad.yaml:5: targets.rto: duplicate key 'rto' (first at line 3)"],
    ),
    (
        "an alias that contains itself",
        "runbooks/bad.yaml",
        RUNBOOK + "x: &loop\n  - *loop\n",
        [
            "runbooks/bad.yaml:8: x[0]: an alias refers to itself",  # the line of its anchor
            "runbooks/bad.yaml:8: x: unknown key 'x'; expected one of: title, when, params, steps",
        ],
    ),
    (
        "an empty file",
        "runbooks/bad.yaml",
        "# nothing here yet\n",
        [
            "runbooks/bad.yaml:1: the file is empty: a runbook is a mapping of keys (see `drkit schema runbook`)"
        ],
    ),
    (
        "a file that is not a mapping",
        "runbooks/bad.yaml",
        "\n- step one\n- step two\n",
        ["runbooks/bad.yaml:2: a runbook is a mapping of keys (key: value), not a list"],
    ),
    (
        "a .yml file is not silently ignored",
        "drills/bad.yml",
        DRILL,
        ["drills/bad.yml:1: drkit reads *.yaml files: rename it to bad.yaml"],
    ),
    (
        "a file name that cannot be a name",
        "drills/Bad_Drill.yaml",
        DRILL,
        ["drills/Bad_Drill.yaml:1: 'Bad_Drill' is not a valid name: use lowercase letters, digits and '-'"],
    ),
]


@pytest.mark.parametrize(("path", "content", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_each_mistake_is_reported_with_file_line_and_field(
    tmp_path: Path, path: str, content: str, expected: list[str]
) -> None:
    base(tmp_path, {"drills/rds.yaml": RDS_DRILL})
    write(tmp_path, {path: content})
    assert issues_of(tmp_path) == expected


def test_errors_in_several_files_are_all_reported_sorted_by_file_then_line(tmp_path: Path) -> None:
    base(tmp_path)
    write(
        tmp_path,
        {
            "schedules/prod.yaml": SCHEDULE.replace("rpo: 15m", "rpo: 15 minutes"),
            "drills/pg.yaml": DRILL.replace("teardown", "x") + "teardown: later\n",
            "drills/a.yaml": DRILL.replace('expect: "== 1"', 'expect: "at least 5"').replace(
                "environment: demo", "enviroment: demo"
            ),
            "runbooks/restore.yaml": RUNBOOK.replace("{instance}-restored", "{name}-restored"),
        },
    )
    assert issues_of(tmp_path) == [
        "drills/a.yaml:1: environment: required: e.g. production; reports carry it",
        "drills/a.yaml:1: enviroment: unknown key 'enviroment' (did you mean 'environment'?); expected one of: "
        "environment, targets, scenario, schedule, source, restore, verify, teardown, report",
        "drills/a.yaml:9: verify.checks[0].expect: 'at least 5' is not an expectation drkit understands: "
        "write e.g. '>= 5' (forms: == N, >= N, <= N, > N, < N, between A and B, not null, or a literal value)",
        "drills/pg.yaml:10: teardown: 'later' is not one of 'always', 'on-success' or 'never'",
        "runbooks/restore.yaml:5: params.target.default: '{name}' is not a declared param; params: instance, target",
        "schedules/prod.yaml:2: targets.rpo: '15 minutes' is not a duration: write a number and a unit, "
        "e.g. 30s, 15m, 1h, 7d, 4w",
    ]


def test_a_missing_config_dir_says_where_it_looked(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    issues = issues_of(missing)
    assert len(issues) == 1
    assert issues[0].startswith(f"{missing}: no such config directory")
    assert f"{missing}/schedules/*.yaml" in issues[0]


def test_a_config_dir_without_files_says_where_it_looked(tmp_path: Path) -> None:
    (tmp_path / "schedules").mkdir()
    (tmp_path / "schedules" / "README.md").write_text("not config\n")
    issues = issues_of(tmp_path)
    assert issues == [
        f"{tmp_path}: no configuration files found (looked for {tmp_path}/schedules/*.yaml, "
        f"{tmp_path}/drills/*.yaml, {tmp_path}/runbooks/*.yaml; "
        "point --config-dir or DRKIT_CONFIG_DIR at the directory that holds them)"
    ]


def test_kinds_limit_what_is_loaded_but_drills_bring_their_schedules(tmp_path: Path) -> None:
    base(tmp_path, {"runbooks/bad.yaml": "title: [unclosed\n"})
    config = load_config(tmp_path, kinds=("drill",))
    assert sorted(config.drills) == ["pg"]
    assert sorted(config.schedules) == ["prod"]  # the drill's source lives there
    assert config.runbooks == {}
    # ...while the broken runbook is reported as soon as runbooks are asked for.
    assert issues_of(tmp_path, kinds=("runbook",)) == [
        "runbooks/bad.yaml:2: invalid YAML: expected ',' or ']', but got '<stream end>', "
        "while parsing a flow sequence (line 1)"
    ]
    with pytest.raises(UsageError, match="unknown config kind 'drills'"):
        load_config(tmp_path, kinds=("drills",))


def test_loaded_values_are_typed_and_defaults_filled(tmp_path: Path) -> None:
    base(
        tmp_path,
        {
            "drills/pitr.yaml": RDS_DRILL.replace(
                "latest-copy", "point-in-time\n  to_time: 2026-11-28T10:00:00+01:00"
            )
        },
    )
    config = load_config(tmp_path)
    schedule = config.schedule("prod")
    assert schedule.name == "prod"
    assert schedule.path == tmp_path / "schedules" / "prod.yaml"
    assert schedule.timezone == "UTC"
    assert schedule.targets.rpo == timedelta(minutes=15)
    orders = schedule.rds[0]
    assert orders.kind == "instance" and orders.identifier == "orders-prod"
    assert orders.copies is not None and orders.copies.region == "us-west-2"  # from aws.dr_region
    drill = config.drill("pg")
    assert drill.engine == "postgres"
    assert drill.source.point == "latest"
    assert drill.teardown == "always"
    assert drill.report.dir == "reports" and drill.report.formats == ("json", "md", "html", "junit")
    assert drill.verify.checks[0].expectation is not None and drill.verify.checks[0].expectation.holds(1)
    assert not drill.verify.checks[0].expectation.holds(2)
    pitr = config.drill("pitr")
    assert pitr.source.to_time == datetime(2026, 11, 28, 9, 0, tzinfo=UTC)
    with pytest.raises(ValidationError):
        drill.teardown = "never"  # type: ignore[misc]


def test_s3_replicas_default_to_the_dr_region(tmp_path: Path) -> None:
    s3 = "s3:\n  - {name: assets, bucket: acme-assets, replica_bucket: acme-assets-dr, kms_key: alias/dr}\n"
    config = load_config(base(tmp_path, {"schedules/prod.yaml": SCHEDULE + s3}))
    assert config.schedule("prod").s3[0].region == "us-west-2"
    no_aws = SCHEDULE.replace("aws: {region: us-east-1, dr_region: us-west-2}\n", "").split("rds:")[0] + s3
    write(tmp_path, {"schedules/prod.yaml": no_aws})
    # (the drill that refers to this schedule is not blamed for the schedule's own errors)
    assert issues_of(tmp_path) == [
        "schedules/prod.yaml:3: s3: an s3 section needs an aws section (region, dr_region)",
        "schedules/prod.yaml:4: s3[0].region: no replica region: set it, or aws.dr_region",
    ]


def test_lookups_name_what_exists(tmp_path: Path) -> None:
    config = load_config(base(tmp_path))
    with pytest.raises(UsageError) as info:
        config.schedule("production")
    assert str(info.value) == f"no schedule named production in {tmp_path}/schedules (have: prod)"
    with pytest.raises(UsageError, match=r"no runbook named x in .*/runbooks \(have: restore\)"):
        config.runbook("x")
    with pytest.raises(UsageError, match=r"\(have: pg\)"):
        config.drill("quarterly")


def test_relative_paths_resolve_against_the_config_dir(tmp_path: Path) -> None:
    config = Config(config_dir=tmp_path)
    assert config.resolve_path("file://.drkit/backups") == tmp_path / ".drkit" / "backups"
    assert config.resolve_path(".drkit/backup.key") == tmp_path / ".drkit" / "backup.key"
    assert config.resolve_path("file:///var/backups") == Path("/var/backups")
    assert config.resolve_path("~/k") == Path.home() / "k"
    with pytest.raises(UsageError):
        config.resolve_path("s3://bucket/prefix")


def test_keep_config_becomes_the_domain_policy() -> None:
    from drkit.domain.retention import KeepPolicy, Span

    keep = KeepConfig.model_validate(
        {"last": 3, "daily": 7, "yearly": -1, "within": "36h", "within_daily": "90d"}
    )
    assert keep.to_policy() == KeepPolicy(
        last=3, daily=7, yearly=-1, within=Span(days=1, hours=12), within_daily=Span(days=90)
    )


def test_json_schema_rejects_unknown_kinds() -> None:
    with pytest.raises(UsageError, match="unknown config kind 'backup'"):
        json_schema("backup")
