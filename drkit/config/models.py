"""Every config model in one place (they live in schedule.py, drill.py and runbook.py).

All are pydantic v2 models, frozen, with unknown keys rejected; durations are timedelta and
times aware datetime. Each documents itself with a YAML example of its own content.
"""

from drkit.config.drill import (
    RDS_RECOVERY_POINTS,
    REPORT_FORMATS,
    Check,
    Drill,
    DrillSource,
    Isolation,
    ReportConfig,
    RestoreConfig,
    SourceRef,
    VerifyConfig,
)
from drkit.config.fields import ConfigModel, Document
from drkit.config.runbook import Param, Runbook, Step
from drkit.config.schedule import (
    AwsConfig,
    Cadence,
    CopyPolicy,
    EmailNotify,
    Encryption,
    KeepConfig,
    Notify,
    PagerDutyNotify,
    PostgresResource,
    RdsResource,
    S3Resource,
    S3Verify,
    Schedule,
    SlackNotify,
    SnsNotify,
    Targets,
)

__all__ = [
    "RDS_RECOVERY_POINTS",
    "REPORT_FORMATS",
    "AwsConfig",
    "Cadence",
    "Check",
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
]
