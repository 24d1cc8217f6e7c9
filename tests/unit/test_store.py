from pathlib import Path

import pytest

from drkit.errors import StoreError, UsageError
from drkit.store import FileStore, parse_store_uri


def test_an_object_appears_only_when_its_writer_finishes(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "s")
    with store.writer("app/one.bin") as fh:
        fh.write(b"hello")
        assert store.list() == []
    assert store.list() == ["app/one.bin"]
    with store.open("app/one.bin") as fh:
        assert fh.read() == b"hello"
    assert (tmp_path / "s" / "app" / "one.bin").stat().st_mode & 0o077 == 0


@pytest.mark.parametrize("exc", [RuntimeError("boom"), KeyboardInterrupt()])
def test_an_interrupted_write_leaves_nothing(tmp_path: Path, exc: BaseException) -> None:
    store = FileStore(tmp_path / "s")
    with pytest.raises(type(exc)), store.writer("app/two.bin") as fh:
        fh.write(b"x" * 4096)
        raise exc
    assert store.list() == [] and store.partials() == []


def test_an_existing_backup_is_never_overwritten(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "s")
    with store.writer("a") as fh:
        fh.write(b"first")
    with pytest.raises(StoreError, match="refusing to overwrite"), store.writer("a") as fh:
        fh.write(b"second")
    with store.open("a") as fh:
        assert fh.read() == b"first"


def test_missing_objects_and_bad_names(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "s")
    with pytest.raises(StoreError, match="no object"):
        store.open("nope")
    with pytest.raises(ValueError):
        store.open("../etc/passwd")


def test_store_uris() -> None:
    assert parse_store_uri("file://.drkit/backups") == ("file", ".drkit/backups")
    assert parse_store_uri("s3://bucket/prefix") == ("s3", "bucket/prefix")
    for bad in ("ftp://x", "file://", "/plain/path"):
        with pytest.raises(UsageError):
            parse_store_uri(bad)
