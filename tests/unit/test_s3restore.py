"""The point-in-time restore decision for one key (drkit/domain/s3restore.py), case by case, and a
property: applying the decided actions to a simulated versioned bucket yields exactly its state at T,
keeps every version, and a second run decides nothing more."""

from __future__ import annotations

import hashlib
import itertools
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drkit.domain.s3restore import DELETE, RESTORE, UNCHANGED, Entry, current_of, decide, same_content, state_at

BASE = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def at(minutes: float) -> datetime:
    return BASE + timedelta(minutes=minutes)


def md5(content: bytes) -> str:
    return f'"{hashlib.md5(content).hexdigest()}"'


def v(vid: str, minutes: float, content: bytes = b"", *, latest: bool = False, etag: str | None = None) -> Entry:
    return Entry(vid, at(minutes), latest, False, md5(content) if etag is None else etag, len(content))


def dm(vid: str, minutes: float, *, latest: bool = False) -> Entry:
    return Entry(vid, at(minutes), latest, True)


# -- one key, every case ---------------------------------------------------------------------------


def test_a_key_created_after_t_gets_a_delete_marker() -> None:
    history = [v("v1", 10, b"new", latest=True)]
    action = decide("k", history, at(5))
    assert (action.kind, action.target, action.current) == (DELETE, None, history[0])
    assert action.reason == "created after T"


def test_a_key_deleted_at_t_that_exists_now_gets_a_delete_marker() -> None:
    history = [v("v3", 30, b"back", latest=True), dm("d2", 20), v("v1", 10, b"old")]
    action = decide("k", history, at(25))
    assert action.kind == DELETE and action.target == history[1] and action.reason == "deleted at T"


@pytest.mark.parametrize(
    "history",
    [
        [dm("d2", 20, latest=True), v("v1", 10, b"x")],  # deleted before T, still deleted
        [dm("d3", 30, latest=True), v("v2", 20, b"x")],  # created and deleted after T
    ],
    ids=["deleted-before-t", "created-and-deleted-after-t"],
)
def test_a_key_absent_at_t_and_now_is_left_alone(history: list[Entry]) -> None:
    t = 25 if history[1].version_id == "v1" else 15
    action = decide("k", history, at(t))
    assert action.kind == UNCHANGED and action.reason == "absent at T and now"


def test_a_key_unchanged_since_t_is_left_alone() -> None:
    history = [v("v2", 20, b"b", latest=True), v("v1", 10, b"a")]
    action = decide("k", history, at(25))
    assert action.kind == UNCHANGED and action.target == action.current == history[0]


def test_a_key_changed_after_t_gets_the_version_of_t_copied_on_top() -> None:
    history = [v("v3", 30, b"c", latest=True), v("v2", 20, b"b"), v("v1", 10, b"a")]
    action = decide("k", history, at(25))
    assert action.kind == RESTORE and action.target is not None and action.target.version_id == "v2"
    assert action.current is not None and action.current.version_id == "v3"
    assert action.reason == "changed after T"


def test_a_key_deleted_after_t_is_restored_from_its_version_at_t() -> None:
    history = [dm("d3", 30, latest=True), v("v2", 20, b"b"), v("v1", 10, b"a")]
    action = decide("k", history, at(15))
    assert action.kind == RESTORE and action.target is not None and action.target.version_id == "v1"
    assert action.reason == "deleted after T"


def test_a_recreated_key_follows_its_history_at_every_t() -> None:
    history = [v("v3", 30, b"again", latest=True), dm("d2", 20), v("v1", 10, b"first")]
    assert decide("k", history, at(5)).kind == DELETE  # before it existed
    restore = decide("k", history, at(15))
    assert restore.kind == RESTORE and restore.target is not None and restore.target.version_id == "v1"
    assert decide("k", history, at(25)).kind == DELETE  # it was deleted then
    assert decide("k", history, at(35)).kind == UNCHANGED


def test_t_equal_to_a_versions_time_includes_that_version() -> None:
    history = [v("v2", 20, b"b", latest=True), v("v1", 10, b"a")]
    assert state_at(history, at(20)) == history[0]
    assert state_at(history, at(20) - timedelta(milliseconds=1)) == history[1]
    assert state_at(history, at(10) - timedelta(milliseconds=1)) is None


def test_a_version_copied_by_drkit_from_the_version_at_t_counts_as_already_restored() -> None:
    # An SSE-KMS copy: S3 gives it an ETag unlike its source's, so only the ledger can tell.
    history = [v("c4", 40, b"a", latest=True, etag='"kms-random-1"'), v("v3", 30, b"c"), v("v1", 10, b"a")]
    assert decide("k", history, at(15)).kind == RESTORE  # without the ledger: copied again
    action = decide("k", history, at(15), {"c4": "v1"})
    assert action.kind == UNCHANGED and action.reason == "already restored"
    # The ledger says c4 is a copy of a different version: that is not T's content.
    assert decide("k", history, at(15), {"c4": "v3"}).kind == RESTORE


def test_equal_etag_and_size_mean_the_content_of_t_is_already_current() -> None:
    history = [v("v3", 30, b"a", latest=True), v("v2", 20, b"b"), v("v1", 10, b"a")]
    action = decide("k", history, at(15))
    assert action.kind == UNCHANGED and action.reason == "same content as at T"


def test_same_content_needs_an_etag_and_an_equal_size() -> None:
    assert same_content(v("a", 1, b"x"), v("b", 2, b"x"))
    assert not same_content(v("a", 1, b"x"), v("b", 2, b"y"))
    assert not same_content(Entry("a", at(1), False, etag="", size=1), Entry("b", at(2), False, etag="", size=1))
    assert not same_content(Entry("a", at(1), False, etag='"e"', size=1), Entry("b", at(2), False, etag='"e"', size=2))


def test_the_current_entry_is_the_one_marked_latest_else_the_first() -> None:
    history = [v("v2", 20, b"b", latest=True), v("v1", 10, b"a")]
    assert current_of(history) == history[0]
    assert current_of([v("v2", 20), v("v1", 10)]).version_id == "v2"  # type: ignore[union-attr]
    assert current_of([]) is None
    assert decide("k", [], at(10)).kind == UNCHANGED


def test_entries_with_the_same_time_are_taken_in_the_order_given() -> None:
    history = [v("v2", 20, b"b", latest=True), v("v1", 20, b"a")]
    assert state_at(history, at(20)) == history[0]


def test_times_without_a_zone_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        decide("k", [v("v1", 10, latest=True)], datetime(2026, 3, 1, 12, 30))
    with pytest.raises(ValueError, match="timezone-aware"):
        Entry("v1", datetime(2026, 3, 1), True)


# -- a simulated bucket ----------------------------------------------------------------------------


@dataclass
class SimKey:
    """One key of a versioned bucket: its event log (the truth) and its history (what S3 lists)."""

    events: list[tuple[datetime, bytes | None]] = field(default_factory=list)  # None: deleted
    history: list[tuple[Entry, bytes | None]] = field(default_factory=list)  # newest first

    def write(self, when: datetime, content: bytes | None, vid: str, etag: str | None = None) -> None:
        self.events.append((when, content))
        self.history = [(Entry(e.version_id, e.last_modified, False, e.delete_marker, e.etag, e.size), c)
                        for e, c in self.history]
        if content is None:
            entry = Entry(vid, when, True, True)
        else:
            entry = Entry(vid, when, True, False, md5(content) if etag is None else etag, len(content))
        self.history.insert(0, (entry, content))

    def entries(self) -> list[Entry]:
        return [e for e, _ in self.history]

    def content_of(self, vid: str) -> bytes | None:
        return next(c for e, c in self.history if e.version_id == vid)

    def truth_at(self, t: datetime) -> bytes | None:
        """What a reader saw at t, replayed from the event log (independent of state_at)."""
        seen: bytes | None = None
        for when, content in self.events:
            if when <= t:
                seen = content
        return seen

    def now(self) -> bytes | None:
        return self.history[0][1] if self.history else None


_ids = itertools.count()


def apply(bucket: dict[str, SimKey], t: datetime, when: datetime, ledger: dict[str, dict[str, str]],
          *, kms_etags: bool) -> list[str]:
    """Decide every key and do what was decided, as the job does; the kinds of action taken."""
    kinds = []
    for key, sim in bucket.items():
        action = decide(key, sim.entries(), t, ledger.get(key, {}))
        kinds.append(action.kind)
        if action.kind == RESTORE:
            assert action.target is not None
            new = f"c{next(_ids)}"
            # Like S3 for SSE-KMS: a copy's ETag is not the MD5 of its bytes.
            sim.write(when, sim.content_of(action.target.version_id), new,
                      etag=f'"kms-{new}"' if kms_etags else None)
            ledger.setdefault(key, {})[new] = action.target.version_id
        elif action.kind == DELETE:
            sim.write(when, None, f"d{next(_ids)}")
    return kinds


event = st.one_of(st.none(), st.sampled_from([b"a", b"b", b"c", b"dd"]))
bucket_events = st.dictionaries(
    st.sampled_from(["k1", "k2", "dir/k3", "dir/k 4", "ü"]),
    st.lists(st.tuples(st.integers(1, 30), event), min_size=1, max_size=8),
    min_size=1,
)


def build(spec: dict[str, list[tuple[int, bytes | None]]]) -> dict[str, SimKey]:
    bucket: dict[str, SimKey] = {}
    for key, events in spec.items():
        sim = SimKey()
        minute = 0
        for gap, content in events:
            minute += gap
            sim.write(at(minute), content, f"v{next(_ids)}")
        bucket[key] = sim
    return bucket


@settings(max_examples=300, deadline=None)
@given(spec=bucket_events, t_minute=st.integers(-5, 250), kms_etags=st.booleans())
def test_applying_the_decisions_yields_exactly_the_state_at_t_and_a_rerun_is_a_no_op(
    spec: dict[str, list[tuple[int, bytes | None]]], t_minute: int, kms_etags: bool
) -> None:
    bucket = build(spec)
    t, now = at(t_minute), at(1000)
    before = {key: sim.entries() for key, sim in bucket.items()}
    ledger: dict[str, dict[str, str]] = {}

    apply(bucket, t, now, ledger, kms_etags=kms_etags)

    for key, sim in bucket.items():
        assert sim.now() == sim.truth_at(t), key
        # Nothing was removed: the old history is still there, under at most one new entry.
        old = [(e.version_id, e.last_modified, e.delete_marker) for e in before[key]]
        new = [(e.version_id, e.last_modified, e.delete_marker) for e in sim.entries()]
        assert new[len(new) - len(old):] == old and len(new) - len(old) <= 1
    # Run again (later, same T): nothing more to do, and nothing is written.
    sizes = {key: len(sim.history) for key, sim in bucket.items()}
    assert set(apply(bucket, t, at(2000), ledger, kms_etags=kms_etags)) == {UNCHANGED}
    assert {key: len(sim.history) for key, sim in bucket.items()} == sizes


@settings(max_examples=100, deadline=None)
@given(spec=bucket_events, t_minute=st.integers(-5, 250))
def test_with_plain_etags_a_rerun_is_a_no_op_even_without_the_ledger(
    spec: dict[str, list[tuple[int, bytes | None]]], t_minute: int
) -> None:
    bucket = build(spec)
    t = at(t_minute)
    apply(bucket, t, at(1000), {}, kms_etags=False)
    assert set(apply(bucket, t, at(2000), {}, kms_etags=False)) == {UNCHANGED}


def test_without_the_ledger_kms_copies_would_be_copied_again() -> None:
    """Why the ledger exists: the ETag check alone stacks a duplicate version on every run."""
    bucket = build({"k": [(1, b"a"), (5, b"b")]})
    apply(bucket, at(3), at(1000), {}, kms_etags=True)
    assert bucket["k"].now() == b"a"
    assert apply(bucket, at(3), at(2000), {}, kms_etags=True) == [RESTORE]
