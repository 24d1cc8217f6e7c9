"""The streaming comparison of two sorted S3 listings (drkit.domain.s3compare): pure, no AWS."""

from __future__ import annotations

import tracemalloc
import unicodedata
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drkit.domain.s3compare import (
    FAILED,
    PENDING,
    MergeStats,
    ObjectEntry,
    Tally,
    UnsortedListing,
    compare,
    merge_diff,
)

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
OLD = NOW - timedelta(hours=2)


def objs(*keys: str, size: int = 10, at: datetime = OLD) -> list[ObjectEntry]:
    return [ObjectEntry(k, size, at) for k in sorted(keys)]


def kinds(source: list[ObjectEntry], replica: list[ObjectEntry]) -> list[tuple[str, str]]:
    return [(d.kind, d.key) for d in merge_diff(source, replica)]


def test_both_empty_gives_nothing_and_counts_nothing() -> None:
    stats = MergeStats()
    assert list(merge_diff([], [], stats)) == []
    assert (stats.source_objects, stats.replica_objects, stats.matched) == (0, 0, 0)


def test_empty_replica_means_every_source_object_is_missing() -> None:
    assert kinds(objs("a", "b", "c"), []) == [("missing", "a"), ("missing", "b"), ("missing", "c")]


def test_empty_source_means_every_replica_object_is_extra() -> None:
    assert kinds([], objs("a", "b")) == [("extra", "a"), ("extra", "b")]


def test_identical_listings_have_no_differences() -> None:
    stats = MergeStats()
    assert list(merge_diff(objs("a", "b", "c"), objs("a", "b", "c"), stats)) == []
    assert (stats.source_objects, stats.replica_objects, stats.matched) == (3, 3, 3)


def test_interleaved_listings() -> None:
    source = [*objs("a", "c", "e", "g"), ObjectEntry("h", 99, OLD)]
    replica = objs("b", "c", "d", "g", "h", "z")
    assert kinds(source, replica) == [
        ("missing", "a"),
        ("extra", "b"),
        ("extra", "d"),
        ("missing", "e"),
        ("mismatched", "h"),
        ("extra", "z"),
    ]


def test_same_size_is_a_match_whatever_the_times() -> None:
    # LastModified of a replica is when it was written there: never compared.
    assert kinds([ObjectEntry("k", 5, OLD)], [ObjectEntry("k", 5, NOW)]) == []


def test_unicode_keys_in_utf8_byte_order_and_never_normalised() -> None:
    nfc = unicodedata.normalize("NFC", "café.txt")
    nfd = unicodedata.normalize("NFD", "café.txt")
    keys = ["a b.txt", "z", "é", "日本/ファイル", "\U0001f600 emoji", "\uffff", nfc, nfd]
    by_bytes = sorted(keys, key=lambda k: k.encode("utf-8"))
    assert sorted(keys) == by_bytes  # code-point order is UTF-8 byte order: the merge relies on it
    source = [ObjectEntry(k, 1, OLD) for k in by_bytes]
    replica = [ObjectEntry(k, 1, OLD) for k in by_bytes if k != nfd]
    # The decomposed spelling is a different S3 key: missing, even though it looks the same.
    assert kinds(source, replica) == [("missing", nfd)]


def test_a_listing_out_of_order_is_refused_not_misread() -> None:
    unsorted = [ObjectEntry("b", 1, OLD), ObjectEntry("a", 1, OLD)]
    with pytest.raises(UnsortedListing, match="not in S3 key order"):
        list(merge_diff(unsorted, []))
    with pytest.raises(UnsortedListing, match="replica"):
        list(merge_diff(objs("a"), [ObjectEntry("a", 1, OLD), ObjectEntry("a", 1, OLD)]))


key_sets = st.sets(st.text(alphabet=st.characters(codec="utf-8"), min_size=1, max_size=6), max_size=40)


@settings(max_examples=300, deadline=None)
@given(key_sets, key_sets, st.data())
def test_merge_equals_a_set_based_reference(src_keys: set[str], rep_keys: set[str], data: st.DataObject) -> None:
    sizes = {k: data.draw(st.integers(0, 2)) for k in src_keys | rep_keys}
    rep_sizes = {k: data.draw(st.integers(0, 2)) if k in src_keys else sizes[k] for k in rep_keys}
    source = [ObjectEntry(k, sizes[k], OLD) for k in sorted(src_keys, key=lambda k: k.encode())]
    replica = [ObjectEntry(k, rep_sizes[k], OLD) for k in sorted(rep_keys, key=lambda k: k.encode())]
    stats = MergeStats()
    diffs = list(merge_diff(source, replica, stats))
    got = {kind: {d.key for d in diffs if d.kind == kind} for kind in ("missing", "mismatched", "extra")}
    assert got["missing"] == src_keys - rep_keys
    assert got["extra"] == rep_keys - src_keys
    assert got["mismatched"] == {k for k in src_keys & rep_keys if sizes[k] != rep_sizes[k]}
    assert [d.key for d in diffs] == sorted(d.key for d in diffs)  # one pass: emitted in key order
    assert stats.source_objects == len(src_keys) and stats.replica_objects == len(rep_keys)


def test_lag_allowance_splits_overdue_from_in_flight_and_lag_is_the_oldest() -> None:
    source = [
        ObjectEntry("a-old-missing", 1, NOW - timedelta(hours=3)),
        ObjectEntry("b-old-resized", 2, NOW - timedelta(minutes=20)),
        ObjectEntry("c-ok", 3, NOW - timedelta(days=9)),
        ObjectEntry("d-young-missing", 4, NOW - timedelta(minutes=5)),
    ]
    replica = [ObjectEntry("b-old-resized", 1, NOW), ObjectEntry("c-ok", 3, NOW), ObjectEntry("zz-extra", 1, NOW)]
    r = compare(source, replica, now=NOW, allowance=timedelta(minutes=15), bucket="s", replica_bucket="d")
    assert r.missing == ["a-old-missing"] and r.mismatched == ["b-old-resized"] and r.in_flight == ["d-young-missing"]
    assert r.lag_s == 3 * 3600 and r.oldest_unreplicated == "a-old-missing"
    assert (r.checked, r.extra_count, r.replica_objects) == (4, 1, 3)
    assert not r.ok
    relaxed = compare(source, replica, now=NOW, allowance=timedelta(hours=4))
    assert relaxed.ok and relaxed.in_flight_count == 3 and relaxed.lag_s == 3 * 3600


def test_nothing_unreplicated_means_zero_lag_and_ok() -> None:
    r = compare(objs("a", "b"), objs("a", "b", "c"), now=NOW, allowance=timedelta(minutes=1))
    assert r.ok and r.lag_s == 0.0 and r.extra_count == 1 and r.oldest_unreplicated is None


def test_a_failed_object_is_never_in_flight_and_fails_the_check() -> None:
    young = NOW - timedelta(minutes=1)
    source = [ObjectEntry("a", 1, young), ObjectEntry("b", 1, young), ObjectEntry("c", 1, OLD)]
    tally = Tally(now=NOW, allowance=timedelta(minutes=15))
    stats = MergeStats()
    for d in merge_diff(source, [], stats):
        tally.add(d)
    r = tally.result("s", "d", stats, {"a": FAILED, "b": PENDING, "c": FAILED})
    assert r.failed == ["a", "c"] and r.in_flight == ["b"] and r.in_flight_count == 1
    assert r.missing == ["c"] and not r.ok
    assert r.statuses == {FAILED: 2, PENDING: 1} and r.heads == 3


def test_lists_are_capped_but_counts_exact_and_heads_capped() -> None:
    source = [ObjectEntry(f"k{i:05d}", 1, OLD) for i in range(500)]
    tally = Tally(now=NOW, allowance=timedelta(minutes=1), max_listed=50, max_heads=20)
    stats = MergeStats()
    offered = [c for d in merge_diff(source, [], stats) if (c := tally.add(d)) is not None]
    assert len(offered) == 20 and offered[0].key == "k00000"
    r = tally.result("s", "d", stats)
    assert r.missing_count == 500 and len(r.missing) == 50 and r.truncated and r.heads_capped
    doc = r.to_json()
    assert {
        "bucket",
        "replica_bucket",
        "missing",
        "mismatched",
        "failed",
        "lag_s",
        "in_flight",
        "extra_count",
        "checked",
        "truncated",
    } <= set(doc)
    assert doc["counts"]["missing"] == 500 and doc["truncated"] is True


def synthetic(n: int, *, skip_every: int = 0, resize_every: int = 0) -> Iterator[ObjectEntry]:
    """n keys generated one at a time (never a list), as a paginated listing would yield them."""
    for i in range(n):
        if skip_every and i % skip_every == 0:
            continue
        size = 2 if resize_every and i % resize_every == 1 else 1
        yield ObjectEntry(f"data/{i:09d}.bin", size, OLD)


def peak_bytes(n: int) -> int:
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        r = compare(
            synthetic(n),
            synthetic(n, skip_every=50, resize_every=97),
            now=NOW,
            allowance=timedelta(minutes=1),
            max_listed=100,
            max_heads=100,
        )
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert r.checked == n and r.missing_count == n // 50 and r.extra_count == 0
    assert r.in_flight_count == 0 and r.mismatched_count > n // 100
    return peak


def test_memory_is_flat_in_the_number_of_objects() -> None:
    small, large = peak_bytes(10_000), peak_bytes(100_000)
    # Ten times the objects: the peak must not grow with them (a dict of keys would be ~10x).
    assert large < small * 1.5 + 64 * 1024, (small, large)
