"""S3 replication jobs: `drkit s3 verify` and the scheduler's `s3-verify` job.

verify compares a configured bucket with its replica in ONE streaming pass: both listings are
fetched at the same time (each paginator in its own thread, drkit.aws.s3list) and merged by key
(drkit.domain.s3compare), so memory is flat in the number of objects. Sizes are compared, not
ETags (not comparable across SSE-KMS, re-encryption and multipart; see s3compare). Missing or
mismatched keys (the first MAX_HEADS of them) get a HEAD on the source object, in a small thread
pool while the merge goes on, for S3's own verdict: x-amz-replication-status FAILED, PENDING,
COMPLETED, or none at all (no rule covered the object: it needs a backfill).

    result = verify(ctx, "production", "assets", lag_allowance=None)   # None: the default below
    result.ok, result.lag_s, result.to_json()

The lag allowance (how old a missing object may be before it counts as missing rather than "in
flight") defaults to 15 minutes when Replication Time Control is on (its SLA), else the
schedule's RPO target.

The scheduler calls `verify_bucket(ctx, schedule, resource)` on `verify.cron`. It has no Metrics
object at hand (the registry's job signature is (ctx, schedule, resource)), so it logs the
summary line and raises DrkitError when the check fails; the scheduler records the failed run
(drkit_job_runs_total{kind="s3-verify",status="failed"}) and alerts. Code that does hold a
Metrics object calls `export_metrics(metrics, result)` for the detailed gauges.
"""

from __future__ import annotations

import logging
import weakref
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from drkit.domain.s3compare import MAX_HEADS, MergeStats, Tally, VerifyResult, merge_diff
from drkit.errors import DrkitError, UsageError

if TYPE_CHECKING:
    from drkit.aws.session import SessionFactory
    from drkit.config.schedule import S3Resource, Schedule
    from drkit.jobs.context import Context
    from drkit.metrics import Metrics

log = logging.getLogger("drkit.s3")

RTC_ALLOWANCE = timedelta(minutes=15)  # S3 RTC: 99.99% of objects replicated within 15 minutes
HEAD_CONCURRENCY = 8  # below botocore's 10 pooled connections per client, with the listing thread


@dataclass(frozen=True)
class S3Target:
    """A configured bucket pair, with its schedule, regions and lag allowance resolved."""

    schedule: str
    resource: S3Resource
    source_region: str
    replica_region: str
    default_allowance: timedelta


VERIFY_ACTION = "s3-verify"  # audit-log action of each verification (its measured lag)

def default_allowance(sched: Schedule, res: S3Resource) -> timedelta:
    """15m with Replication Time Control (its SLA), else the schedule's RPO target."""
    return RTC_ALLOWANCE if res.replication_time_control else sched.targets.rpo


def find_target(ctx: Context, name: str, schedule: str | None = None) -> S3Target:
    """The s3 resource `name` (in `schedule`, or in whichever single schedule defines it)."""
    cfg = ctx.config()
    names = [schedule] if schedule is not None else sorted(cfg.schedules)
    found = [(s, r) for s in names for r in cfg.schedule(s).s3 if r.name == name]
    if not found:
        where = f"schedule {schedule}" if schedule else "any schedule"
        have = sorted({f"{s}/{r.name}" for s in names for r in cfg.schedule(s).s3}) or ["none"]
        raise UsageError(f"no s3 resource named {name!r} in {where} (have: {', '.join(have)})")
    if len(found) > 1:
        raise UsageError(
            f"s3 resource {name!r} is in several schedules ({', '.join(s for s, _ in found)}): name one with --schedule"
        )
    sched_name, res = found[0]
    sched = cfg.schedule(sched_name)
    if sched.aws is None or res.region is None:  # the config validator already refuses both
        raise UsageError(f"schedules/{sched_name}.yaml: s3 {name} needs aws.region and a replica region")
    return S3Target(sched_name, res, str(sched.aws.region), str(res.region), default_allowance(sched, res))


def verify(
    ctx: Context,
    schedule: str | None,
    name: str,
    *,
    lag_allowance: timedelta | None,
    factory: SessionFactory | None = None,
    max_heads: int = MAX_HEADS,
) -> VerifyResult:
    """Compare bucket and replica of s3 resource `name`; see the module docstring.

    `schedule` None: the one schedule that defines `name`. `factory` defaults to the schedule's
    (SessionFactory.from_schedule). Raises DrkitError (one line) if a bucket cannot be listed.
    """
    from drkit.aws.s3list import fast_listing_client, prefetched, replication_status
    from drkit.aws.session import SessionFactory

    target = find_target(ctx, name, schedule)
    res = target.resource
    allowance = target.default_allowance if lag_allowance is None else lag_allowance
    if factory is None:
        factory = SessionFactory.from_schedule(ctx.config().schedule(target.schedule))
    src_client = fast_listing_client(factory.client("s3", region=target.source_region))
    dst_client = fast_listing_client(factory.client("s3", region=target.replica_region))
    bucket, replica = str(res.bucket), str(res.replica_bucket)
    # One "now" for the whole comparison: ages are measured from when the listing started.
    tally = Tally(now=ctx.clock.now(), allowance=allowance, max_heads=max_heads)
    stats = MergeStats()
    heads: dict[str, Future[str]] = {}
    pool = ThreadPoolExecutor(max_workers=HEAD_CONCURRENCY, thread_name_prefix="drkit-head")
    try:
        with (
            prefetched(src_client, bucket, region=target.source_region) as src,
            prefetched(dst_client, replica, region=target.replica_region) as dst,
        ):
            for diff in merge_diff(src, dst, stats):
                candidate = tally.add(diff)
                if candidate is not None:
                    heads[candidate.key] = pool.submit(
                        replication_status, src_client, bucket, candidate.key, region=target.source_region
                    )
        statuses = {key: future.result() for key, future in heads.items()}
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    result = tally.result(bucket, replica, stats, statuses)
    log.debug("%s", result.summary())  # the CLI prints it; the scheduler's job logs it (below)
    # The measured lag is the storage RPO exposure: `drkit posture --with-aws` reads the newest one.
    ctx.catalog().audit(VERIFY_ACTION, str(res.name), {
        "schedule": target.schedule, "bucket": bucket, "replica_bucket": replica, "ok": result.ok,
        "lag_s": result.lag_s, "missing": len(result.missing), "mismatched": len(result.mismatched),
        "failed": len(result.failed), "measured_at": tally.now.isoformat(),
    })
    return result


def verify_bucket(ctx: Context, schedule: str, resource: str) -> None:
    """The scheduler's s3-verify job: verify, log, export the figures to the service's /metrics
    (the service hands its Metrics in as ctx.cache["metrics"]), and raise DrkitError if it failed."""
    result = verify(ctx, schedule, resource, lag_allowance=None)
    if ctx.cache.get("metrics") is not None:
        export_metrics(ctx.cache["metrics"], result)
    if not result.ok:
        log.warning("%s", result.summary())
        raise DrkitError(failure_line(result))
    log.info("%s", result.summary())


def failure_line(result: VerifyResult) -> str:
    """What is wrong with a failed verification, on one line, with a sample key."""
    parts = []
    if result.failed_count:
        parts.append(f"{result.failed_count} object(s) FAILED to replicate (e.g. {result.failed[0]!r})")
    if result.missing_count:
        parts.append(f"{result.missing_count} missing beyond the allowance (e.g. {result.missing[0]!r})")
    if result.mismatched_count:
        parts.append(f"{result.mismatched_count} size mismatch(es) (e.g. {result.mismatched[0]!r})")
    return (
        f"s3 replica s3://{result.replica_bucket} of s3://{result.bucket}: "
        + "; ".join(parts)
        + f"; lag {result.lag_s:.0f}s: check the replication rule and the KMS permissions of the replication role"
    )


# One set of gauges per Metrics object: prometheus_client refuses to register a name twice in a
# registry, and drkit.metrics.Metrics has no S3 gauges of its own.
_GAUGES: weakref.WeakKeyDictionary[Any, tuple[Any, Any]] = weakref.WeakKeyDictionary()


def export_metrics(metrics: Metrics, result: VerifyResult) -> None:
    """Set the S3 replication gauges in `metrics`' registry from one verification.

    drkit_s3_replication_lag_seconds{bucket,replica_bucket}        the storage RPO exposure
    drkit_s3_objects{bucket,replica_bucket,state}                  checked, missing, mismatched,
                                                                  failed, in_flight, extra
    """
    from prometheus_client import Gauge

    if metrics not in _GAUGES:
        labels = ["bucket", "replica_bucket"]
        _GAUGES[metrics] = (
            Gauge(
                "drkit_s3_replication_lag_seconds",
                "Age of the oldest source object not yet replicated",
                labels,
                registry=metrics.registry,
            ),
            Gauge("drkit_s3_objects", "Objects by verification state", [*labels, "state"], registry=metrics.registry),
        )
    lag, objects = _GAUGES[metrics]
    lag.labels(result.bucket, result.replica_bucket).set(result.lag_s)
    states = {
        "checked": result.checked,
        "missing": result.missing_count,
        "mismatched": result.mismatched_count,
        "failed": result.failed_count,
        "in_flight": result.in_flight_count,
        "extra": result.extra_count,
    }
    for state, value in states.items():
        objects.labels(result.bucket, result.replica_bucket, state).set(value)
