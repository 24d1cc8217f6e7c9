"""Point-in-time restore of a versioned S3 bucket: what to do to one key, decided from its history.

Pure (no boto3): the adapter (drkit/aws/s3versions.py) lists the history, the job
(drkit/jobs/s3_restore.py) applies what is decided here. The rule, for each key and a time T:

- the state at T is the newest entry (version or delete marker) with LastModified <= T; none
  means the key did not exist yet;
- the current state is the entry S3 marks IsLatest;
- a version at T that is not current now is made current again by COPYING it on top
  ("restore"), so every later version stays in the history;
- a key absent at T (not created yet, or a delete marker) that exists now gets a delete
  marker ("delete"), which hides it without removing any version;
- everything else is left alone ("unchanged"): already absent, or already showing T's content.

"Already showing T's content" is what makes a second run a no-op (the job is resumable and
must never stack duplicate versions). It holds when the current version IS the version at T,
or when drkit's ledger says the current version was copied from it (exact: version ids are
immutable), or when both have the same ETag and size. The ETag test is sufficient but not
necessary: equal ETags mean equal bytes, but S3 gives SSE-KMS objects and multipart copies
ETags that are not the MD5 of the data, so a copy of such a version has a different ETag from
its source. That is why the ledger exists; the ETag test only covers a lost ledger (or content
that someone re-uploaded unchanged, where no new version is needed either).

Ordering: the history must be newest first, as ListObjectVersions returns it. S3 stamps
LastModified in milliseconds; two entries of one key with the same stamp are taken in the
order given.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Final, Literal

ActionKind = Literal["restore", "delete", "unchanged"]
RESTORE: Final = "restore"
DELETE: Final = "delete"
UNCHANGED: Final = "unchanged"


@dataclass(frozen=True)
class Entry:
    """One version or delete marker of a key, as ListObjectVersions describes it."""

    version_id: str
    last_modified: datetime
    is_latest: bool
    delete_marker: bool = False
    etag: str = ""
    size: int = 0

    def __post_init__(self) -> None:
        if self.last_modified.tzinfo is None:
            raise ValueError(f"version {self.version_id}: last_modified must be timezone-aware")


@dataclass(frozen=True)
class Action:
    """What to do to one key: `kind`, from `current` to `target` (either may be None: absent)."""

    key: str
    kind: ActionKind
    current: Entry | None
    target: Entry | None
    reason: str


def state_at(history: Sequence[Entry], at: datetime) -> Entry | None:
    """The entry that was current at `at`: the first (newest) with last_modified <= at."""
    _aware(at)
    for entry in history:
        if entry.last_modified <= at:
            return entry
    return None


def current_of(history: Sequence[Entry]) -> Entry | None:
    """The entry S3 marks as latest (the first one, if none is marked: S3 lists it first)."""
    for entry in history:
        if entry.is_latest:
            return entry
    return history[0] if history else None


def same_content(a: Entry, b: Entry) -> bool:
    """Equal ETag and size: the same bytes (see the module docstring for why not the converse)."""
    return bool(a.etag) and a.etag == b.etag and a.size == b.size


def decide(
    key: str, history: Sequence[Entry], to_time: datetime, copied_from: Mapping[str, str] | None = None
) -> Action:
    """The action that makes `key` show its state at `to_time`, keeping every version.

    `copied_from` maps version ids of this key that drkit created by a restore copy to the
    version id each was copied from (the ledger); it may be empty.
    """
    target = state_at(history, to_time)
    current = current_of(history)
    absent_at_t = target is None or target.delete_marker
    absent_now = current is None or current.delete_marker
    if absent_at_t:
        if absent_now:
            return Action(key, UNCHANGED, current, target, "absent at T and now")
        why = "created after T" if target is None else "deleted at T"
        return Action(key, DELETE, current, target, why)
    assert target is not None  # for mypy: absent_at_t covers None
    if current is None or current.delete_marker:
        return Action(key, RESTORE, current, target, "deleted after T")
    if current.version_id == target.version_id:
        return Action(key, UNCHANGED, current, target, "unchanged since T")
    if (copied_from or {}).get(current.version_id) == target.version_id:
        return Action(key, UNCHANGED, current, target, "already restored")
    if same_content(current, target):
        return Action(key, UNCHANGED, current, target, "same content as at T")
    return Action(key, RESTORE, current, target, "changed after T")


def _aware(at: datetime) -> None:
    if at.tzinfo is None:
        raise ValueError("the restore time must be timezone-aware")
