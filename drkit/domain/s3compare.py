"""Source bucket against replica bucket: one streaming merge of two sorted listings.

ListObjectsV2 returns keys in UTF-8 binary order in every bucket. Python compares `str` by code
point, and code-point order is UTF-8 byte order for every valid string, so two listings can be
merged like two sorted files (a merge join): one pass, one object of each side in hand at a
time, memory flat in the number of objects. Keys are compared exactly as S3 returns them: never
normalised (NFC "é" and NFD "é" are two different S3 keys, and must stay two keys here).

What is compared is the SIZE only. ETags are not comparable across buckets: an SSE-KMS object's
ETag is not the MD5 of its bytes, a replica re-encrypted with another key gets another ETag, and
a multipart object's ETag depends on its part size. LastModified is not comparable either (a
replica's is when it was written in the replica region). So an overwrite that kept the size is
invisible to a listing comparison; S3's own replication status (HEAD, see `apply_statuses`) and
Replication Time Control metrics cover that case.

    diffs = merge_diff(source_entries, replica_entries)           # Iterator[Diff], sorted by key
    tally = Tally(now=now, allowance=timedelta(minutes=15))
    for d in diffs:
        tally.add(d)
    result = tally.result("acme-assets-prod", "acme-assets-prod-dr", statuses={...})

Pure: no boto3 and no clock; `now` is passed in.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from drkit.errors import DrkitError

DiffKind = Literal["missing", "mismatched", "extra"]

#: Each key list in a result holds at most this many keys (then `truncated` is set), so memory
#: stays flat however much is missing; the counts are always exact.
MAX_LISTED = 10_000
#: At most this many candidates (missing or mismatched keys) get a HEAD for their replication status.
MAX_HEADS = 1_000

# x-amz-replication-status on a SOURCE object (a replica says REPLICA). "NONE" is our word for
# no header at all: no replication rule covered the object when it was written (an object from
# before replication was set up, never backfilled), so it will never arrive by itself.
FAILED, PENDING, COMPLETED, NONE, GONE = "FAILED", "PENDING", "COMPLETED", "NONE", "GONE"


class UnsortedListing(DrkitError):
    """A listing went backwards: the endpoint does not return keys in S3's order, so no merge is possible."""


@dataclass(frozen=True, slots=True)
class ObjectEntry:
    """One current object version, as ListObjectsV2 reports it."""

    key: str
    size: int
    last_modified: datetime


@dataclass(frozen=True, slots=True)
class Diff:
    """A key on which the two listings disagree. `source` is None for `extra`, `replica` for `missing`."""

    kind: DiffKind
    key: str
    source: ObjectEntry | None
    replica: ObjectEntry | None


@dataclass(slots=True)
class MergeStats:
    """What the merge saw, filled in as it goes (the diffs alone do not say how much matched)."""

    source_objects: int = 0
    replica_objects: int = 0
    matched: int = 0


def _checked(entries: Iterable[ObjectEntry], side: str) -> Iterator[ObjectEntry]:
    """The entries, refusing any key that is not strictly after the one before it."""
    previous: str | None = None
    for entry in entries:
        if previous is not None and entry.key <= previous:
            raise UnsortedListing(
                f"the {side} listing is not in S3 key order ({entry.key!r} came after {previous!r}): "
                "this endpoint does not sort like S3, so drkit cannot compare it by listing"
            )
        previous = entry.key
        yield entry


def merge_diff(
    source: Iterable[ObjectEntry], replica: Iterable[ObjectEntry], stats: MergeStats | None = None
) -> Iterator[Diff]:
    """Every key on which two sorted listings disagree, in key order, in one pass.

    `missing`: in source, not in replica. `mismatched`: in both, sizes differ. `extra`: in the
    replica only. Both inputs must be strictly increasing by key (as S3 lists them); anything
    else raises UnsortedListing rather than give a wrong answer.
    """
    st = stats if stats is not None else MergeStats()
    src, rep = _checked(source, "source"), _checked(replica, "replica")
    s, r = next(src, None), next(rep, None)
    while s is not None and r is not None:
        if s.key == r.key:
            st.source_objects += 1
            st.replica_objects += 1
            if s.size != r.size:
                yield Diff("mismatched", s.key, s, r)
            else:
                st.matched += 1
            s, r = next(src, None), next(rep, None)
        elif s.key < r.key:
            st.source_objects += 1
            yield Diff("missing", s.key, s, None)
            s = next(src, None)
        else:
            st.replica_objects += 1
            yield Diff("extra", r.key, None, r)
            r = next(rep, None)
    while s is not None:
        st.source_objects += 1
        yield Diff("missing", s.key, s, None)
        s = next(src, None)
    while r is not None:
        st.replica_objects += 1
        yield Diff("extra", r.key, None, r)
        r = next(rep, None)


class _Capped:
    """A key list that stops growing at `cap` but keeps counting."""

    __slots__ = ("cap", "count", "keys")

    def __init__(self, cap: int) -> None:
        self.cap, self.count = cap, 0
        self.keys: list[str] = []

    def add(self, key: str) -> None:
        self.count += 1
        if len(self.keys) < self.cap:
            self.keys.append(key)

    def discard(self, key: str) -> None:
        """Uncount `key` (it was counted here); drop it from the list if it is listed."""
        self.count -= 1
        if key in self.keys:
            self.keys.remove(key)

    @property
    def truncated(self) -> bool:
        return self.count > len(self.keys)


@dataclass(frozen=True)
class Candidate:
    """A missing or mismatched key worth a HEAD (for its replication status)."""

    key: str
    kind: DiffKind
    in_flight: bool


@dataclass
class VerifyResult:
    """The comparison of a source bucket with its replica (CONTRACT.md: `s3 verify --output json`).

    `missing`/`mismatched` hold only keys older than the lag allowance (overdue); younger ones
    are `in_flight` (S3 is still replicating them), unless their status is FAILED, which never
    arrives. `failed` is checked for the first MAX_HEADS candidates only (`heads`, `heads_capped`).
    `lag_s`: age of the oldest source object not (yet) replicated, the storage RPO exposure.
    """

    bucket: str
    replica_bucket: str
    missing: list[str]
    mismatched: list[str]
    failed: list[str]
    in_flight: list[str]
    missing_count: int
    mismatched_count: int
    failed_count: int
    in_flight_count: int
    extra_count: int
    checked: int
    replica_objects: int
    lag_s: float
    oldest_unreplicated: str | None
    allowance_s: float
    truncated: bool
    statuses: dict[str, int] = field(default_factory=dict)
    heads: int = 0
    heads_capped: bool = False

    @property
    def ok(self) -> bool:
        """True when nothing is overdue and nothing FAILED (in-flight objects are fine)."""
        return self.missing_count == 0 and self.mismatched_count == 0 and self.failed_count == 0

    def summary(self) -> str:
        """One line for logs and alerts."""
        return (
            f"s3 verify {self.bucket} -> {self.replica_bucket}: {self.checked} checked, "
            f"{self.missing_count} missing, {self.mismatched_count} size mismatches, {self.failed_count} FAILED, "
            f"{self.in_flight_count} in flight, {self.extra_count} extra in the replica, lag {self.lag_s:.0f}s "
            f"(allowance {self.allowance_s:.0f}s)"
        )

    def to_json(self) -> dict[str, Any]:
        """The stable keys of CONTRACT.md, plus exact counts (the lists are capped at MAX_LISTED)."""
        return {
            "bucket": self.bucket,
            "replica_bucket": self.replica_bucket,
            "ok": self.ok,
            "missing": self.missing,
            "mismatched": self.mismatched,
            "failed": self.failed,
            "lag_s": self.lag_s,
            "in_flight": self.in_flight,
            "extra_count": self.extra_count,
            "checked": self.checked,
            "truncated": self.truncated,
            "counts": {
                "missing": self.missing_count,
                "mismatched": self.mismatched_count,
                "failed": self.failed_count,
                "in_flight": self.in_flight_count,
                "extra": self.extra_count,
                "replica_objects": self.replica_objects,
            },
            "oldest_unreplicated": self.oldest_unreplicated,
            "lag_allowance_s": self.allowance_s,
            "replication_status": dict(sorted(self.statuses.items())),
            "heads": self.heads,
            "heads_capped": self.heads_capped,
        }


class Tally:
    """Folds a stream of Diffs into a VerifyResult with bounded memory.

    `add` returns the Candidate when the diff is one (missing or mismatched) and there is still
    room for a HEAD (the first `max_heads`), so a caller can ask for its replication status
    while the merge goes on.
    """

    def __init__(
        self, *, now: datetime, allowance: timedelta, max_listed: int = MAX_LISTED, max_heads: int = MAX_HEADS
    ) -> None:
        self.now, self.allowance = now, allowance
        self.max_heads = max_heads
        self.missing, self.mismatched = _Capped(max_listed), _Capped(max_listed)
        self.in_flight = _Capped(max_listed)
        self.extra = 0
        self.candidates: list[Candidate] = []
        self.candidate_count = 0
        self.oldest: ObjectEntry | None = None

    def add(self, diff: Diff) -> Candidate | None:
        if diff.kind == "extra":
            self.extra += 1
            return None
        src = diff.source
        assert src is not None  # missing and mismatched always have a source object
        if self.oldest is None or src.last_modified < self.oldest.last_modified:
            self.oldest = src
        # Young objects are S3 still at work (RTC: 99.99% within 15 min), not a failure yet.
        in_flight = self.now - src.last_modified <= self.allowance
        if in_flight:
            self.in_flight.add(diff.key)
        elif diff.kind == "missing":
            self.missing.add(diff.key)
        else:
            self.mismatched.add(diff.key)
        self.candidate_count += 1
        if len(self.candidates) >= self.max_heads:
            return None
        candidate = Candidate(diff.key, diff.kind, in_flight)
        self.candidates.append(candidate)
        return candidate

    def result(
        self, bucket: str, replica_bucket: str, stats: MergeStats, statuses: Mapping[str, str] | None = None
    ) -> VerifyResult:
        """The result; `statuses` maps candidate keys to their replication status (from HEAD).

        A FAILED object never arrives by itself, so it is not "in flight" whatever its age.
        """
        statuses = statuses or {}
        counts: dict[str, int] = {}
        failed: list[str] = []
        for c in self.candidates:
            status = statuses.get(c.key)
            if status is None:
                continue
            counts[status] = counts.get(status, 0) + 1
            if status == FAILED:
                failed.append(c.key)
                if c.in_flight:
                    self.in_flight.discard(c.key)
        lag = 0.0 if self.oldest is None else max(0.0, (self.now - self.oldest.last_modified).total_seconds())
        lists = (self.missing, self.mismatched, self.in_flight)
        return VerifyResult(
            bucket=bucket,
            replica_bucket=replica_bucket,
            missing=list(self.missing.keys),
            mismatched=list(self.mismatched.keys),
            failed=failed,
            in_flight=list(self.in_flight.keys),
            missing_count=self.missing.count,
            mismatched_count=self.mismatched.count,
            failed_count=len(failed),
            in_flight_count=self.in_flight.count,
            extra_count=self.extra,
            checked=stats.source_objects,
            replica_objects=stats.replica_objects,
            lag_s=lag,
            oldest_unreplicated=self.oldest.key if self.oldest else None,
            allowance_s=self.allowance.total_seconds(),
            truncated=any(c.truncated for c in lists),
            statuses=counts,
            heads=sum(counts.values()),
            heads_capped=self.candidate_count > len(self.candidates),
        )


def compare(
    source: Iterable[ObjectEntry],
    replica: Iterable[ObjectEntry],
    *,
    now: datetime,
    allowance: timedelta,
    bucket: str = "source",
    replica_bucket: str = "replica",
    max_listed: int = MAX_LISTED,
    max_heads: int = MAX_HEADS,
) -> VerifyResult:
    """merge_diff + Tally without replication statuses (no HEADs): the pure comparison."""
    stats = MergeStats()
    tally = Tally(now=now, allowance=allowance, max_listed=max_listed, max_heads=max_heads)
    for diff in merge_diff(source, replica, stats):
        tally.add(diff)
    return tally.result(bucket, replica_bucket, stats)
