"""Find PostgreSQL's programs (pg_dump, pg_restore, initdb, postgres, ...) and check their versions.

drkit shells out to PostgreSQL's own tools rather than reimplementing them, so the first thing
that can go wrong on a user's machine is that a tool is missing, is a wrapper without a binary
behind it (Debian puts `pg_wrapper` links in /usr/bin even when only the client package is
installed), or is too old for the server being dumped. Every such case becomes one `ToolMissing`
line that names the tool, where drkit looked, and what to install.

Usage::

    tools = find_tools(min_major=15)            # client tools: pg_dump, pg_restore, psql
    subprocess.run([str(tools.path("pg_dump")), "--version"])
    check_dump_compatible(tools, server_major=16)   # raises: pg_dump 15 cannot dump a 16 server
"""

from __future__ import annotations

import functools
import glob
import os
import re
import shutil
import subprocess
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from pathlib import Path

from drkit.errors import ToolMissing

#: Tools that take part in a backup or a restore into an existing server.
CLIENT_TOOLS: tuple[str, ...] = ("pg_dump", "pg_restore", "psql")
#: Tools an ephemeral cluster (drkit.pg.cluster) needs on top of the clients.
SERVER_TOOLS: tuple[str, ...] = ("initdb", "postgres")
#: Every tool drkit may run.
ALL_TOOLS: tuple[str, ...] = (*CLIENT_TOOLS, *SERVER_TOOLS, "pg_ctl", "pgbench", "pg_isready")

BINDIR_ENV = "DRKIT_PG_BINDIR"
_VERSION_TIMEOUT_S = 10.0
# "pg_dump (PostgreSQL) 15.20 (Debian 15.20-0+deb12u1)", "postgres (PostgreSQL) 17beta1",
# "PostgreSQL 9.6.24" (pg_config). For 9.x the "major" drkit compares is 9.
_VERSION_RE = re.compile(r"PostgreSQL\)?\s+(\d+)")


def parse_major(version_output: str) -> int | None:
    """The major version in a PostgreSQL tool's `--version` output, or None if it has none."""
    match = _VERSION_RE.search(version_output)
    return int(match.group(1)) if match else None


@functools.lru_cache(maxsize=256)
def probe_major(executable: Path) -> int | None:
    """Run `<executable> --version` and return its major version; None if it does not work.

    A Debian wrapper script whose binary is not installed exits non-zero ("pg_wrapper: initdb
    was not found"), so running the tool is the only reliable existence check. Cached because a
    tool's version does not change while drkit runs.
    """
    if not (executable.is_file() and os.access(executable, os.X_OK)):
        return None
    try:
        result = subprocess.run(
            [str(executable), "--version"],
            capture_output=True,
            text=True,
            timeout=_VERSION_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if result.returncode != 0:
        return None
    return parse_major(result.stdout)


def install_hint(major: int | None, *, server: bool) -> str:
    """A clause telling the user how to get PostgreSQL `major`'s client (or server) programs here."""
    suffix = f"-{major}" if major else ""
    if shutil.which("apt-get"):
        command = f"apt-get install {'postgresql' if server else 'postgresql-client'}{suffix}"
    elif shutil.which("dnf") or shutil.which("yum"):
        command = f"dnf install postgresql{major or ''}{'-server' if server else ''}"
    elif shutil.which("brew"):
        command = f"brew install postgresql{'@' + str(major) if major else ''}"
    else:
        version = f"PostgreSQL {major}" if major else "PostgreSQL"
        return f"install the {version} {'server' if server else 'client'} programs from your package manager"
    return f"install it with `{command}`"


@dataclass(frozen=True)
class PgTools:
    """One directory of PostgreSQL programs and the major version they belong to."""

    bindir: Path
    version: int  # server major version (e.g. 15)

    def path(self, name: str) -> Path:
        """The path of tool `name` in this bindir; ToolMissing if it is absent or does not run."""
        exe = self.bindir / name
        major = probe_major(exe)
        if major is None:
            raise ToolMissing(
                f"{name} not found (or does not run) in {self.bindir}; "
                f"{install_hint(self.version, server=name in SERVER_TOOLS)} "
                f"or set {BINDIR_ENV} to a directory that has it"
            )
        return exe


def _pg_config_bindir() -> list[Path]:
    pg_config = shutil.which("pg_config")
    if not pg_config:
        return []
    try:
        out = subprocess.run(
            [pg_config, "--bindir"], capture_output=True, text=True, timeout=_VERSION_TIMEOUT_S, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return []
    line = out.stdout.strip()
    return [Path(line)] if out.returncode == 0 and line else []


def _version_sorted(pattern: str) -> list[Path]:
    """Directories matching a glob, the highest embedded version number first."""

    def key(path: str) -> tuple[int, ...]:
        return tuple(int(n) for n in re.findall(r"\d+", path)) or (0,)

    return [Path(p) for p in sorted(glob.glob(pattern), key=key, reverse=True)]


def candidate_bindirs() -> list[Path]:
    """Where drkit looks for PostgreSQL programs when no bindir is given, in order, without repeats."""
    candidates: list[Path] = [
        *_pg_config_bindir(),
        *_version_sorted("/usr/lib/postgresql/*/bin"),
        *_version_sorted("/usr/pgsql-*/bin"),
        *_version_sorted("/opt/homebrew/opt/postgresql*/bin"),
        *_version_sorted("/usr/local/opt/postgresql*/bin"),
        *(Path(p) for p in os.environ.get("PATH", "").split(os.pathsep) if p),
    ]
    seen: set[str] = set()
    unique: list[Path] = []
    for path in candidates:
        real = os.path.realpath(path)  # /bin is often a link to /usr/bin: look once
        if real not in seen:
            seen.add(real)
            unique.append(path)
    return unique


def _bindir_version(bindir: Path, require: Iterable[str]) -> tuple[int | None, str | None]:
    """(major, None) if every required tool runs in bindir at one major version; else (None, why)."""
    majors: set[int] = set()
    for name in require:
        major = probe_major(bindir / name)
        if major is None:
            return None, name
        majors.add(major)
    if len(majors) > 1:
        return None, "mixed versions " + "/".join(str(m) for m in sorted(majors))
    # The server's version names the bindir; fall back to any required tool's.
    server = probe_major(bindir / "postgres")
    return (server if server is not None else (majors.pop() if majors else None)), None


def find_tools(
    min_major: int | None = None,
    *,
    bindir: Path | None = None,
    require: Collection[str] = CLIENT_TOOLS,
) -> PgTools:
    """Find a directory whose `require`d tools all run and are at least `min_major`.

    Search order: `bindir`, then $DRKIT_PG_BINDIR (either one, when given, is the only place
    looked at: the user asked for it), then `pg_config --bindir`, /usr/lib/postgresql/<highest>/bin,
    /usr/pgsql-*/bin, /opt/homebrew/opt/postgresql*/bin, and PATH. Pass
    `require=(*CLIENT_TOOLS, *SERVER_TOOLS)` when an ephemeral cluster is needed.
    """
    explicit = bindir or (Path(os.environ[BINDIR_ENV]) if os.environ.get(BINDIR_ENV) else None)
    dirs = [explicit] if explicit else candidate_bindirs()
    required = tuple(require) or ("pg_dump",)
    server = any(name in SERVER_TOOLS for name in required)
    too_old: list[str] = []
    first_missing: str | None = None
    for directory in dirs:
        major, missing = _bindir_version(directory, required)
        if major is None:
            first_missing = first_missing or missing
            continue
        if min_major is not None and major < min_major:
            too_old.append(f"{major} in {directory}")
            continue
        return PgTools(bindir=directory, version=major)

    if explicit is not None:
        where = f"{explicit} (from {'bindir' if bindir else BINDIR_ENV})"
    else:
        shown = ", ".join(str(d) for d in dirs[:6]) + (", ..." if len(dirs) > 6 else "")
        where = f"pg_config --bindir, /usr/lib/postgresql/*/bin, /usr/pgsql-*/bin, Homebrew, PATH ({shown})"
    tool_names = "/".join(required)
    hint = install_hint(min_major, server=server)
    if too_old:
        raise ToolMissing(
            f"{tool_names} must be PostgreSQL {min_major} or newer but only found "
            f"{'; '.join(too_old)}; {hint} or set {BINDIR_ENV}"
        )
    what = first_missing if first_missing and not first_missing.startswith("mixed") else tool_names
    raise ToolMissing(f"{what} not found (or does not run) in {where}; {hint} or set {BINDIR_ENV}")


def check_dump_compatible(tools: PgTools, server_major: int) -> None:
    """Raise ToolMissing unless these tools' pg_dump can dump a server of `server_major`.

    pg_dump refuses (or silently misses features of) servers newer than itself, so it must be at
    least the source server's major version; newer is fine.
    """
    dump = tools.path("pg_dump")
    dump_major = probe_major(dump) or tools.version
    if dump_major < server_major:
        raise ToolMissing(
            f"pg_dump {dump_major} ({dump}) cannot dump a PostgreSQL {server_major} server: pg_dump "
            f"must be at least the server's major version; "
            f"{install_hint(server_major, server=False)} or set {BINDIR_ENV}"
        )
