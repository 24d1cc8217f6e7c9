"""How the RDS adapter fails and retries: one-line errors, and backoff for the named codes.

botocore's standard retry mode (aws/session.py) already retries throttling and transient
errors on every call. What it does not retry is `SnapshotQuotaExceeded`: RDS answers it when
too many copies are in flight to one region (20) or the manual-snapshot quota is full, and it
clears as copies finish. That, and throttling that outlasted botocore's own attempts, get a
bounded second round here (exponential backoff with jitter), on the calls that create things
only; "already exists" afterwards is the caller's success, so a retry never duplicates.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import TypeVar

from botocore.exceptions import BotoCoreError, ClientError

from drkit.aws.rds_model import Snapshot
from drkit.errors import DrkitError

T = TypeVar("T")

QUOTA_CODES = frozenset({"SnapshotQuotaExceeded", "SnapshotQuotaExceededFault"})
THROTTLE_CODES = frozenset({"Throttling", "ThrottlingException", "RequestLimitExceeded"})
RETRY_CODES = QUOTA_CODES | THROTTLE_CODES
ACCESS_DENIED_CODES = frozenset(
    {"AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "AuthorizationError", "403"}
)


class SnapshotTimeout(DrkitError):
    """A snapshot was not available within the time allowed; the caller decides what next.

    `snapshot` is the last state seen (its status says how far it got); nothing was
    cancelled or deleted, so a later run can pick the same snapshot up again.
    """

    def __init__(self, snapshot: Snapshot, waited_s: float) -> None:
        self.snapshot = snapshot
        self.waited_s = waited_s
        super().__init__(
            f"{snapshot.kind} snapshot {snapshot.id} in {snapshot.region} still {snapshot.status} "
            f"after {_seconds(waited_s)}; it keeps going in AWS: wait longer or look again on the next run"
        )


def _seconds(value: float) -> str:
    return f"{value:.1f}s" if value < 10 else f"{value:.0f}s"


def code_of(exc: ClientError) -> str:
    """The error code, with every form of "access denied" (a bare 403 included) as AccessDenied."""
    code = str(exc.response.get("Error", {}).get("Code", ""))
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    if code in ACCESS_DENIED_CODES or status == 403:
        return "AccessDenied"
    return code


def message_of(exc: ClientError) -> str:
    """AWS's message squeezed onto one line (errors are one line: CONTRACT.md)."""
    text = " ".join(str(exc.response.get("Error", {}).get("Message", "")).split())
    return (text[:200] + "...") if len(text) > 200 else (text or code_of(exc))


def iam_action(exc: ClientError) -> str:
    """The IAM action a refused RDS call needed: for RDS it is "rds:" + the API operation."""
    return f"rds:{exc.operation_name}" if exc.operation_name else "the rds action"


def failure(exc: ClientError | BotoCoreError, doing: str, region: str) -> DrkitError:
    """One line that says what failed and what to do about it."""
    if isinstance(exc, BotoCoreError):
        return DrkitError(f"cannot reach RDS in {region} to {doing}: {exc}")
    code = code_of(exc)
    if code == "AccessDenied":
        return DrkitError(
            f"access denied: cannot {doing} in {region}; grant {iam_action(exc)} to drkit's role "
            "(`drkit iam-policy` prints all it needs)"
        )
    if code in ("KMSKeyNotAccessibleFault", "KMSKeyNotAccessible"):
        return DrkitError(
            f"cannot {doing}: the KMS key is not usable in {region} ({message_of(exc)}); check the key, "
            "its key policy and that drkit may kms:CreateGrant and kms:DescribeKey on it"
        )
    return DrkitError(f"cannot {doing} in {region}: {code}: {message_of(exc)}")


class Retrier:
    """Runs a call, retrying RETRY_CODES with exponential backoff and jitter, a bounded number of times.

    Sleep n (from 0) lasts between half and all of min(cap_s, base_s * 2**n): "equal jitter",
    so callers racing for the same quota spread out but never retry at once.
    """

    def __init__(
        self,
        sleep: Callable[[float], None],
        *,
        attempts: int = 5,
        base_s: float = 2.0,
        cap_s: float = 60.0,
        rng: random.Random | None = None,
    ) -> None:
        if attempts < 1:
            raise ValueError(f"retry attempts must be at least 1, not {attempts}")
        self.sleep = sleep
        self.attempts = attempts
        self.base_s = base_s
        self.cap_s = cap_s
        self._rng = rng or random.Random()

    def delay(self, retry: int) -> float:
        ceiling = min(self.cap_s, self.base_s * (2**retry))
        return ceiling / 2 + self._rng.uniform(0, ceiling / 2)

    def run(self, call: Callable[[], T], doing: str, region: str) -> T:
        """`call()`, retried on the named codes; any other ClientError is raised unchanged
        (so the caller can treat "already exists" as success); exhaustion is a DrkitError."""
        for attempt in range(self.attempts):
            try:
                return call()
            except ClientError as exc:
                code = code_of(exc)
                if code not in RETRY_CODES:
                    raise
                if attempt + 1 >= self.attempts:
                    raise _exhausted(exc, code, doing, region, self.attempts) from None
                self.sleep(self.delay(attempt))
        raise AssertionError("unreachable: the loop returns or raises")


def _exhausted(exc: ClientError, code: str, doing: str, region: str, attempts: int) -> DrkitError:
    if code in QUOTA_CODES:
        hint = (
            "too many snapshots in the region or copies in flight to it: prune old manual snapshots "
            "(drkit prune --apply), wait for copies to finish, or ask AWS for a higher quota; then run again"
        )
    else:
        hint = "AWS is throttling this account: run again later, or lower drkit's concurrency"
    return DrkitError(f"cannot {doing} in {region}: {code} after {attempts} attempts; {hint}")
