"""Schedules (schedules/*.yaml): what to back up, when, how long to keep it, where to copy it.

Every model below documents itself with a YAML example of its own content; the examples are
validated by tests/unit/test_config_examples.py.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import AfterValidator, ConfigDict, Field, WithJsonSchema, model_validator

from drkit.config.fields import (
    Bucket,
    ConfigModel,
    Cron,
    Document,
    Duration,
    EnvName,
    KeepCount,
    KmsKey,
    Name,
    ProblemList,
    Region,
    Text,
    TimeZone,
    bucket_problem,
    exactly_one,
)

if TYPE_CHECKING:
    from drkit.domain.retention import KeepPolicy

__all__ = [
    "AwsConfig",
    "Cadence",
    "CopyPolicy",
    "EmailNotify",
    "Encryption",
    "KeepConfig",
    "Notify",
    "PagerDutyNotify",
    "PostgresResource",
    "RdsResource",
    "S3Resource",
    "S3Verify",
    "Schedule",
    "SlackNotify",
    "SnsNotify",
    "Targets",
]

COUNT_KEYS = ("last", "hourly", "daily", "weekly", "monthly", "yearly")
WINDOW_KEYS = ("within", "within_hourly", "within_daily", "within_weekly", "within_monthly", "within_yearly")


class Targets(ConfigModel):
    """Recovery objectives that drills and `drkit posture` measure against.

    Example::

        rto: 1h
        rpo: 15m
    """

    rto: Duration = Field(description="recovery time objective: the longest acceptable outage")
    rpo: Duration = Field(description="recovery point objective: the most recent data you may lose")


class KeepConfig(ConfigModel):
    """A keep policy with restic's `forget` semantics (CONTRACT.md: keep policies).

    Counts keep the newest point in each of the N most recent periods (-1: no limit);
    `within: 30d` keeps everything newer than the newest point minus 30 days; `within_daily`
    and friends keep the newest point per period inside the window. Empty is an error.

    Example::

        last: 3
        daily: 7
        weekly: 4
        within: 2d
    """

    last: KeepCount | None = Field(default=None, description="the N newest points")
    hourly: KeepCount | None = Field(default=None, description="newest point of each of the last N hours")
    daily: KeepCount | None = Field(default=None, description="newest point of each of the last N days")
    weekly: KeepCount | None = Field(default=None, description="newest point of each of the last N ISO weeks")
    monthly: KeepCount | None = Field(default=None, description="newest point of each of the last N months")
    yearly: KeepCount | None = Field(default=None, description="newest point of each of the last N years")
    within: Duration | None = Field(
        default=None, description="everything newer than the newest point minus this"
    )
    within_hourly: Duration | None = None
    within_daily: Duration | None = None
    within_weekly: Duration | None = None
    within_monthly: Duration | None = None
    within_yearly: Duration | None = None

    @model_validator(mode="after")
    def _not_empty(self) -> KeepConfig:
        if all(getattr(self, key) is None for key in (*COUNT_KEYS, *WINDOW_KEYS)):
            raise ValueError(
                "empty keep policy would keep nothing: set at least one of "
                + ", ".join((*COUNT_KEYS, "within", "within_daily", "..."))
                + ", e.g. {daily: 7, weekly: 4}"
            )
        return self

    def to_policy(self) -> KeepPolicy:
        """The domain's KeepPolicy (drkit.domain.retention), with windows as calendar Spans."""
        from drkit.domain.retention import KeepPolicy, Span

        counts: dict[str, Any] = {
            key: getattr(self, key) for key in COUNT_KEYS if getattr(self, key) is not None
        }
        windows: dict[str, Any] = {}
        for key in WINDOW_KEYS:
            value: timedelta | None = getattr(self, key)
            if value is not None:
                windows[key] = Span.from_timedelta(value)
        return KeepPolicy(**counts, **windows)


class Cadence(ConfigModel):
    """When to take recovery points (cron, in the schedule's timezone) and how long to keep them.

    Example::

        cron: "0 3 * * *"
        keep: {daily: 7, weekly: 4}
    """

    cron: Cron = Field(description="when, as five-field cron in the schedule's timezone")
    keep: KeepConfig = Field(description="how long to keep, e.g. {daily: 7, weekly: 4}")


class CopyPolicy(ConfigModel):
    """Cross-region copies of an RDS resource's snapshots, always encrypted with a key there.

    `region` defaults to `aws.dr_region`; after loading it is always set.

    Example::

        cron: "0 4 * * 0"
        region: us-west-2
        kms_key: alias/drkit-dr
        keep: {weekly: 4}
    """

    cron: Cron = Field(description="when to copy the newest snapshot")
    region: Region | None = Field(default=None, description="destination region (default: aws.dr_region)")
    kms_key: KmsKey = Field(description="a KMS key in the destination region, e.g. alias/drkit-dr")
    keep: KeepConfig = Field(description="how long to keep copies, e.g. {weekly: 4}")


_RDS_ID_RE = re.compile(r"^[A-Za-z](?!.*--)[A-Za-z0-9-]{0,62}(?<!-)$")


def _rds_identifier(text: str) -> str:
    if not _RDS_ID_RE.match(text):
        raise ValueError(
            f"{text!r} is not an RDS identifier: 1-63 letters, digits and '-', starting with a letter"
        )
    return text


RdsIdentifier = Annotated[str, AfterValidator(_rds_identifier)]


class RdsResource(ConfigModel):
    """An RDS DB instance or Aurora cluster: manual snapshots and cross-region copies.

    Example::

        name: orders
        instance: orders-prod
        snapshots: {cron: "0 3 * * *", keep: {daily: 7}}
        copies: {cron: "0 4 * * 0", kms_key: alias/drkit-dr, keep: {weekly: 4}, region: us-west-2}
    """

    name: Name = Field(description="drkit's name for it, unique in the schedule")
    instance: RdsIdentifier | None = Field(default=None, description="DB instance identifier")
    cluster: RdsIdentifier | None = Field(default=None, description="Aurora DB cluster identifier")
    snapshots: Cadence | None = Field(default=None, description="manual snapshots: cron and keep")
    copies: CopyPolicy | None = Field(default=None, description="cross-region copies of the snapshots")

    model_config = ConfigDict(
        json_schema_extra={"oneOf": [{"required": ["instance"]}, {"required": ["cluster"]}]},
    )

    @model_validator(mode="after")
    def _one_target(self) -> RdsResource:
        problem = exactly_one({"instance": self.instance, "cluster": self.cluster}, "what to back up")
        if problem:
            raise ValueError(problem)
        return self

    @property
    def kind(self) -> Literal["instance", "cluster"]:
        return "instance" if self.instance is not None else "cluster"

    @property
    def identifier(self) -> str:
        """The DB instance or cluster identifier in AWS."""
        value = self.instance if self.instance is not None else self.cluster
        assert value is not None  # guaranteed by the validator
        return value


class S3Verify(ConfigModel):
    """How often `drkit s3 verify` compares source and replica.

    Example::

        cron: "*/30 * * * *"
    """

    cron: Cron


class S3Resource(ConfigModel):
    """A versioned bucket replicated to another region with KMS encryption.

    `region` (the replica's region) defaults to `aws.dr_region`; after loading it is always set.

    Example::

        name: assets
        bucket: acme-assets-prod
        replica_bucket: acme-assets-prod-dr
        region: us-west-2
        kms_key: alias/drkit-dr
        replication_time_control: true
        verify: {cron: "*/30 * * * *"}
    """

    name: Name
    bucket: Bucket = Field(description="the source bucket")
    replica_bucket: Bucket = Field(description="the destination bucket in the replica region")
    region: Region | None = Field(default=None, description="the replica's region (default: aws.dr_region)")
    kms_key: KmsKey = Field(description="KMS key in the replica region that encrypts replicas")
    replication_time_control: bool = Field(default=False, description="S3 RTC: 15-minute replication SLA")
    verify: S3Verify | None = None


class Encryption(ConfigModel):
    """How PostgreSQL backups are encrypted: a local key file or a KMS key (exactly one).

    A relative `key_file` is relative to the config directory; it is created on first use.

    Example::

        key_file: .drkit/backup.key
    """

    key_file: Text | None = Field(default=None, description="32-byte key file (created on first use)")
    kms_key: KmsKey | None = Field(default=None, description="KMS key that wraps each backup's data key")

    model_config = ConfigDict(
        json_schema_extra={"oneOf": [{"required": ["key_file"]}, {"required": ["kms_key"]}]},
    )

    @model_validator(mode="after")
    def _one_key(self) -> Encryption:
        problem = exactly_one({"key_file": self.key_file, "kms_key": self.kms_key}, "how to encrypt")
        if problem:
            raise ValueError(problem)
        return self


_STORE_HINT = "write file://PATH (relative to the config directory) or s3://BUCKET/PREFIX"


def _store(text: str) -> str:
    if text.startswith("file://"):
        if not text[len("file://") :]:
            raise ValueError(f"{text!r} names no directory: {_STORE_HINT}")
        return text
    if text.startswith("s3://"):
        bucket = text[len("s3://") :].split("/", 1)[0]
        problem = bucket_problem(bucket)
        if problem:
            raise ValueError(f"{text!r}: {problem}")
        return text
    raise ValueError(f"{text!r} is not a backup store: {_STORE_HINT}")


Store = Annotated[str, AfterValidator(_store)]


class PostgresResource(ConfigModel):
    """A self-managed PostgreSQL database backed up with pg_dump (the embedded engine).

    Example::

        name: app
        dsn_env: APP_DATABASE_URL
        backups: {cron: "0 */6 * * *", keep: {daily: 7, weekly: 4}}
        store: file://.drkit/backups
        encryption: {key_file: .drkit/backup.key}
    """

    name: Name
    dsn_env: EnvName = Field(description="environment variable holding the connection string")
    backups: Cadence = Field(description="when to back up and how long to keep backups")
    store: Store = Field(
        description="file://PATH (relative to the config directory) or s3://BUCKET/PREFIX",
        json_schema_extra={"pattern": r"^(file://.+|s3://[a-z0-9][a-z0-9.-]+[a-z0-9](/.*)?)$"},
    )
    encryption: Encryption

    @property
    def store_scheme(self) -> Literal["file", "s3"]:
        return "file" if self.store.startswith("file://") else "s3"

    @property
    def store_location(self) -> str:
        """The part after the scheme: a path for file://, `bucket/prefix` for s3://."""
        return self.store.split("://", 1)[1]


def _checked(pattern: str, what: str) -> AfterValidator:
    regex = re.compile(pattern)

    def check(text: str) -> str:
        if not regex.match(text):
            raise ValueError(f"{text!r} is not {what}")
        return text

    return AfterValidator(check)


_SNS_RE = r"^arn:aws[a-z-]*:sns:[a-z0-9-]+:\d{12}:[A-Za-z0-9_.-]+$"
_ROLE_RE = r"^arn:aws[a-z-]*:iam::\d{12}:role/.+$"
_EMAIL_RE = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"
TopicArn = Annotated[
    str,
    _checked(_SNS_RE, "an SNS topic ARN, e.g. arn:aws:sns:us-east-1:123456789012:drkit"),
    WithJsonSchema({"type": "string", "pattern": _SNS_RE}),
]
RoleArn = Annotated[
    str,
    _checked(_ROLE_RE, "an IAM role ARN, e.g. arn:aws:iam::123456789012:role/drkit"),
    WithJsonSchema({"type": "string", "pattern": _ROLE_RE}),
]
Email = Annotated[
    str,
    _checked(_EMAIL_RE, "an email address"),
    WithJsonSchema({"type": "string", "pattern": _EMAIL_RE}),
]


class SlackNotify(ConfigModel):
    """A Slack incoming webhook; its URL is a secret, so it comes from the environment.

    Example::

        webhook_env: DRKIT_SLACK_WEBHOOK
    """

    webhook_env: EnvName


class SnsNotify(ConfigModel):
    """An SNS topic.

    Example::

        topic_arn: "arn:aws:sns:us-east-1:123456789012:drkit"
    """

    topic_arn: TopicArn


class PagerDutyNotify(ConfigModel):
    """A PagerDuty Events v2 integration.

    Example::

        routing_key_env: DRKIT_PAGERDUTY_KEY
    """

    routing_key_env: EnvName


class EmailNotify(ConfigModel):
    """Email through an SMTP server whose URL (with credentials) comes from the environment.

    Example::

        to: [oncall@example.com]
        smtp_url_env: DRKIT_SMTP_URL
    """

    to: tuple[Email, ...] = Field(min_length=1)
    smtp_url_env: EnvName


class Notify(ConfigModel):
    """Where to send failures and missed targets: exactly one channel per item.

    Example::

        slack: {webhook_env: DRKIT_SLACK_WEBHOOK}
    """

    slack: SlackNotify | None = None
    sns: SnsNotify | None = None
    pagerduty: PagerDutyNotify | None = None
    email: EmailNotify | None = None

    model_config = ConfigDict(
        json_schema_extra={"oneOf": [{"required": [k]} for k in ("slack", "sns", "pagerduty", "email")]},
    )

    @model_validator(mode="after")
    def _one_channel(self) -> Notify:
        problem = exactly_one(
            {"slack": self.slack, "sns": self.sns, "pagerduty": self.pagerduty, "email": self.email},
            "one channel per item",
        )
        if problem:
            raise ValueError(problem)
        return self

    @property
    def kind(self) -> str:
        return next(k for k in ("slack", "sns", "pagerduty", "email") if getattr(self, k) is not None)


class AwsConfig(ConfigModel):
    """The AWS account and regions a schedule works in. Credentials come from the standard
    AWS chain (profile, environment, instance role), never from this file.

    Example::

        region: us-east-1
        dr_region: us-west-2
        profile: prod-backup
        role_arn: arn:aws:iam::123456789012:role/drkit
    """

    region: Region = Field(description="where the resources live")
    dr_region: Region | None = Field(default=None, description="default destination of copies and replicas")
    profile: str | None = Field(default=None, description="AWS CLI profile to use")
    role_arn: RoleArn | None = Field(default=None, description="role assumed for every call")


def _with_region(mapping: Any, region: str) -> Any:
    """`mapping` with `region` filled in when it has none (raw YAML data, before validation)."""
    if isinstance(mapping, dict) and "region" not in mapping:
        return {**mapping, "region": region}
    return mapping


class Schedule(Document):
    """A schedule file: the resources of one environment and how they are protected.

    Example::

        environment: demo
        targets: {rto: 15m, rpo: 5m}
        postgres:
          - name: app
            dsn_env: DRKIT_DEMO_DSN
            backups: {cron: "0 */6 * * *", keep: {last: 10}}
            store: file://.drkit/backups
            encryption: {key_file: .drkit/backup.key}
    """

    environment: Text = Field(description="e.g. production; tags and reports carry it")
    targets: Targets
    timezone: TimeZone = Field(default="UTC", description="the zone cron expressions run in")
    aws: AwsConfig | None = None
    rds: tuple[RdsResource, ...] = ()
    s3: tuple[S3Resource, ...] = ()
    postgres: tuple[PostgresResource, ...] = ()
    notify: tuple[Notify, ...] = ()

    @model_validator(mode="before")
    @classmethod
    def _default_regions(cls, data: Any) -> Any:
        """copies.region and s3 region default to aws.dr_region (filled in before validation)."""
        if not isinstance(data, dict) or not isinstance(data.get("aws"), dict):
            return data
        dr_region = data["aws"].get("dr_region")
        if not isinstance(dr_region, str):
            return data
        data = dict(data)
        if isinstance(data.get("rds"), list):
            data["rds"] = [
                {**item, "copies": _with_region(item["copies"], dr_region)}
                if isinstance(item, dict) and "copies" in item
                else item
                for item in data["rds"]
            ]
        if isinstance(data.get("s3"), list):
            data["s3"] = [_with_region(item, dr_region) for item in data["s3"]]
        return data

    @model_validator(mode="after")
    def _cross_checks(self) -> Schedule:
        problems = ProblemList()
        for section in ("rds", "s3"):
            if getattr(self, section) and self.aws is None:
                problems.add((section,), f"an {section} section needs an aws section (region, dr_region)")
        for i, rds in enumerate(self.rds):
            if rds.copies is not None and rds.copies.region is None:
                problems.add(
                    ("rds", i, "copies", "region"), "no destination region: set it, or aws.dr_region"
                )
        for i, s3 in enumerate(self.s3):
            if s3.region is None:
                problems.add(("s3", i, "region"), "no replica region: set it, or aws.dr_region")
        seen: dict[str, str] = {}
        for section in ("rds", "s3", "postgres"):
            for i, item in enumerate(getattr(self, section)):
                where = f"{section}[{i}]"
                if item.name in seen:
                    problems.add(
                        (section, i, "name"), f"'{item.name}' is already the name of {seen[item.name]}"
                    )
                else:
                    seen[item.name] = where
        problems.raise_if_any()
        return self

    def resource(self, name: str) -> RdsResource | S3Resource | PostgresResource | None:
        """The resource called `name` in any section, or None."""
        items: list[RdsResource | S3Resource | PostgresResource] = [*self.rds, *self.s3, *self.postgres]
        return next((item for item in items if item.name == name), None)
