"""Ctrl-C and SIGTERM become an `Interrupted` exception in the main thread, so every
`finally` (teardown, temporary files, child processes) runs before drkit exits 130.

Python runs a signal handler between two bytecodes of the main thread, wherever that is;
code that swallows exceptions (logging's `emit`, a `suppress(Exception)`) could eat the
`Interrupted`. So the signal is also *remembered*: `check()` re-raises it at the next step
boundary, and `received()` lets the CLI exit 130 even if every raise was swallowed.

`shielded()` defers signals while cleanup itself runs: a second Ctrl-C must not abandon a
half-torn-down drill. A signal that arrived meanwhile is raised when the block ends.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType

from drkit.errors import Interrupted

_received: list[str] = []
_shield_depth = 0


def _handler(signum: int, frame: FrameType | None) -> None:
    name = signal.Signals(signum).name
    _received.append(name)
    if _shield_depth == 0:
        raise Interrupted(name)


def install() -> None:
    """Route SIGINT and SIGTERM through `Interrupted` (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        return
    signal.signal(signal.SIGINT, _handler)
    signal.signal(signal.SIGTERM, _handler)


def received() -> str | None:
    """The first signal received by this process, if any."""
    return _received[0] if _received else None


def check() -> None:
    """Raise `Interrupted` if a signal arrived (and we are not inside a shielded block)."""
    if _received and _shield_depth == 0:
        raise Interrupted(_received[0])


@contextlib.contextmanager
def shielded() -> Iterator[None]:
    global _shield_depth
    _shield_depth += 1
    pending_before = len(_received)
    try:
        yield
    finally:
        _shield_depth -= 1
        if _shield_depth == 0 and len(_received) > pending_before:
            raise Interrupted(_received[-1])
