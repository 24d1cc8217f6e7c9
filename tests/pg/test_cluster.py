"""Ephemeral clusters with real initdb/postgres: isolated, tuned, and always gone afterwards."""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from drkit.errors import DrkitError, UsageError
from drkit.pg.cluster import (
    MARKER_NAME,
    EphemeralCluster,
    NoUnprivilegedUser,
    find_stale_clusters,
    read_marker,
    remove_stale_cluster,
)
from drkit.pg.tools import PgTools

REPO = Path(__file__).resolve().parents[2]


def _processes_using(data_dir: Path) -> list[int]:
    """Live processes whose command line mentions `data_dir` (read from /proc, independent of drkit)."""
    pids = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            args = cmdline.read_bytes().decode(errors="replace").split("\0")
        except OSError:
            continue
        if str(data_dir) in args:
            pids.append(int(cmdline.parent.name))
    return pids


def _processes_under(parent: Path) -> list[int]:
    pids = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        with contextlib.suppress(OSError):
            args = cmdline.read_bytes().decode(errors="replace").split("\0")
            if any(arg.startswith(f"{parent}/") for arg in args):
                pids.append(int(cmdline.parent.name))
    return pids


def _uid_of(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Uid:"):
            return int(line.split()[1])
    raise AssertionError(f"no Uid line for pid {pid}")


def _dead_pid() -> int:
    child = subprocess.Popen(["true"])
    child.wait()  # reaped: the pid now names no process
    return child.pid


def _shared_parent() -> Iterator[Path]:
    # pytest's tmp_path lives under a 0700 directory of root that the `postgres` user cannot
    # enter; clusters need a parent it can reach, like the system temp dir itself.
    parent = Path(tempfile.mkdtemp(prefix="drkit-test-"))
    parent.chmod(0o755)
    yield parent
    # Safety net for a failed test: no server may outlive it (the tests check this themselves).
    for pid in _processes_under(parent):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    shutil.rmtree(parent, ignore_errors=True)


parent_dir = pytest.fixture(_shared_parent)
module_parent_dir = pytest.fixture(scope="module")(_shared_parent)


@pytest.fixture(scope="module")
def cluster(pg_tools: PgTools, module_parent_dir: Path) -> Iterator[EphemeralCluster]:
    with EphemeralCluster(pg_tools, parent_dir=module_parent_dir, settings={"shared_buffers": "64MB"}) as c:
        yield c


@pytest.mark.skipif(os.geteuid() != 0, reason="only meaningful when drkit runs as root")
def test_as_root_the_cluster_runs_as_the_unprivileged_user(cluster: EphemeralCluster) -> None:
    expected = pwd.getpwnam(cluster.run_as or "postgres")
    assert expected.pw_uid != 0
    pid = cluster.postmaster_pid
    assert pid is not None
    assert _uid_of(pid) == expected.pw_uid
    assert cluster.data_dir.stat().st_uid == expected.pw_uid
    with psycopg.connect(cluster.dsn()) as conn:  # root reaches the 0700 socket
        assert conn.execute("SELECT current_setting('data_directory')").fetchone() == (str(cluster.data_dir),)


def test_unix_socket_works_and_tcp_is_refused(cluster: EphemeralCluster) -> None:
    with psycopg.connect(cluster.dsn()) as conn:
        assert conn.execute("SELECT 6 * 7").fetchone() == (42,)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
        tcp.settimeout(3)
        with pytest.raises(ConnectionRefusedError):
            tcp.connect(("127.0.0.1", cluster.port))
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(f"host=127.0.0.1 port={cluster.port} user=postgres dbname=postgres connect_timeout=3")


def test_settings_isolated_and_tuned_for_a_throwaway(cluster: EphemeralCluster) -> None:
    with psycopg.connect(cluster.dsn()) as conn:

        def show(name: str) -> str:
            row = conn.execute(f"SHOW {name}").fetchone()
            assert row is not None
            return str(row[0])

        assert show("listen_addresses") == ""
        assert show("fsync") == "off"
        assert show("full_page_writes") == "off"
        assert show("synchronous_commit") == "off"
        assert show("wal_level") == "minimal"
        assert show("autovacuum") == "off"
        assert show("shared_buffers") == "64MB"  # the caller's setting won over the default
        assert show("unix_socket_permissions") == "0700"
        assert show("server_encoding") == "UTF8"


def test_private_directory_and_marker(cluster: EphemeralCluster) -> None:
    assert cluster.root.stat().st_mode & 0o777 == 0o700
    assert cluster.socket_dir.stat().st_mode & 0o777 == 0o700
    marker = read_marker(cluster.root)
    assert marker is not None
    assert marker.owner_pid == os.getpid()
    assert marker.postmaster_pid == cluster.postmaster_pid
    # The owner (this test process) is alive: not stale.
    assert cluster.root not in find_stale_clusters(cluster.root.parent)


def test_client_tools_reach_it_with_env(cluster: EphemeralCluster) -> None:
    out = subprocess.run(
        cluster.client_command(["psql", "-XAtc", "SELECT current_user"]),
        env={**os.environ, **cluster.env()},
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == cluster.superuser


def test_isolation_settings_cannot_be_overridden(pg_tools: PgTools) -> None:
    with pytest.raises(UsageError, match="listen_addresses"):
        EphemeralCluster(pg_tools, settings={"listen_addresses": "*"})


class _Boom(Exception):
    pass


@pytest.mark.parametrize("how", ["normal", "exception", "keyboard_interrupt"])
def test_leaving_the_block_stops_and_removes_everything(pg_tools: PgTools, how: str) -> None:
    raised: type[BaseException] | None = {
        "normal": None,
        "exception": _Boom,
        "keyboard_interrupt": KeyboardInterrupt,
    }[how]
    seen: dict[str, Path] = {}

    def body() -> None:
        with EphemeralCluster(pg_tools) as c:
            seen["root"], seen["data"] = c.root, c.data_dir
            assert _processes_using(c.data_dir), "the postmaster should be running inside the block"
            if raised is not None:
                raise raised()

    if raised is None:
        body()
    else:
        with pytest.raises(raised):
            body()
    assert _processes_using(seen["data"]) == []
    assert not seen["root"].exists()


def _drkit_child(pg_tools: PgTools, parent: Path, body: str) -> subprocess.Popen[str]:
    """A separate Python process that makes a cluster in `parent`, prints its root, then runs `body`."""
    script = textwrap.dedent(
        f"""
        import os, sys, time
        from pathlib import Path
        from drkit.pg.cluster import EphemeralCluster
        from drkit.pg.tools import PgTools
        tools = PgTools(Path({str(pg_tools.bindir)!r}), {pg_tools.version})
        parent = Path({str(parent)!r})
        """
    ) + textwrap.dedent(body)
    return subprocess.Popen(
        [sys.executable, "-c", script],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
        start_new_session=True,  # its own process group, like a drkit in a terminal
    )


def test_terminal_ctrl_c_reaches_drkit_which_cleans_up(pg_tools: PgTools, parent_dir: Path) -> None:
    child = _drkit_child(
        pg_tools,
        parent_dir,
        """
        with EphemeralCluster(tools, parent_dir=parent) as c:
            print(c.root, flush=True)
            time.sleep(60)
        """,
    )
    assert child.stdout is not None
    root = Path(child.stdout.readline().strip())
    assert _processes_using(root / "data")
    os.killpg(child.pid, signal.SIGINT)  # what Ctrl-C does: SIGINT to the foreground process group
    _, err = child.communicate(timeout=60)
    assert "KeyboardInterrupt" in err
    assert _processes_using(root / "data") == []
    assert not root.exists()


def test_atexit_stops_a_cluster_that_was_never_stopped(pg_tools: PgTools, parent_dir: Path) -> None:
    child = _drkit_child(
        pg_tools,
        parent_dir,
        """
        c = EphemeralCluster(tools, parent_dir=parent).start()
        print(c.root, flush=True)
        sys.exit(0)
        """,
    )
    out, err = child.communicate(timeout=60)
    assert child.returncode == 0, err
    root = Path(out.strip())
    assert _processes_using(root / "data") == []
    assert not root.exists()


def test_stop_is_idempotent(pg_tools: PgTools) -> None:
    c = EphemeralCluster(pg_tools).start()
    root = c.root
    c.stop()
    c.stop()
    assert not root.exists()


def test_failed_start_leaves_nothing_and_shows_the_server_log(pg_tools: PgTools, parent_dir: Path) -> None:
    with pytest.raises(DrkitError) as err:
        EphemeralCluster(pg_tools, parent_dir=parent_dir, settings={"shared_buffers": "lots"}).start()
    message = str(err.value)
    assert "shared_buffers" in message  # postgres's own complaint, from its log
    assert "\n" not in message
    assert list(parent_dir.iterdir()) == []


@pytest.mark.skipif(os.geteuid() != 0, reason="only meaningful when drkit runs as root")
def test_parent_the_unprivileged_user_cannot_enter_is_refused_clearly(pg_tools: PgTools) -> None:
    private = Path(tempfile.mkdtemp(prefix="drkit-test-"))  # 0700, owned by root
    try:
        with pytest.raises(DrkitError, match="cannot enter") as err:
            EphemeralCluster(pg_tools, parent_dir=private).start()
        assert str(private) in str(err.value)
        assert list(private.iterdir()) == []
    finally:
        shutil.rmtree(private)


@pytest.mark.skipif(os.geteuid() != 0, reason="only meaningful when drkit runs as root")
def test_root_without_an_unprivileged_user_says_so(
    pg_tools: PgTools, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DRKIT_PG_RUN_AS", "drkit-no-such-user")
    with pytest.raises(NoUnprivilegedUser, match=r"drkit-no-such-user.*DRKIT_PG_RUN_AS"):
        EphemeralCluster(pg_tools)


def test_cluster_of_a_killed_drkit_is_found_and_removed(pg_tools: PgTools, parent_dir: Path) -> None:
    # A drkit that dies without cleanup (os._exit skips finally and atexit), leaving postgres running.
    child = _drkit_child(
        pg_tools,
        parent_dir,
        """
        c = EphemeralCluster(tools, parent_dir=parent, purpose="killed drill").start()
        print(c.root, flush=True)
        os._exit(9)
        """,
    )
    stdout, stderr = child.communicate(timeout=60)
    assert child.returncode == 9, stderr
    leftover = Path(stdout.strip())
    data_dir = leftover / "data"
    assert _processes_using(data_dir), "the orphaned postmaster should still be running"

    with EphemeralCluster(pg_tools, parent_dir=parent_dir) as alive:
        assert find_stale_clusters(parent_dir) == [leftover]  # our own live cluster is not stale
        marker = read_marker(leftover)
        assert marker is not None and marker.purpose == "killed drill"

        remove_stale_cluster(leftover)
        assert _processes_using(data_dir) == []
        assert not leftover.exists()
        assert find_stale_clusters(parent_dir) == []
        assert alive.root.exists()


def test_marker_with_a_dead_owner_and_no_server(tmp_path: Path) -> None:
    stale = tmp_path / "drkit-pg-crashed"
    (stale / "data").mkdir(parents=True)
    (stale / "data" / "postmaster.pid").write_text(f"{_dead_pid()}\n{stale / 'data'}\n")
    (stale / MARKER_NAME).write_text(
        json.dumps(
            {
                "kind": "drkit.ephemeral-postgres/1",
                "owner_pid": _dead_pid(),
                "created_at": "2026-01-01T00:00:00+00:00",
                "purpose": "drill",
                "postmaster_pid": None,
            }
        )
    )
    unrelated = tmp_path / "drkit-pg-no-marker"
    unrelated.mkdir()
    live = tmp_path / "drkit-pg-live-owner"
    live.mkdir()
    (live / MARKER_NAME).write_text(
        json.dumps({"kind": "drkit.ephemeral-postgres/1", "owner_pid": os.getpid(), "created_at": "x"})
    )

    assert find_stale_clusters(tmp_path) == [stale]
    remove_stale_cluster(stale)
    assert not stale.exists()
    with pytest.raises(DrkitError, match="not a drkit cluster"):
        remove_stale_cluster(unrelated)
    assert unrelated.exists() and live.exists()


_dropped: list[str] = []


def test_fresh_db_is_a_new_empty_writable_database(fresh_db: str) -> None:
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        row = conn.execute("SELECT current_database()").fetchone()
        assert row is not None and str(row[0]).startswith("drkit_t_")
        count = conn.execute(
            "SELECT count(*) FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema')"
        ).fetchone()
        assert count == (0,)
        conn.execute("CREATE TABLE t (x int)")
        conn.execute("INSERT INTO t VALUES (1), (2)")
        assert conn.execute("SELECT sum(x) FROM t").fetchone() == (3,)
        _dropped.append(str(row[0]))


def test_fresh_db_is_dropped_afterwards(pg_dsn: str) -> None:
    # Runs after the test above (file order): its database must be gone.
    assert _dropped, "test_fresh_db_is_a_new_empty_writable_database did not run first"
    with psycopg.connect(pg_dsn) as conn:
        row = conn.execute("SELECT count(*) FROM pg_database WHERE datname = %s", (_dropped[0],)).fetchone()
    assert row == (0,)
