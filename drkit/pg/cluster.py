"""Ephemeral, network-isolated PostgreSQL clusters for restores that are only there to be verified.

A drill (or `drkit verify`) restores a backup into a throwaway cluster and runs checks on it. That
cluster must not be reachable from the network and must never outlive drkit, so:

- it lives in a private temporary directory (mode 0700) holding `data/`, `socket/`, `postgres.log`
  and a marker file `drkit-cluster.json` (owner pid, created_at, purpose) that lets
  `drkit drill cleanup` find leftovers of a drkit that was killed;
- it listens on a unix socket only (`listen_addresses=''`): no TCP port is opened at all, which is
  why `--auth=trust` is safe; the socket directory and socket are 0700;
- durability is switched off (fsync, full_page_writes, synchronous_commit): it is a throwaway;
- when drkit runs as root, initdb and postgres (which refuse root) run as the `postgres` OS user
  (or $DRKIT_PG_RUN_AS) and the directory is chowned to it; root can still reach the socket;
- postgres runs in its own session so a terminal Ctrl-C reaches drkit first and drkit shuts it
  down itself; `stop()` (and leaving the `with` block, however it is left, and an atexit hook)
  shuts it down (SIGINT, then SIGQUIT, then SIGKILL) and removes the directory.

Usage::

    with EphemeralCluster(find_tools(require=ALL_TOOLS), purpose="drill orders") as cluster:
        subprocess.run(cluster.client_command(["pg_restore", "-d", "postgres", dump]),
                       env={**os.environ, **cluster.env()}, check=True)
        with psycopg.connect(cluster.dsn()) as conn:
            ...
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import pwd
import random
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import psycopg
from psycopg.conninfo import make_conninfo

from drkit.clock import Clock, SystemClock
from drkit.errors import DrkitError, ToolMissing, UsageError
from drkit.pg.tools import PgTools

DEFAULT_PREFIX = "drkit-pg-"
MARKER_NAME = "drkit-cluster.json"
MARKER_KIND = "drkit.ephemeral-postgres/1"
RUN_AS_ENV = "DRKIT_PG_RUN_AS"
LOG_NAME = "postgres.log"

#: Tuned for a throwaway that only has to load a dump fast and answer a few queries.
DEFAULT_SETTINGS: Mapping[str, str] = {
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "wal_level": "minimal",
    "max_wal_senders": "0",
    "checkpoint_timeout": "1h",
    "max_wal_size": "8GB",
    "maintenance_work_mem": "256MB",
    "autovacuum": "off",
    "shared_buffers": "256MB",
}
#: Settings that make the cluster isolated; callers may not override them.
_ISOLATION_KEYS = frozenset(
    {"listen_addresses", "unix_socket_directories", "unix_socket_permissions", "port"}
)
# sun_path is 108 bytes on Linux and 104 on macOS, NUL included.
_MAX_SOCKET_PATH = 103
_FAST_SHUTDOWN_WAIT_S = 30.0
_IMMEDIATE_SHUTDOWN_WAIT_S = 5.0
_LOG_TAIL_LINES = 8


class ClusterError(DrkitError):
    """The ephemeral cluster could not be created, started or removed."""


class NoUnprivilegedUser(ToolMissing):
    """drkit runs as root and there is no unprivileged OS user to run initdb/postgres as."""


@dataclass(frozen=True)
class ClusterMarker:
    """The content of `drkit-cluster.json`: who made a cluster directory, when and why."""

    path: Path
    owner_pid: int
    created_at: str
    purpose: str
    postmaster_pid: int | None


def read_marker(path: Path) -> ClusterMarker | None:
    """The marker of cluster directory `path`, or None if it has no readable drkit marker."""
    try:
        raw = json.loads((path / MARKER_NAME).read_text(encoding="utf-8"))
        if raw.get("kind") != MARKER_KIND:
            return None
        postmaster = raw.get("postmaster_pid")
        return ClusterMarker(
            path=path,
            owner_pid=int(raw["owner_pid"]),
            created_at=str(raw["created_at"]),
            purpose=str(raw.get("purpose", "")),
            postmaster_pid=int(postmaster) if postmaster else None,
        )
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def resolve_run_as() -> pwd.struct_passwd | None:
    """The OS user that must own and run clusters: None unless drkit runs as root."""
    if os.geteuid() != 0:
        return None
    name = os.environ.get(RUN_AS_ENV) or "postgres"
    try:
        user = pwd.getpwnam(name)
    except KeyError:
        user = None
    if user is None or user.pw_uid == 0:
        problem = f"there is no OS user {name!r}" if user is None else f"{name!r} is root"
        raise NoUnprivilegedUser(
            f"drkit runs as root, initdb/postgres refuse to run as root, and {problem} to run them as "
            f"instead: create an unprivileged user (e.g. install the postgresql package, which adds "
            f"`postgres`) or set {RUN_AS_ENV} to one"
        )
    return user


class EphemeralCluster:
    """A private PostgreSQL cluster on a unix socket only; always stopped and removed (see module doc)."""

    def __init__(
        self,
        tools: PgTools,
        *,
        prefix: str = DEFAULT_PREFIX,
        parent_dir: Path | None = None,
        settings: Mapping[str, str] | None = None,
        superuser: str = "postgres",
        start_timeout_s: float = 60.0,
        purpose: str = "verification",
        locale: str = "C",
        clock: Clock | None = None,
    ) -> None:
        overridden = sorted(_ISOLATION_KEYS & set(settings or {}))
        if overridden:
            raise UsageError(
                f"ephemeral cluster settings may not change {', '.join(overridden)}: "
                "they keep it off the network"
            )
        self.tools = tools
        self.prefix = prefix
        self.parent_dir = parent_dir
        self.settings: dict[str, str] = {**DEFAULT_SETTINGS, **(settings or {})}
        self.superuser = superuser
        self.start_timeout_s = start_timeout_s
        self.purpose = purpose
        self.locale = locale
        self._clock = clock or SystemClock()
        self._user = resolve_run_as()
        #: The OS user that owns and runs the cluster when drkit runs as root; None otherwise.
        self.run_as: str | None = self._user.pw_name if self._user else None
        self._root: Path | None = None
        self._port: int | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    # -- where things are -------------------------------------------------------------------

    @property
    def root(self) -> Path:
        """The private temporary directory holding everything of this cluster."""
        if self._root is None:
            raise ClusterError("the ephemeral cluster is not started")
        return self._root

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def socket_dir(self) -> Path:
        return self.root / "socket"

    @property
    def log_file(self) -> Path:
        return self.root / LOG_NAME

    @property
    def port(self) -> int:
        """Names the socket file (.s.PGSQL.<port>); no TCP port is opened."""
        if self._port is None:
            raise ClusterError("the ephemeral cluster is not started")
        return self._port

    @property
    def postmaster_pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    # -- connecting -------------------------------------------------------------------------

    def dsn(self, dbname: str = "postgres") -> str:
        """libpq conninfo for the superuser over the unix socket."""
        return make_conninfo(
            "", host=str(self.socket_dir), port=str(self.port), user=self.superuser, dbname=dbname
        )

    def env(self) -> dict[str, str]:
        """PGHOST/PGPORT/PGUSER for client tools; merge into os.environ when running them."""
        return {"PGHOST": str(self.socket_dir), "PGPORT": str(self.port), "PGUSER": self.superuser}

    def client_command(self, argv: Sequence[str]) -> list[str]:
        """The command line to run a client tool against this cluster.

        Clients run as drkit's own user (root reaches the 0700 socket); a bare tool name such as
        "pg_restore" is resolved to the same bindir as the server so versions match.
        """
        if not argv:
            raise ValueError("client_command needs a program")
        program = argv[0]
        if os.sep not in program:
            program = str(self.tools.path(program))
        return [program, *argv[1:]]

    # -- lifecycle --------------------------------------------------------------------------

    def __enter__(self) -> EphemeralCluster:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> EphemeralCluster:
        """Create the directory, initdb, start postgres and wait until it accepts connections."""
        if self._root is not None or self._proc is not None:
            raise ClusterError("the ephemeral cluster is already started")
        initdb = self.tools.path("initdb")
        postgres = self.tools.path("postgres")
        atexit.register(self._stop_at_exit)
        try:
            self._create_dirs()
            self._initdb(initdb)
            self._launch(postgres)
            self._wait_ready()
        except BaseException:
            # Half-way failures (and Ctrl-C during start) leave nothing behind.
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Shut postgres down and remove the directory. Idempotent; safe after a failed start."""
        interrupted: KeyboardInterrupt | None = None
        proc = self._proc
        if proc is not None and proc.poll() is None:
            try:
                _shutdown_child(proc)
            except KeyboardInterrupt as exc:
                # A second Ctrl-C: stop politely no longer, but still leave nothing behind.
                interrupted = exc
                _kill_tree(proc.pid)
                proc.wait()
        self._proc = None
        if self._root is not None:
            _remove_tree(self._root)
            self._root = None
        atexit.unregister(self._stop_at_exit)
        if interrupted is not None:
            raise interrupted

    def _stop_at_exit(self) -> None:
        with contextlib.suppress(Exception):
            self.stop()

    # -- steps of start() -------------------------------------------------------------------

    def _create_dirs(self) -> None:
        parent = (self.parent_dir or Path(tempfile.gettempdir())).resolve()
        if not parent.is_dir():
            raise ClusterError(f"parent directory {parent} for ephemeral clusters does not exist")
        self._root = Path(tempfile.mkdtemp(prefix=self.prefix, dir=parent))  # mode 0700
        self._port = _pick_port()
        self._write_marker()  # first, so that `drill cleanup` finds even a half-made cluster
        socket_file = self.socket_dir / f".s.PGSQL.{self._port}"
        if len(str(socket_file)) > _MAX_SOCKET_PATH:
            raise ClusterError(
                f"unix socket path {socket_file} is too long for the OS ({_MAX_SOCKET_PATH} bytes at most): "
                "use a shorter parent directory"
            )
        for sub in (self.data_dir, self.socket_dir):
            sub.mkdir(mode=0o700)
        if self._user is not None:
            for path in (self.root, self.data_dir, self.socket_dir):
                os.chown(path, self._user.pw_uid, self._user.pw_gid)
            _check_reachable(self.root, self._user)

    def _initdb(self, initdb: Path) -> None:
        argv = [
            str(initdb),
            "-D",
            str(self.data_dir),
            "--auth=trust",  # safe: there is no TCP listener, and the socket is 0700
            f"--username={self.superuser}",
            "--encoding=UTF8",
            f"--locale={self.locale}",
            "--no-sync",
        ]
        with open(self.log_file, "ab") as log:
            try:
                result = subprocess.run(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    cwd=self.root,
                    env=self._server_env(),
                    timeout=max(self.start_timeout_s, 120.0),
                    check=False,
                    **self._as_user(),
                )
            except subprocess.TimeoutExpired as exc:
                tail = self._log_tail()
                raise ClusterError(f"initdb did not finish in {exc.timeout:.0f}s; {tail}") from exc
        if result.returncode != 0:
            raise ClusterError(f"initdb failed (exit status {result.returncode}); {self._log_tail()}")

    def _launch(self, postgres: Path) -> None:
        settings = {
            **self.settings,
            "listen_addresses": "",  # no TCP at all: nothing on the network can reach it
            "unix_socket_directories": str(self.socket_dir),
            "unix_socket_permissions": "0700",
            "port": str(self.port),
        }
        argv = [str(postgres), "-D", str(self.data_dir)]
        for key, value in settings.items():
            argv += ["-c", f"{key}={value}"]
        with open(self.log_file, "ab") as log:
            self._proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.root,
                env=self._server_env(),
                start_new_session=True,  # a terminal Ctrl-C must reach drkit, which then stops it
                **self._as_user(),
            )
        self._write_marker()

    def _wait_ready(self) -> None:
        assert self._proc is not None
        deadline = time.monotonic() + self.start_timeout_s
        socket_file = self.socket_dir / f".s.PGSQL.{self.port}"
        while True:
            status = self._proc.poll()
            if status is not None:
                raise ClusterError(f"postgres exited with status {status} while starting; {self._log_tail()}")
            if socket_file.exists():
                try:
                    with psycopg.connect(self.dsn(), connect_timeout=5, autocommit=True) as conn:
                        conn.execute("SELECT 1")
                    return
                except psycopg.OperationalError:
                    pass  # "the database system is starting up"
            if time.monotonic() > deadline:
                raise ClusterError(
                    f"postgres did not accept connections within {self.start_timeout_s:g}s; "
                    f"{self._log_tail()}"
                )
            time.sleep(0.05)

    # -- helpers ----------------------------------------------------------------------------

    def _write_marker(self) -> None:
        marker = {
            "kind": MARKER_KIND,
            "owner_pid": os.getpid(),
            "created_at": self._clock.now().isoformat(),
            "purpose": self.purpose,
            "postmaster_pid": self.postmaster_pid,
            "data_dir": str(self.data_dir),
            "port": self._port,
        }
        tmp = self.root / (MARKER_NAME + ".tmp")
        tmp.write_text(json.dumps(marker, indent=2) + "\n", encoding="utf-8")
        tmp.replace(self.root / MARKER_NAME)

    def _as_user(self) -> dict[str, Any]:
        """Popen arguments that drop to the unprivileged user (like `runuser -u`, without a wrapper
        process in between, so the pid drkit signals is the postmaster's)."""
        if self._user is None:
            return {}
        return {
            "user": self._user.pw_uid,
            "group": self._user.pw_gid,
            "extra_groups": os.getgrouplist(self._user.pw_name, self._user.pw_gid),
        }

    def _server_env(self) -> dict[str, str]:
        # PG* variables of the caller (PGDATA, PGPORT, ...) must not leak into the server.
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        if self._user is not None:
            env.update(HOME=self._user.pw_dir, USER=self._user.pw_name, LOGNAME=self._user.pw_name)
        return env

    def _log_tail(self) -> str:
        try:
            lines = self.log_file.read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError:
            return "no server log"
        tail = [line.strip() for line in lines if line.strip()][-_LOG_TAIL_LINES:]
        return "server log: " + " | ".join(tail) if tail else "server log is empty"


def _pick_port() -> int:
    """A port number for the socket name. No TCP is opened; avoiding ports in use on 127.0.0.1
    just keeps `psql -p <port>` mix-ups with real servers from happening."""
    for _ in range(50):
        port = 5433 + random.randrange(20000)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port
    return 5433 + random.randrange(20000)


def _check_reachable(path: Path, user: pwd.struct_passwd) -> None:
    """ClusterError unless `user` can traverse every directory above `path` (e.g. not under /root)."""
    groups = set(os.getgrouplist(user.pw_name, user.pw_gid))
    for ancestor in path.parents:
        st = ancestor.stat()
        if st.st_uid == user.pw_uid:
            ok = bool(st.st_mode & stat.S_IXUSR)
        elif st.st_gid in groups:
            ok = bool(st.st_mode & stat.S_IXGRP)
        else:
            ok = bool(st.st_mode & stat.S_IXOTH)
        if not ok:
            raise ClusterError(
                f"OS user {user.pw_name!r} (who runs the cluster because drkit runs as root) cannot enter "
                f"{ancestor}: choose a parent directory it can reach, such as {tempfile.gettempdir()}"
            )


def _shutdown_child(proc: subprocess.Popen[bytes]) -> None:
    """Fast shutdown (SIGINT), then immediate (SIGQUIT), then SIGKILL to it and its backends."""
    for sig, wait_s in ((signal.SIGINT, _FAST_SHUTDOWN_WAIT_S), (signal.SIGQUIT, _IMMEDIATE_SHUTDOWN_WAIT_S)):
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(sig)
        try:
            proc.wait(wait_s)
            return
        except subprocess.TimeoutExpired:
            continue
    _kill_tree(proc.pid)
    proc.wait()


def _children_of(pid: int) -> list[int]:
    """Pids whose parent is `pid` (Linux /proc; empty elsewhere)."""
    children: list[int] = []
    for stat_file in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            if int(stat_file.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                children.append(int(stat_file.parent.name))
    return children


def _kill_tree(pid: int) -> None:
    """SIGKILL a postmaster and its backends. Backends call setsid(), so killing the process group
    would miss them; they are found by parent pid while the postmaster is still unreaped (so the
    pids are certainly ours)."""
    for target in (pid, *_children_of(pid)):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(target, signal.SIGKILL)


def _remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
    if path.exists():  # a straggler wrote a file during the first pass
        time.sleep(0.2)
        try:
            shutil.rmtree(path)
        except OSError as exc:
            raise ClusterError(f"could not remove ephemeral cluster directory {path}: {exc}") from exc


# -- leftovers of a drkit that was killed -------------------------------------------------------


def _pid_alive(pid: int) -> bool:
    """True if `pid` is a live (not zombie) process."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        # /proc/<pid>/stat: "pid (comm) state ..."; a zombie has exited already.
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        return state != "Z"
    except (OSError, IndexError):
        return True


def _is_postmaster_of(pid: int, data_dir: Path) -> bool:
    """True if `pid` is alive and is the postgres serving `data_dir` (guards against pid reuse)."""
    if not _pid_alive(pid):
        return False
    cmdline = Path(f"/proc/{pid}/cmdline")
    if not Path("/proc/self").exists():
        return True  # no /proc (macOS): postmaster.pid naming this data dir is all we have
    try:
        return str(data_dir) in cmdline.read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return False


def _postmaster_candidates(path: Path, marker: ClusterMarker) -> list[int]:
    pids = [marker.postmaster_pid] if marker.postmaster_pid else []
    with contextlib.suppress(OSError, ValueError, IndexError):
        pids.append(int((path / "data" / "postmaster.pid").read_text().splitlines()[0]))
    return sorted(set(pids))


def _wait_gone(pid: int, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while _pid_alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def find_stale_clusters(parent_dir: Path | None = None, *, prefix: str = DEFAULT_PREFIX) -> list[Path]:
    """Cluster directories under `parent_dir` (default: the temp dir) whose owning drkit is dead."""
    parent = parent_dir or Path(tempfile.gettempdir())
    stale: list[Path] = []
    for entry in sorted(parent.glob(prefix + "*")):
        if entry.is_symlink() or not entry.is_dir():
            continue
        marker = read_marker(entry)
        if marker is not None and not _pid_alive(marker.owner_pid):
            stale.append(entry)
    return stale


def remove_stale_cluster(path: Path) -> None:
    """Stop the postmaster of a leftover cluster if it still runs (SIGQUIT, then SIGKILL) and
    delete the directory. Refuses a directory without a drkit marker."""
    marker = read_marker(path)
    if marker is None:
        raise ClusterError(f"{path} has no readable {MARKER_NAME}: not a drkit cluster, not removing it")
    data_dir = path / "data"
    for pid in _postmaster_candidates(path, marker):
        if not _is_postmaster_of(pid, data_dir):
            continue
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGQUIT)  # immediate shutdown: the postmaster kills its backends
        if not _wait_gone(pid, _IMMEDIATE_SHUTDOWN_WAIT_S):
            _kill_tree(pid)
            if not _wait_gone(pid, _IMMEDIATE_SHUTDOWN_WAIT_S):
                raise ClusterError(f"postgres (pid {pid}) of leftover cluster {path} did not stop")
    _remove_tree(path)


__all__ = [
    "DEFAULT_PREFIX",
    "DEFAULT_SETTINGS",
    "MARKER_NAME",
    "RUN_AS_ENV",
    "ClusterError",
    "ClusterMarker",
    "EphemeralCluster",
    "NoUnprivilegedUser",
    "find_stale_clusters",
    "read_marker",
    "remove_stale_cluster",
    "resolve_run_as",
]
