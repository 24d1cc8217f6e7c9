"""drkit's catalog: the ledger of what happened (see store.py for the API, records.py for values)."""

from drkit.catalog.connect import default_catalog_url
from drkit.catalog.records import (
    AuditEventRecord,
    DrillRunRecord,
    JobRunRecord,
    RecoveryPointRecord,
)
from drkit.catalog.store import Catalog

__all__ = [
    "AuditEventRecord",
    "Catalog",
    "DrillRunRecord",
    "JobRunRecord",
    "RecoveryPointRecord",
    "default_catalog_url",
]
