"""The catalog against a real PostgreSQL: the whole SQLite contract again, plus the migration lock.

Uses the shared `fresh_db` fixture (tests/conftest.py: a new empty database, dropped after),
which skips without a server, or fails when CI=true.
"""

from __future__ import annotations

import importlib.util
import threading
import time
from datetime import timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa
from psycopg.conninfo import conninfo_to_dict
from sqlalchemy.engine import URL

from drkit.catalog import Catalog, migrate
from drkit.catalog.migrate import MIGRATION_LOCK_KEY, VERSION_TABLE, head_revision
from drkit.errors import DrkitError

pytestmark = pytest.mark.pg


def _load_contract() -> ModuleType:
    # The SQLite suite lives in tests/unit; load it by path so this works whatever pytest's
    # import mode and whichever directories were collected.
    path = Path(__file__).resolve().parents[1] / "unit" / "test_catalog.py"
    spec = importlib.util.spec_from_file_location("drkit_catalog_contract", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


contract = _load_contract()
CatalogContract: Any = contract.CatalogContract


def as_url(dsn: str) -> str:
    """A libpq DSN (key=value or URI) as the postgresql:// URL a user would give --catalog."""
    params = {k: str(v) for k, v in conninfo_to_dict(dsn).items()}
    port = params.pop("port", None)
    url = URL.create(
        "postgresql",
        username=params.pop("user", None),
        password=params.pop("password", None),
        host=params.pop("host", None),
        port=int(port) if port else None,
        database=params.pop("dbname", None),
        query=params,
    )
    return url.render_as_string(hide_password=False)


@pytest.fixture
def pg_url(fresh_db: str) -> str:
    return as_url(fresh_db)


class TestCatalogPostgres(CatalogContract):
    @pytest.fixture
    def url(self, pg_url: str) -> str:
        return pg_url


def test_times_come_back_utc_whatever_the_session_time_zone(fresh_db: str) -> None:
    # A server or role configured for local time must not leak that zone into drkit's records.
    dsn = psycopg.conninfo.make_conninfo(fresh_db, options="-c timezone=Asia/Kolkata")
    with Catalog.open(as_url(dsn)) as cat:
        cat.add_recovery_point(contract.rp("app-1", contract.T0))
        [got] = cat.recovery_points()
    assert got.created_at == contract.T0
    assert got.created_at.utcoffset() == timedelta(0)


def test_opening_waits_for_the_migration_lock(pg_url: str, fresh_db: str) -> None:
    # Another drkit is upgrading (it holds the advisory lock): opening must wait, not race it.
    holder = psycopg.connect(fresh_db, autocommit=True)
    holder.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK_KEY,))
    outcome: list[object] = []

    def open_catalog() -> None:
        try:
            Catalog.open(pg_url).close()
            outcome.append("opened")
        except Exception as exc:  # reported by the assertions below
            outcome.append(exc)

    opener = threading.Thread(target=open_catalog, daemon=True)
    opener.start()
    try:
        time.sleep(1.5)
        assert opener.is_alive(), f"open did not wait for the lock: {outcome}"
        tables = holder.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'"
        ).fetchone()
        assert tables == (0,)
    finally:
        holder.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK_KEY,))
        holder.close()
    opener.join(timeout=60)
    assert outcome == ["opened"]


def test_a_stuck_upgrade_elsewhere_gives_a_clear_error(
    pg_url: str, fresh_db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(migrate, "MIGRATION_LOCK_TIMEOUT", "500ms")
    with psycopg.connect(fresh_db, autocommit=True) as holder:
        holder.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK_KEY,))
        with pytest.raises(DrkitError, match=r"is being upgraded by another drkit \(waited 500ms\)") as err:
            Catalog.open(pg_url)
    assert "\n" not in str(err.value)


def test_two_processes_opening_a_fresh_catalog_both_succeed(pg_url: str, tmp_path: Path) -> None:
    results = contract.open_concurrently(pg_url, tmp_path, processes=2)

    assert results == [(0, "opened"), (0, "opened")]
    engine = sa.create_engine(pg_url.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        with engine.connect() as conn:
            stamped = conn.execute(sa.text(f"SELECT version_num FROM {VERSION_TABLE}")).scalars().all()
    finally:
        engine.dispose()
    assert stamped == [head_revision()]
