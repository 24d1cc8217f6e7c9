"""Where backups live: a small Protocol and the local-directory store.

A store holds opaque objects under slash-separated names. Writes are all-or-nothing:
an object becomes visible only when its writer commits, so a backup that dies half way
(crash, disk full, Ctrl-C) never shows up as a backup and never replaces an older one.
The S3 implementation lives in drkit/aws/s3store.py (the embedded default never imports aws).

    store: file://.drkit/backups      # FileStore, relative to the config directory
    store: s3://bucket/prefix         # S3Store, multipart, in drkit.aws
"""

from __future__ import annotations

import builtins
import contextlib
import errno
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO, Protocol

from drkit.errors import StoreError, UsageError


class BackupStore(Protocol):
    uri: str

    def writer(self, name: str) -> contextlib.AbstractContextManager[BinaryIO]:
        """A binary sink; the object appears under `name` only if the block exits cleanly."""
        ...

    def open(self, name: str) -> BinaryIO:
        """Read an object; StoreError if it does not exist."""
        ...

    def list(self, prefix: str = "") -> list[str]:
        """Names of committed objects under prefix, sorted."""
        ...

    def size(self, name: str) -> int: ...

    def delete(self, name: str) -> None: ...


def _store_failure(uri: str, name: str, exc: OSError) -> StoreError:
    if exc.errno == errno.ENOSPC:
        return StoreError(
            f"store {uri} is full while writing {name} (no space left on device): free space or point "
            "`store:` elsewhere; nothing was written and existing backups are untouched"
        )
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return StoreError(f"store {uri}: cannot write {name} ({exc.strerror}): check the directory's permissions")
    return StoreError(f"store {uri}: {name}: {exc.strerror or exc}")


class FileStore:
    """Backups in a local (or mounted) directory; files are made 0600, directories 0700."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.uri = f"file://{root}"

    def _path(self, name: str) -> Path:
        if not name or name.startswith("/") or ".." in Path(name).parts:
            raise ValueError(f"bad object name {name!r}")
        return self.root / name

    @contextlib.contextmanager
    def writer(self, name: str) -> Iterator[BinaryIO]:
        final = self._path(name)
        try:
            final.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            if final.exists():
                raise StoreError(f"store {self.uri}: {name} exists already; refusing to overwrite a backup")
            fd, tmp = tempfile.mkstemp(prefix=".partial-", dir=final.parent)
        except OSError as exc:
            raise _store_failure(self.uri, name, exc) from exc
        tmp_path = Path(tmp)
        try:
            try:
                with os.fdopen(fd, "wb", buffering=1 << 20) as fh:
                    yield fh
                    fh.flush()
                    os.fsync(fh.fileno())
                # link() rather than rename(): it fails instead of replacing an object that appeared meanwhile.
                os.link(tmp_path, final)
            except OSError as exc:
                raise _store_failure(self.uri, name, exc) from exc
        finally:
            with contextlib.suppress(OSError):
                tmp_path.unlink()
            _fsync_dir(final.parent)

    def open(self, name: str) -> BinaryIO:
        try:
            return open(self._path(name), "rb", buffering=1 << 20)
        except FileNotFoundError as exc:
            raise StoreError(f"store {self.uri}: no object {name}") from exc
        except OSError as exc:
            raise _store_failure(self.uri, name, exc) from exc

    def list(self, prefix: str = "") -> list[str]:
        if not self.root.is_dir():
            return []
        names = []
        for path in self.root.rglob("*"):
            if path.is_file() and not path.name.startswith(".partial-"):
                rel = path.relative_to(self.root).as_posix()
                if rel.startswith(prefix):
                    names.append(rel)
        return sorted(names)

    def size(self, name: str) -> int:
        try:
            return self._path(name).stat().st_size
        except OSError as exc:
            raise _store_failure(self.uri, name, exc) from exc

    def delete(self, name: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self._path(name).unlink()

    def partials(self) -> builtins.list[Path]:
        """Leftovers of writers killed with SIGKILL (never visible as backups); for cleanup."""
        return sorted(self.root.rglob(".partial-*")) if self.root.is_dir() else []


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def parse_store_uri(text: str) -> tuple[str, str]:
    """Split `file://PATH` or `s3://bucket/prefix` into (scheme, rest)."""
    for scheme in ("file", "s3"):
        if text.startswith(f"{scheme}://"):
            rest = text[len(scheme) + 3 :]
            if not rest:
                break
            return scheme, rest
    raise UsageError(f"store {text!r}: write file://PATH or s3://BUCKET/PREFIX")
