"""The fast path that skips alembic on an up-to-date catalog must agree with alembic itself."""

from pathlib import Path

from drkit.catalog import Catalog
from drkit.catalog.migrate import head_revision, newest_packaged_revision


def test_the_packaged_newest_revision_is_alembics_head() -> None:
    assert newest_packaged_revision() == head_revision()


def test_a_catalog_at_head_opens_without_migrating_and_keeps_rows(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'c.db'}"
    with Catalog.open(url) as first:
        first.audit("test", "x")
    with Catalog.open(url) as again:  # fast path: already at head
        assert [e.action for e in again.audit_events()] == ["test"]
