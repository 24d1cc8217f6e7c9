"""`drkit drill cleanup`: what a killed drill (SIGKILL, power loss) could leave behind.

Normal exits, errors, Ctrl-C and SIGTERM clean up in `finally`; only a process killed
outright leaves anything. Each leftover carries its owner's pid, so a running drill's
resources are never taken for leftovers.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from drkit.jobs.context import Context
from drkit.jobs.pgwiring import iter_pg_resources, open_store
from drkit.pg.cluster import find_stale_clusters, remove_stale_cluster
from drkit.store import FileStore

WORKDIR_PREFIX = "drkit-drill-"
OWNER_FILE = "owner.pid"


@dataclass(frozen=True)
class Leftover:
    kind: str  # "cluster" | "workdir" | "partial-upload"
    path: Path
    why: str


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def make_workdir() -> Path:
    path = Path(tempfile.mkdtemp(prefix=WORKDIR_PREFIX))
    (path / OWNER_FILE).write_text(str(os.getpid()))
    return path


def _old_enough(path: Path, age: timedelta | None) -> bool:
    try:
        return age is None or time.time() - path.stat().st_mtime >= age.total_seconds()
    except OSError:
        return False


def find_leftovers(ctx: Context, age: timedelta | None) -> list[Leftover]:
    found = [
        Leftover("cluster", p, "ephemeral cluster whose drkit process is gone")
        for p in find_stale_clusters()
        if _old_enough(p, age)
    ]
    for path in sorted(Path(tempfile.gettempdir()).glob(f"{WORKDIR_PREFIX}*")):
        try:
            pid = int((path / OWNER_FILE).read_text())
        except (OSError, ValueError):
            pid = -1
        if (pid < 0 or not pid_alive(pid)) and _old_enough(path, age):
            found.append(Leftover("workdir", path, "drill work directory whose drkit process is gone"))
    try:
        cfg = ctx.config()
    except Exception:
        return found
    for res in iter_pg_resources(cfg):
        store = open_store(cfg, res)
        if isinstance(store, FileStore):
            found += [
                Leftover("partial-upload", p, "unfinished backup write (never visible as a backup)")
                for p in store.partials()
                if _old_enough(p, age or timedelta(hours=24))
            ]
    return found


def remove_leftover(item: Leftover) -> None:
    if item.kind == "cluster":
        remove_stale_cluster(item.path)
    elif item.kind == "workdir":
        shutil.rmtree(item.path, ignore_errors=True)
    else:
        item.path.unlink(missing_ok=True)
