"""Shared fixtures: a real PostgreSQL server, a fresh database on it, and PostgreSQL's tools.

`pg_dsn` finds a server in this order (TESTING.md): $DRKIT_TEST_PG_DSN; the local server on
127.0.0.1:5432 (user postgres, trust); a throwaway testcontainers PostgreSQL when a Docker engine
answers. Without any, tests that need one are skipped with the reason, except in CI (CI=true),
where a missing server fails the run: a CI that silently skips the database tests proves nothing.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import make_conninfo

from drkit.errors import ToolMissing
from drkit.pg.tools import CLIENT_TOOLS, SERVER_TOOLS, PgTools, find_tools

LOCAL_DSN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres connect_timeout=3"
_PG_TESTS_DIR = Path(__file__).parent / "pg"


def _unavailable(reason: str) -> NoReturn:
    """Skip locally, fail in CI: a missing PostgreSQL must not pass CI."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true and {reason}", pytrace=False)
    pytest.skip(reason)


def _can_connect(dsn: str) -> str | None:
    """None if `dsn` answers `SELECT 1`, else the reason it does not."""
    try:
        with psycopg.connect(dsn, connect_timeout=3, autocommit=True) as conn:
            conn.execute("SELECT 1")
        return None
    except psycopg.Error as exc:
        return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def _docker_answers() -> bool:
    try:
        import docker  # type: ignore[import-untyped]  # comes with testcontainers

        docker.from_env(timeout=3).ping()
        return True
    except Exception:
        return False


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Everything under tests/pg needs a real PostgreSQL: mark it `pg` (so `-m "not pg"` works)."""
    for item in items:
        if _PG_TESTS_DIR in item.path.parents:
            item.add_marker(pytest.mark.pg)


@pytest.fixture(scope="session")
def pg_dsn() -> Iterator[str]:
    """A libpq DSN of a real PostgreSQL server where the user may CREATE DATABASE."""
    explicit = os.environ.get("DRKIT_TEST_PG_DSN")
    if explicit:
        problem = _can_connect(explicit)
        if problem:
            _unavailable(f"DRKIT_TEST_PG_DSN is set but does not answer: {problem}")
        yield explicit
        return

    local_problem = _can_connect(LOCAL_DSN)
    if local_problem is None:
        yield LOCAL_DSN
        return

    if _docker_answers():
        from testcontainers.postgres import PostgresContainer

        with PostgresContainer("postgres:16-alpine") as container:
            yield make_conninfo(
                host=container.get_container_host_ip(),
                port=str(container.get_exposed_port(5432)),
                user=container.username,
                password=container.password,
                dbname=container.dbname,
                connect_timeout="10",
            )
        return

    _unavailable(
        "no PostgreSQL for tests: DRKIT_TEST_PG_DSN is unset, 127.0.0.1:5432 does not answer "
        f"({local_problem}), and no Docker engine for testcontainers; run scripts/ensure-postgres.sh"
    )


@pytest.fixture
def fresh_db(pg_dsn: str) -> Iterator[str]:
    """The DSN of a new, empty database `drkit_t_<hex>`; dropped (WITH (FORCE)) afterwards."""
    name = f"drkit_t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_dsn, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield make_conninfo(pg_dsn, dbname=name)
    finally:
        with psycopg.connect(pg_dsn, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture(scope="session")
def pg_tools() -> PgTools:
    """PostgreSQL's programs on this machine: clients and the server programs that ephemeral
    clusters need, from one bindir (so pg_dump, pg_restore and postgres agree on the version)."""
    try:
        return find_tools(require=(*CLIENT_TOOLS, *SERVER_TOOLS))
    except ToolMissing as exc:
        _unavailable(str(exc))
