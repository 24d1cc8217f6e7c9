"""Alembic environment for drkit's catalog.

drkit runs this programmatically (drkit/catalog/migrate.py) and hands over an open
connection that is already inside a transaction holding the migration lock. To write a
new revision after changing drkit/catalog/models.py, autogenerate it against a catalog
at the current head and then read and edit what it wrote:

    python -c "from drkit.catalog.migrate import new_revision; new_revision('add x', 'sqlite:////tmp/dev.db')"

Without a handed-over connection (alembic's own CLI), the URL comes from `-x url=...` or
DRKIT_CATALOG. Logging is left to drkit: this file never calls fileConfig().
"""

from __future__ import annotations

import os
from typing import Any

from alembic import context
from sqlalchemy import create_engine

from drkit.catalog.connect import normalize_url
from drkit.catalog.models import Base

VERSION_TABLE = "drkit_alembic_version"

config = context.config
target_metadata = Base.metadata


# Tables other software manages in the same database: autogenerate must not propose dropping them.
FOREIGN_TABLES = frozenset({"drkit_apscheduler_jobs"})


def _include_object(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
    return not (type_ == "table" and name in FOREIGN_TABLES)


def _configure_kwargs() -> dict[str, Any]:
    return {
        "include_object": _include_object,
        "target_metadata": target_metadata,
        "version_table": config.attributes.get("version_table", VERSION_TABLE),
        # SQLite cannot ALTER most things: batch mode rebuilds the table instead.
        "render_as_batch": True,
        "compare_type": True,
    }


def _url() -> str:
    url = context.get_x_argument(as_dictionary=True).get("url") or os.environ.get("DRKIT_CATALOG")
    if not url:
        raise SystemExit("set DRKIT_CATALOG or pass -x url=... to run drkit's migrations by hand")
    return normalize_url(url).render_as_string(hide_password=False)


def run_migrations_offline() -> None:
    context.configure(url=_url(), literal_binds=True, **_configure_kwargs())
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        # drkit's own path: the caller owns the connection and its transaction.
        context.configure(connection=connection, **_configure_kwargs())
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = create_engine(_url())
    with engine.connect() as conn:
        context.configure(connection=conn, **_configure_kwargs())
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
