"""What every job needs: configuration, catalog, clock, and where to talk to the user.

The CLI and the scheduler each build one Context and hand it to jobs; jobs never parse
arguments or read global state themselves.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console

from drkit.clock import Clock, SystemClock

if TYPE_CHECKING:
    from drkit.catalog import Catalog
    from drkit.config import Config

log = logging.getLogger("drkit")


def _console(*, stderr: bool) -> Console:
    """Rich output on a terminal; long plain lines (no wrapping at 80) in pipes and logs."""
    probe = Console(stderr=stderr)
    return Console(stderr=stderr, soft_wrap=True, width=None if probe.is_terminal else 200)


@dataclass
class Context:
    config_dir: Path
    catalog_url: str | None = None
    clock: Clock = field(default_factory=SystemClock)
    console: Console = field(default_factory=lambda: _console(stderr=True))
    out: Console = field(default_factory=lambda: _console(stderr=False))
    _config: Config | None = None
    _catalog: Catalog | None = None
    # Per-run objects worth building once (AWS sessions and clients cost ~0.3 s each): the
    # cache lives and dies with this Context, never process-wide.
    cache: dict[Any, Any] = field(default_factory=dict)

    def config(self) -> Config:
        if self._config is None:
            from drkit.config import load_config

            self._config = load_config(self.config_dir)
        return self._config

    def catalog(self) -> Catalog:
        if self._catalog is None:
            from drkit.catalog import Catalog

            self._catalog = Catalog.open(self.catalog_url, clock=self.clock)
        return self._catalog

    def close(self) -> None:
        if self._catalog is not None:
            self._catalog.close()
            self._catalog = None

    def say(self, message: str) -> None:
        """A line for the person at the terminal (stderr, so stdout stays machine-readable)."""
        self.console.print(message, highlight=False)
