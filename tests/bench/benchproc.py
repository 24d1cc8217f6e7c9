"""Subprocess plumbing for the benchmarks: run a command, time it, and measure its memory.

`run_measured` starts a command in its own session (so a terminal Ctrl-C reaches the
benchmark first, which then stops the child politely and waits for its cleanup), times it
with a monotonic clock, and reports two peak-memory figures:

- `self_peak_kib`: the peak RSS (VmHWM) of the process itself, sampled from /proc while it
  runs. VmHWM only ever grows, so the last sample is the peak up to the final few ms;
- `tree_peak_kib`: ru_maxrss from wait4(), the largest RSS of the process or of any
  descendant it waited for (for a drill that includes the postgres backends, whose RSS
  counts the shared buffers they touched: server memory, not drkit's);
- `children_peak_kib`: the peak VmHWM seen per descendant command name (pg_dump, postgres...).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

#: How long a child may take to clean up after SIGINT before it is killed.
STOP_GRACE_S = 180.0


@dataclass
class Measured:
    argv: list[str]
    returncode: int
    wall_s: float
    self_peak_kib: int
    tree_peak_kib: int
    children_peak_kib: dict[str, int] = field(default_factory=dict)
    log: Path | None = None

    def tail(self, lines: int = 15) -> str:
        if self.log is None:
            return ""
        try:
            text = self.log.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(text[-lines:])


class CommandFailed(RuntimeError):
    """A benchmark step's command exited non-zero (a real error, not a missed target)."""


def _status_kib(pid: int, key: str = "VmHWM") -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def _children_map() -> dict[int, list[tuple[int, str]]]:
    """parent pid -> [(pid, comm)] for every process in /proc."""
    out: dict[int, list[tuple[int, str]]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            text = stat.read_text()
            comm = text[text.index("(") + 1 : text.rindex(")")]
            ppid = int(text.rsplit(")", 1)[1].split()[1])
            out.setdefault(ppid, []).append((int(stat.parent.name), comm))
    return out


def descendants(pid: int) -> list[tuple[int, str]]:
    tree = _children_map()
    found: list[tuple[int, str]] = []
    todo = [pid]
    while todo:
        for child in tree.get(todo.pop(), []):
            found.append(child)
            todo.append(child[0])
    return found


class _Sampler(threading.Thread):
    """Samples VmHWM of the process (every 50 ms) and of its descendants (every 250 ms)."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.self_peak = 0
        self.children: dict[str, int] = {}
        self._stop_event = threading.Event()

    def run(self) -> None:
        tick = 0
        while not self._stop_event.is_set():
            self.self_peak = max(self.self_peak, _status_kib(self.pid))
            if tick % 5 == 0:
                for child, comm in descendants(self.pid):
                    hwm = _status_kib(child)
                    if hwm > self.children.get(comm, 0):
                        self.children[comm] = hwm
            tick += 1
            self._stop_event.wait(0.05)

    def stop(self) -> None:
        self._stop_event.set()
        self.join()


def _wait4(pid: int, sampler: _Sampler | None) -> tuple[int, int]:
    """Reap `pid`; returns (exit code, ru_maxrss in KiB)."""
    while True:
        got, status, usage = os.wait4(pid, os.WNOHANG)
        if got == pid:
            return os.waitstatus_to_exitcode(status), int(usage.ru_maxrss)
        time.sleep(0.02)


def stop_child(proc: subprocess.Popen[bytes], grace_s: float = STOP_GRACE_S) -> None:
    """SIGINT (as a Ctrl-C would), wait for the child's own cleanup, then SIGKILL."""
    if proc.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(signal.SIGINT)
    try:
        proc.wait(grace_s)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # its own session: the group is only its own
        proc.wait()
    except ChildProcessError:
        pass


def run_measured(
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    log: Path | None = None,
    measure: bool = True,
    check: bool = True,
    what: str = "",
    cwd: Path | None = None,
) -> Measured:
    """Run `argv` to the end (output to `log`), timed and memory-measured; see module doc."""
    out = open(log, "ab") if log is not None else subprocess.DEVNULL  # noqa: SIM115
    try:
        start = time.monotonic()
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            start_new_session=True,
        )
        sampler = _Sampler(proc.pid) if measure else None
        if sampler is not None:
            sampler.start()
        try:
            code, maxrss = _wait4(proc.pid, sampler)
        except BaseException:
            if sampler is not None:
                sampler.stop()
            stop_child(proc)
            raise
        wall = time.monotonic() - start
        proc.returncode = code
        if sampler is not None:
            sampler.stop()
    finally:
        if log is not None:
            out.close()  # type: ignore[union-attr]
    result = Measured(
        argv=list(argv),
        returncode=code,
        wall_s=wall,
        self_peak_kib=sampler.self_peak if sampler else 0,
        tree_peak_kib=maxrss,
        children_peak_kib=dict(sampler.children) if sampler else {},
        log=log,
    )
    if check and code != 0:
        raise CommandFailed(f"{what or argv[0]} exited {code}:\n{result.tail()}")
    return result


def drop_caches() -> bool:
    """Write dirty pages and drop the page cache (root only); False if not permitted."""
    os.sync()
    try:
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
    except OSError:
        return False
    return True


def load_average() -> tuple[float, float, float]:
    return os.getloadavg()


def save_results(data: object, out: Path | None, name: str) -> Path:
    """Write a benchmark's figures as JSON to `out`, or to /tmp/drkit-bench/<timestamp>-<name>.json."""
    path = out or Path("/tmp/drkit-bench") / f"{time.strftime('%Y%m%dT%H%M%S')}-{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, default=str) + "\n")
    return path
