"""drkit's catalog: the ledger of what happened (see store.py for the API, records.py for values)."""

from drkit.catalog.connect import default_catalog_url
from drkit.catalog.records import (
    AuditEventRecord,
    DrillRunRecord,
    JobRunRecord,
    RecoveryPointRecord,
)
from drkit.catalog.store import Catalog

# Registers the scheduler's alert_incidents table (migration 0002) on the models' metadata, so
# alembic and the schema test see it wherever the catalog is imported.
from drkit.catalog import alerts as _alerts  # noqa: F401  isort: skip

__all__ = [
    "AuditEventRecord",
    "Catalog",
    "DrillRunRecord",
    "JobRunRecord",
    "RecoveryPointRecord",
    "default_catalog_url",
]
