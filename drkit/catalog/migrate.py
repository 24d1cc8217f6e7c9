"""Bring a catalog's schema to this drkit's `head`, safely, every time it is opened.

- The migrations ship inside the package (drkit/migrations), so an installed drkit
  finds them; alembic is driven programmatically and users never see an alembic.ini.
- The upgrade runs in one transaction (PostgreSQL and, thanks to connect.py, SQLite
  have transactional DDL): it applies completely or not at all, so history is never lost.
- Two processes opening a fresh catalog at once must not race to create the tables:
  on PostgreSQL the transaction first takes an advisory lock; on SQLite it begins with
  BEGIN IMMEDIATE, which takes the database's write lock.
- A catalog stamped with a revision this drkit does not know was written by a newer
  drkit: it is refused before anything is changed.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Connection, inspect, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError

from drkit.catalog.connect import WRITE_OPTION, mask
from drkit.errors import DrkitError

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"
# drkit's own version table, so a catalog can share a database with an application that
# uses alembic itself without either one mistaking the other's revisions for its own.
VERSION_TABLE = "drkit_alembic_version"
# pg_advisory_xact_lock key for "drkit is migrating the catalog": the ASCII bytes of "drkitcat".
# (The scheduler's leader lock uses a different key.)
MIGRATION_LOCK_KEY = int.from_bytes(b"drkitcat", "big")
# How long to wait for another process's upgrade before giving up with a clear message.
MIGRATION_LOCK_TIMEOUT = "120s"


def alembic_config(connection: Connection | None = None) -> Config:
    """An in-memory alembic Config pointing at the packaged migrations."""
    from alembic.config import Config

    cfg = Config()
    # configparser interpolation: a literal % in the install path must be doubled.
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR).replace("%", "%%"))
    cfg.attributes["version_table"] = VERSION_TABLE
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def head_revision() -> str:
    """The newest revision this drkit knows."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:
        raise DrkitError(f"drkit's catalog migrations are missing from {MIGRATIONS_DIR}; reinstall drkit")
    return head


def current_revisions(connection: Connection) -> tuple[str, ...]:
    """The revisions a catalog is stamped with (empty for a new database)."""
    from alembic.runtime.migration import MigrationContext

    ctx = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE})
    return tuple(ctx.get_current_heads())


def newest_packaged_revision() -> str | None:
    """The highest-numbered migration file's revision (files are named NNNN_*.py with revision "NNNN")."""
    numbers = [p.name.split("_", 1)[0] for p in (MIGRATIONS_DIR / "versions").glob("[0-9][0-9][0-9][0-9]_*.py")]
    return max(numbers) if numbers else None


def _already_at_head(engine: Engine) -> bool:
    """A cheap read that lets every command after the first skip alembic entirely (its import
    alone costs a noticeable part of a second on each CLI call)."""
    head = newest_packaged_revision()
    with engine.connect() as conn:
        if head is None or not inspect(conn).has_table(VERSION_TABLE):
            return False
        rows = conn.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalars().all()
    return list(rows) == [head]


def upgrade(engine: Engine) -> None:
    """Upgrade the catalog behind `engine` to head, or refuse a newer one; see the module docstring."""
    if _already_at_head(engine):
        return
    from alembic import command

    with engine.connect() as conn:
        conn.execution_options(**{WRITE_OPTION: True})
        with conn.begin():
            if conn.dialect.name == "postgresql":
                # SET LOCAL and the xact lock both end with this transaction, whatever happens.
                conn.execute(text(f"SET LOCAL lock_timeout = '{MIGRATION_LOCK_TIMEOUT}'"))
                try:
                    conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
                except OperationalError as exc:
                    # 55P03 lock_not_available: lock_timeout expired while another drkit upgrades.
                    if getattr(exc.orig, "sqlstate", None) != "55P03":
                        raise
                    raise DrkitError(
                        f"catalog at {mask(engine.url)} is being upgraded by another drkit "
                        f"(waited {MIGRATION_LOCK_TIMEOUT}); try again, or find the stuck process"
                    ) from exc
            cfg = alembic_config(conn)
            _refuse_unknown(cfg, conn, engine)
            command.upgrade(cfg, "head")


def _refuse_unknown(cfg: Config, conn: Connection, engine: Engine) -> None:
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(cfg)
    known = {rev.revision for rev in script.walk_revisions()}
    unknown = [rev for rev in current_revisions(conn) if rev not in known]
    if unknown:
        raise DrkitError(
            f"catalog at {mask(engine.url)} was written by a newer drkit (revision {', '.join(unknown)}); "
            "upgrade drkit"
        )


def new_revision(message: str, url: str) -> Path:
    """Autogenerate the next numbered revision (0002, 0003, ...) from models.py (developers only).

    `url` must be a catalog at the current head (open it with drkit first); the diff
    between it and the models becomes the new migration file, which you then review.
    """
    from alembic import command

    from drkit.catalog.connect import create_catalog_engine, normalize_url

    engine = create_catalog_engine(normalize_url(url))
    try:
        with engine.connect() as conn, conn.begin():
            cfg = alembic_config(conn)
            rev_id = f"{int(head_revision()) + 1:04d}"
            script = command.revision(cfg, message=message, autogenerate=True, rev_id=rev_id)
    finally:
        engine.dispose()
    if script is None or isinstance(script, list):
        raise DrkitError("alembic did not produce exactly one revision")
    return Path(script.path)
