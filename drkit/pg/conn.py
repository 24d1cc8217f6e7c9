"""Connecting to PostgreSQL, and passing connection strings to libpq tools safely."""

from __future__ import annotations

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from drkit.errors import SourceUnreachable, UsageError


def connect(dsn: str, *, what: str, autocommit: bool = True, timeout_s: int = 10) -> psycopg.Connection:
    """A psycopg connection with a bounded connect time and one clear line when it fails."""
    try:
        return psycopg.connect(dsn, autocommit=autocommit, connect_timeout=timeout_s, application_name="drkit")
    except psycopg.OperationalError as exc:
        text = str(exc).strip()
        reason = text.splitlines()[-1] if text else type(exc).__name__
        raise SourceUnreachable(f"cannot connect to {what} ({mask_dsn(dsn)}): {reason}") from exc
    except psycopg.ProgrammingError as exc:
        raise UsageError(f"{what}: bad connection string {mask_dsn(dsn)}: {exc}") from exc


def split_password(dsn: str) -> tuple[str, dict[str, str]]:
    """Return (conninfo without password, env) so a password never appears in `ps` output."""
    params = conninfo_to_dict(dsn)
    env: dict[str, str] = {}
    password = params.pop("password", None)
    if password is not None:
        env["PGPASSWORD"] = str(password)
    return make_conninfo(**{k: str(v) for k, v in params.items()}), env


def mask_dsn(dsn: str) -> str:
    """The DSN as it may be printed: password replaced by ***."""
    try:
        params = conninfo_to_dict(dsn)
    except psycopg.ProgrammingError:
        return "<unparseable DSN>"
    if "password" in params:
        params["password"] = "***"
    return make_conninfo(**{k: str(v) for k, v in params.items()})


def database_name(dsn: str) -> str:
    params = conninfo_to_dict(dsn)
    return str(params.get("dbname") or params.get("user") or "postgres")
