"""Finding PostgreSQL's programs: the real ones on this machine, and the ways it goes wrong.

The fake tools below are small shell scripts standing in for the two broken installs users meet:
a Debian `pg_wrapper` link whose binary is not installed (exits 1), and an old PostgreSQL.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import psycopg
import pytest

from drkit.errors import ToolMissing
from drkit.pg.tools import ALL_TOOLS, PgTools, check_dump_compatible, find_tools, parse_major


def _fake_tool(directory: Path, name: str, script: str) -> None:
    path = directory / name
    path.write_text("#!/bin/sh\n" + script + "\n")
    path.chmod(0o755)


def _independent_major(executable: Path) -> int:
    out = subprocess.run([str(executable), "--version"], capture_output=True, text=True, check=True).stdout
    match = re.search(r"\(PostgreSQL\) (\d+)", out)
    assert match, out
    return int(match.group(1))


def test_finds_the_real_tools_and_their_version(pg_tools: PgTools) -> None:
    for name in ("pg_dump", "pg_restore", "psql", "initdb", "postgres"):
        path = pg_tools.path(name)
        assert path.parent == pg_tools.bindir
        assert _independent_major(path) == pg_tools.version


def test_every_tool_drkit_uses_is_found_when_required() -> None:
    tools = find_tools(require=ALL_TOOLS)
    for name in ALL_TOOLS:
        assert tools.path(name).is_file()


def test_bogus_bindir_names_tool_place_and_remedy(tmp_path: Path) -> None:
    bogus = tmp_path / "no-such-bindir"
    with pytest.raises(ToolMissing) as err:
        find_tools(bindir=bogus)
    message = str(err.value)
    assert "\n" not in message
    assert "pg_dump" in message
    assert str(bogus) in message
    assert "install" in message and "DRKIT_PG_BINDIR" in message


def test_env_bindir_is_the_only_place_looked_at(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DRKIT_PG_BINDIR", str(tmp_path))
    with pytest.raises(ToolMissing, match=re.escape(str(tmp_path))):
        find_tools()


def test_env_bindir_pointing_at_real_tools(pg_tools: PgTools, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DRKIT_PG_BINDIR", str(pg_tools.bindir))
    assert find_tools() == pg_tools


def test_wrapper_without_binary_is_not_a_tool(tmp_path: Path) -> None:
    # What Debian's /usr/bin/initdb -> pg_wrapper does when postgresql-NN is not installed.
    _fake_tool(tmp_path, "initdb", 'echo "Error: pg_wrapper: initdb was not found" >&2; exit 1')
    tools = PgTools(bindir=tmp_path, version=15)
    with pytest.raises(ToolMissing, match="initdb not found"):
        tools.path("initdb")
    with pytest.raises(ToolMissing, match="initdb"):
        find_tools(bindir=tmp_path, require=("initdb",))


def test_too_old_tools_are_refused_with_the_version_needed(tmp_path: Path) -> None:
    for name in ("pg_dump", "pg_restore", "psql"):
        _fake_tool(tmp_path, name, f'echo "{name} (PostgreSQL) 9.6.24"')
    assert find_tools(bindir=tmp_path).version == 9
    with pytest.raises(ToolMissing) as err:
        find_tools(min_major=15, bindir=tmp_path)
    assert "15 or newer" in str(err.value)
    assert f"9 in {tmp_path}" in str(err.value)


def test_min_major_above_anything_installed(pg_tools: PgTools) -> None:
    with pytest.raises(ToolMissing, match=rf"{pg_tools.version + 1} or newer.*found {pg_tools.version} in"):
        find_tools(min_major=pg_tools.version + 1)


def test_pg_dump_must_not_be_older_than_the_server(pg_tools: PgTools) -> None:
    check_dump_compatible(pg_tools, pg_tools.version)
    check_dump_compatible(pg_tools, pg_tools.version - 1)
    with pytest.raises(ToolMissing) as err:
        check_dump_compatible(pg_tools, pg_tools.version + 1)
    message = str(err.value)
    assert f"pg_dump {pg_tools.version}" in message
    assert f"PostgreSQL {pg_tools.version + 1} server" in message


def test_local_tools_can_dump_the_test_server(pg_tools: PgTools, pg_dsn: str) -> None:
    with psycopg.connect(pg_dsn) as conn:
        server_major = conn.info.server_version // 10000
    if server_major > pg_tools.version:
        with pytest.raises(ToolMissing):
            check_dump_compatible(pg_tools, server_major)
    else:
        check_dump_compatible(pg_tools, server_major)


@pytest.mark.parametrize(
    ("output", "major"),
    [
        ("pg_dump (PostgreSQL) 15.20 (Debian 15.20-0+deb12u1)", 15),
        ("postgres (PostgreSQL) 17beta1", 17),
        ("psql (PostgreSQL) 9.6.24", 9),
        ("PostgreSQL 16.4", 16),
        ("Error: pg_wrapper: initdb was not found", None),
    ],
)
def test_parse_major(output: str, major: int | None) -> None:
    assert parse_major(output) == major
