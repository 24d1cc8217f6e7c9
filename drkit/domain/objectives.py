"""RTO and RPO from timestamps, as CONTRACT.md defines them.

RTO = from the incident until the restored copy passes every check.
RPO = the incident minus the newest data found in the restored copy (a freshness check or
drkit's heartbeat: method "data"); without a data marker, minus the recovery point's own
time (method "metadata"), which is optimistic about what the copy holds.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from drkit.domain.report import Objective


def measure_rto(incident_at: datetime, verified_at: datetime | None, target: timedelta) -> Objective:
    """`verified_at` None means the copy never passed its checks: RTO not achieved."""
    if verified_at is None:
        return Objective(target_s=target.total_seconds(), achieved_s=None, met=False)
    achieved = (verified_at - incident_at).total_seconds()
    return Objective(
        target_s=target.total_seconds(), achieved_s=round(achieved, 3), met=achieved <= target.total_seconds()
    )


def newest_data(markers: Iterable[datetime | None]) -> datetime | None:
    """The newest of the data markers found (freshness checks, heartbeat), ignoring missing ones."""
    found = [m for m in markers if m is not None]
    return max(found) if found else None


def measure_rpo(
    incident_at: datetime, newest_data_at: datetime | None, recovery_point_at: datetime | None, target: timedelta
) -> Objective:
    if newest_data_at is not None:
        reference, method = newest_data_at, "data"
    elif recovery_point_at is not None:
        reference, method = recovery_point_at, "metadata"
    else:
        return Objective(target_s=target.total_seconds(), achieved_s=None, met=False, method=None)
    # Data newer than the incident (clock skew, or writes after a declared incident time)
    # means nothing was lost: RPO is zero, not negative.
    achieved = max(0.0, (incident_at - reference).total_seconds())
    return Objective(
        target_s=target.total_seconds(),
        achieved_s=round(achieved, 3),
        met=achieved <= target.total_seconds(),
        method=method,
    )
