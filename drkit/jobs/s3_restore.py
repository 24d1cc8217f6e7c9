"""`drkit s3 restore`: bring a versioned bucket (or a prefix of it) back to how it was at a time T.

Two steps, so that the CLI can show the plan and ask before anything changes:

    plan = plan_restore(ctx, "acme-assets-prod", to_time, prefix="images/")   # reads only
    result = apply_restore(ctx, plan)                                          # copies + markers

The per-key decision is drkit/domain/s3restore.py; the S3 calls are drkit/aws/s3versions.py.
Nothing is ever deleted: a version is made current again by copying it on top, and a key that
should not exist gets a delete marker, so the restore itself can be undone the same way.

Refused (UsageError, exit 2, nothing changed): a time without a zone or in the future, an
unknown bucket, a bucket whose versioning was never enabled, a bucket whose versioning is
Suspended (a copy would then overwrite the "null" version, destroying it; `force=True`
accepts that), no versions under the prefix, and a time before the oldest version (nothing
is known about the bucket then; going ahead would hide every object).

Resumable: run it again with the same T and every key already restored is "unchanged". Why
a ledger and not only ETags: S3 gives SSE-KMS objects and multipart copies ETags that are not
the MD5 of their bytes, so a correct copy of such a version has a different ETag than its
source, and an ETag-only check would copy it again on every run, stacking duplicate versions.
The ledger (RestoreLedger, one JSON line per copy: key, source version, new version) says
exactly which current version is a copy of which; version ids never change, so it cannot go
stale. Equal ETag and size still count as "unchanged" (equal ETags do mean equal bytes), which
covers a lost ledger for plain objects. The one window left: a copy that succeeded just before
a SIGKILL, before its line was written, may be copied once more on the next run (a duplicate
version, never a lost one).
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import platformdirs

from drkit.aws.s3versions import COPY_LIMIT, DEFAULT_PART_SIZE, S3Versions
from drkit.aws.session import SessionFactory
from drkit.domain.s3restore import DELETE, RESTORE, UNCHANGED, Action, decide
from drkit.errors import DrkitError, UsageError
from drkit.jobs.context import Context

log = logging.getLogger("drkit.s3")

DEFAULT_CONCURRENCY = 8
SAMPLE_SIZE = 10
# Stop early when every one of the first changes failed (access denied, a KMS key gone, ...):
# the rest would fail the same way, one slow error at a time.
GIVE_UP_AFTER = 10


class RestoreLedger:
    """Which versions drkit created as restore copies, and of which version (append-only).

    One file per bucket under the user's state directory (beside the default catalog):
    `<state>/drkit/s3-restore/<bucket>.jsonl`, lines {"key", "source", "copy"}. Losing it
    only costs duplicate versions for SSE-KMS or multipart objects on a re-run, never data.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    @classmethod
    def for_bucket(cls, bucket: str) -> RestoreLedger:
        return cls(Path(platformdirs.user_state_dir("drkit")) / "s3-restore" / f"{bucket}.jsonl")

    def load(self) -> dict[str, dict[str, str]]:
        """key -> {copy version id: source version id}. A torn last line (a crash) is skipped."""
        copies: dict[str, dict[str, str]] = {}
        try:
            lines = self.path.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            return copies
        except OSError as exc:
            raise DrkitError(f"cannot read the restore ledger {self.path}: {exc}") from None
        for line in lines:
            try:
                row = json.loads(line)
                copies.setdefault(str(row["key"]), {})[str(row["copy"])] = str(row["source"])
            except (ValueError, KeyError, TypeError):
                log.warning("restore ledger %s: skipping an unreadable line", self.path)
        return copies

    def record(self, key: str, source: str, copy: str) -> None:
        """Append one copy (flushed at once, so a crash of drkit itself loses nothing)."""
        line = json.dumps({"key": key, "source": source, "copy": copy}, ensure_ascii=False)
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as f:
                f.write(line + "\n")


@dataclass
class RestorePlan:
    """What a restore of `bucket` (under `prefix`) to `to_time` would change, decided from S3."""

    bucket: str
    region: str
    prefix: str
    to_time: datetime
    versioning: str
    oldest: datetime
    keys: int
    changes: list[Action]  # restores and deletes, in key order
    unchanged: int
    api: S3Versions = field(repr=False, compare=False)
    ledger: RestoreLedger = field(repr=False, compare=False)
    # Destinations of enabled replication rules: the restore's copies and delete markers are
    # new writes, so they replicate there too (None: the configuration could not be read).
    replicas: list[str] | None = None

    @property
    def restores(self) -> int:
        return sum(1 for a in self.changes if a.kind == RESTORE)

    @property
    def deletes(self) -> int:
        return sum(1 for a in self.changes if a.kind == DELETE)

    def sample(self, n: int = SAMPLE_SIZE) -> list[Action]:
        return self.changes[:n]

    def to_dict(self) -> dict[str, Any]:
        return {
            "bucket": self.bucket,
            "region": self.region,
            "prefix": self.prefix,
            "to_time": self.to_time.isoformat(),
            "keys": self.keys,
            "restore": self.restores,
            "delete": self.deletes,
            "unchanged": self.unchanged,
            "replicas": self.replicas,
            "sample": [action_dict(a) for a in self.sample()],
        }


@dataclass
class RestoreResult:
    """What apply_restore did. `complete` is False when it stopped early (failures, Ctrl-C)."""

    restored: int = 0
    deleted: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)  # (key, one-line reason)
    complete: bool = True

    def to_dict(self) -> dict[str, Any]:
        return {
            "restored": self.restored,
            "deleted": self.deleted,
            "failed": [{"key": k, "error": e} for k, e in self.failed],
            "complete": self.complete,
        }


def action_dict(a: Action) -> dict[str, Any]:
    """One key's decision for people and scripts: from/to are version ids (None: absent)."""
    return {
        "key": a.key,
        "action": a.kind,
        "reason": a.reason,
        "from": None if a.current is None else a.current.version_id,
        "from_is_delete_marker": bool(a.current and a.current.delete_marker),
        "to": None if a.target is None or a.target.delete_marker else a.target.version_id,
    }


def plan_restore(
    ctx: Context,
    bucket: str,
    to_time: datetime,
    *,
    prefix: str = "",
    force: bool = False,
    factory: SessionFactory | None = None,
    ledger: RestoreLedger | None = None,
) -> RestorePlan:
    """Read the bucket's history and decide every key; change nothing. UsageError on bad input."""
    if to_time.tzinfo is None:
        raise UsageError(f"--to-time {to_time.isoformat()} has no time zone: add one, e.g. Z or +02:00")
    now = ctx.clock.now()
    if to_time > now:
        raise UsageError(
            f"--to-time {to_time.isoformat()} is in the future (it is {now.isoformat(timespec='seconds')}): "
            "pick a time that has happened"
        )
    api = S3Versions.for_bucket(factory or SessionFactory(), bucket)
    versioning = api.versioning()
    if versioning == "Disabled":
        raise UsageError(
            f"bucket {bucket} has never had versioning enabled: there is no history to go back to"
        )
    if versioning == "Suspended" and not force:
        raise UsageError(
            f"versioning on bucket {bucket} is Suspended: a restore copy would overwrite each key's "
            "\"null\" version and destroy it; enable versioning again (aws s3api put-bucket-versioning), "
            "or pass --force to accept that"
        )
    ledger = ledger or RestoreLedger.for_bucket(bucket)
    copies = ledger.load()
    changes: list[Action] = []
    keys = unchanged = 0
    oldest: datetime | None = None
    for key, history in api.histories(prefix):
        keys += 1
        first = min(e.last_modified for e in history)
        oldest = first if oldest is None else min(oldest, first)
        action = decide(key, history, to_time, copies.get(key, {}))
        if action.kind == UNCHANGED:
            unchanged += 1
        else:
            changes.append(action)
    where = f"s3://{bucket}/{prefix}"
    if oldest is None:
        raise UsageError(f"{where} has no object versions: nothing to restore (check --bucket and --prefix)")
    if to_time < oldest:
        raise UsageError(
            f"nothing is known before {oldest.isoformat()} (the oldest version in {where}); "
            f"restoring to {to_time.isoformat()} would hide every object: pick a --to-time at or after it"
        )
    return RestorePlan(
        bucket=bucket, region=api.region, prefix=prefix, to_time=to_time, versioning=versioning,
        oldest=oldest, keys=keys, changes=changes, unchanged=unchanged, api=api, ledger=ledger,
        replicas=_replicas(api),
    )


def _replicas(api: S3Versions) -> list[str] | None:
    """Where the bucket replicates to; None (not an error) when that cannot be read."""
    try:
        rules = api.replication_rules()
    except DrkitError as exc:
        log.warning("cannot read the replication configuration of %s: %s", api.bucket, exc)
        return None
    return sorted({str(r.get("Destination", {}).get("Bucket", "")) for r in rules if r.get("Status") == "Enabled"}
                  - {""})


def apply_restore(
    ctx: Context,
    plan: RestorePlan,
    *,
    concurrency: int = DEFAULT_CONCURRENCY,
    multipart_threshold: int = COPY_LIMIT,
    part_size: int = DEFAULT_PART_SIZE,
    progress: Callable[[int, int], None] | None = None,
) -> RestoreResult:
    """Make the plan's changes with at most `concurrency` calls in flight; audit what was done.

    A key that fails is reported and the rest go on; Ctrl-C stops submitting, lets the calls in
    flight finish (each is recorded in the ledger), audits the partial result, and re-raises.
    `progress(done, total)` is called after each key.
    """
    if concurrency < 1:
        raise UsageError(f"--concurrency must be at least 1, not {concurrency}")
    result = RestoreResult()

    def one(action: Action) -> str:
        if action.kind == DELETE:
            return plan.api.delete_marker(action.key)
        assert action.target is not None
        new = plan.api.copy_version(
            action.key, action.target.version_id, action.target.size,
            multipart_threshold=multipart_threshold, part_size=part_size,
        )
        if new != "null":  # a "null" copy (Suspended, --force) is overwritten by the next write
            plan.ledger.record(action.key, action.target.version_id, new)
        return new

    total = len(plan.changes)
    done = 0
    try:
        for action, outcome in _bounded(one, iter(plan.changes), concurrency):
            done += 1
            if isinstance(outcome, DrkitError):
                result.failed.append((action.key, str(outcome)))
                log.warning("%s", outcome)
            elif action.kind == RESTORE:
                result.restored += 1
            else:
                result.deleted += 1
            if progress:
                progress(done, total)
            if len(result.failed) >= GIVE_UP_AFTER and result.restored + result.deleted == 0:
                result.complete = False
                break
    except BaseException:
        result.complete = False
        _audit(ctx, plan, result)
        raise
    _audit(ctx, plan, result)
    return result


def _bounded(
    work: Callable[[Action], str], actions: Iterator[Action], limit: int
) -> Iterator[tuple[Action, str | DrkitError]]:
    """Run `work` over `actions` with at most `limit` in flight; yields (action, outcome) as done.

    Submitting lazily keeps memory at `limit` futures, whatever the number of keys; a
    DrkitError from one key is its outcome, anything else (a bug, Ctrl-C) propagates.
    """
    with ThreadPoolExecutor(max_workers=limit, thread_name_prefix="drkit-s3-restore") as pool:
        running: dict[Future[str], Action] = {}
        try:
            for action in actions:
                if len(running) >= limit:
                    yield from _collect(running, wait(running, return_when=FIRST_COMPLETED).done)
                running[pool.submit(work, action)] = action
            while running:
                yield from _collect(running, wait(running, return_when=FIRST_COMPLETED).done)
        finally:
            for future in running:
                future.cancel()  # not started yet: never started; running ones finish


def _collect(running: dict[Future[str], Action], finished: set[Future[str]]) -> Iterator[tuple[Action, Any]]:
    for future in finished:
        action = running.pop(future)
        try:
            yield action, future.result()
        except DrkitError as exc:
            yield action, exc


def _audit(ctx: Context, plan: RestorePlan, result: RestoreResult) -> None:
    ctx.catalog().audit(
        "s3-restore",
        plan.bucket,
        {
            "to_time": plan.to_time.isoformat(),
            "prefix": plan.prefix,
            "region": plan.region,
            "restored": result.restored,
            "deleted": result.deleted,
            "unchanged": plan.unchanged,
            "failed": len(result.failed),
            "failed_keys": [k for k, _ in result.failed[:20]],
            "complete": result.complete,
        },
    )
