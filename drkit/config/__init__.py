"""drkit's configuration: YAML files -> typed, validated, frozen pydantic models.

    from drkit.config import load_config
    config = load_config(Path("."))            # raises ConfigError listing every problem
    drill = config.drill("local-demo")         # UsageError naming the ones that exist
    store = config.resolve_path(config.schedule("local").postgres[0].store)

The folder decides the kind (schedules/, drills/, runbooks/); a file's stem is its name.
Errors read `FILE:LINE: field.path: message`. `json_schema(kind)` is for editors.
"""

from drkit.config.loader import FOLDERS, KINDS, Config, json_schema, load_config
from drkit.config.models import (
    RDS_RECOVERY_POINTS,
    REPORT_FORMATS,
    AwsConfig,
    Cadence,
    Check,
    ConfigModel,
    CopyPolicy,
    Document,
    Drill,
    DrillSource,
    EmailNotify,
    Encryption,
    Isolation,
    KeepConfig,
    Notify,
    PagerDutyNotify,
    Param,
    PostgresResource,
    RdsResource,
    ReportConfig,
    RestoreConfig,
    Runbook,
    S3Resource,
    S3Verify,
    Schedule,
    SlackNotify,
    SnsNotify,
    SourceRef,
    Step,
    Targets,
    VerifyConfig,
)

__all__ = [
    "FOLDERS",
    "KINDS",
    "RDS_RECOVERY_POINTS",
    "REPORT_FORMATS",
    "AwsConfig",
    "Cadence",
    "Check",
    "Config",
    "ConfigModel",
    "CopyPolicy",
    "Document",
    "Drill",
    "DrillSource",
    "EmailNotify",
    "Encryption",
    "Isolation",
    "KeepConfig",
    "Notify",
    "PagerDutyNotify",
    "Param",
    "PostgresResource",
    "RdsResource",
    "ReportConfig",
    "RestoreConfig",
    "Runbook",
    "S3Resource",
    "S3Verify",
    "Schedule",
    "SlackNotify",
    "SnsNotify",
    "SourceRef",
    "Step",
    "Targets",
    "VerifyConfig",
    "json_schema",
    "load_config",
]
