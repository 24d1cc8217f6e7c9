"""A drill as an ordered list of steps with guaranteed teardown, shared by every engine.

    select recovery point -> provision isolation -> restore -> verify -> measure -> teardown -> report

An engine supplies the work of each step (DrillEngine); this module supplies the order,
the timing, the resource ledger and the rule that teardown runs whatever happened before
it: on a failed step, on a failed check, on Ctrl-C and on SIGTERM (the CLI turns both into
an exception in the main thread). Every resource is recorded in the ledger *before* the
call that creates it, so a crash between "create" and "remember" cannot leak it silently.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from drkit.clock import Clock
from drkit.domain.objectives import measure_rpo, measure_rto, newest_data
from drkit.domain.report import CheckResult, DrillReport, Objective, RecoveryPointRef, Resources, StepResult

SELECT, PROVISION, RESTORE, VERIFY, MEASURE, TEARDOWN, REPORT = (
    "select recovery point",
    "provision isolation",
    "restore",
    "verify",
    "measure",
    "teardown",
    "report",
)
STEP_ORDER = (SELECT, PROVISION, RESTORE, VERIFY, MEASURE, TEARDOWN, REPORT)


class ResourceLedger:
    """What a drill created and what it removed; `leaked` is the difference."""

    def __init__(self) -> None:
        self.created: list[str] = []
        self.deleted: list[str] = []

    def creating(self, resource: str) -> None:
        if resource not in self.created:
            self.created.append(resource)

    def deleted_ok(self, resource: str) -> None:
        if resource not in self.deleted:
            self.deleted.append(resource)

    def outstanding(self) -> list[str]:
        return [r for r in self.created if r not in self.deleted]

    def to_resources(self, *, kept_on_purpose: bool = False) -> Resources:
        """Resources kept on purpose (`--keep`, `teardown: never`) are listed in the teardown
        step's detail, not as leaked: leaked means teardown tried and something survived."""
        leaked = () if kept_on_purpose else tuple(self.outstanding())
        return Resources(created=tuple(self.created), deleted=tuple(self.deleted), leaked=leaked)


@dataclass(frozen=True)
class Verification:
    """What the verify step found: check results and the data markers for RPO."""

    checks: tuple[CheckResult, ...]
    freshness: tuple[datetime | None, ...] = ()  # values of `freshness: true` checks and the heartbeat


class DrillEngine(Protocol):
    """The engine-specific work of each step. Each returns a one-line detail for the report."""

    name: str

    def select_recovery_point(self) -> RecoveryPointRef: ...

    def provision_isolation(self, ledger: ResourceLedger) -> str: ...

    def restore(self, point: RecoveryPointRef, ledger: ResourceLedger) -> str: ...

    def verify(self) -> Verification: ...

    def teardown(self, ledger: ResourceLedger) -> str: ...


@dataclass(frozen=True)
class DrillSpec:
    drill: str
    environment: str
    scenario: str
    rto_target: timedelta
    rpo_target: timedelta
    teardown: str = "always"  # always | on-success | never


@dataclass
class _Steps:
    clock: Clock
    on_event: Callable[[str, str, str], None]
    checkpoint: Callable[[], None]
    records: list[StepResult] = field(default_factory=list)

    @contextlib.contextmanager
    def run(self, name: str) -> Iterator[list[str]]:
        started = self.clock.now()
        self.checkpoint()
        self.on_event(name, "started", "")
        detail: list[str] = []
        try:
            yield detail
        except BaseException as exc:
            message = str(exc) or type(exc).__name__
            self.records.append(StepResult(name, started, self.clock.now(), "failed", message))
            self.on_event(name, "failed", message)
            raise
        text = "; ".join(d for d in detail if d)
        self.records.append(StepResult(name, started, self.clock.now(), "ok", text))
        self.on_event(name, "ok", text)

    def skip(self, name: str, reason: str) -> None:
        now = self.clock.now()
        self.records.append(StepResult(name, now, now, "skipped", reason))
        self.on_event(name, "skipped", reason)


def _status(failed: bool, checks: Sequence[CheckResult], rto: Objective, rpo: Objective) -> str:
    if failed or not checks or not all(c.passed for c in checks):
        return "failed"
    return "passed" if rto.met and rpo.met else "targets_missed"


def run_drill(
    spec: DrillSpec,
    engine: DrillEngine,
    clock: Clock,
    *,
    incident_at: datetime | None = None,
    keep: bool = False,
    shield: Callable[[], contextlib.AbstractContextManager[None]] = contextlib.nullcontext,
    on_event: Callable[[str, str, str], None] = lambda step, status, detail: None,
    checkpoint: Callable[[], None] = lambda: None,
) -> tuple[DrillReport, BaseException | None]:
    """Run every step; return the (unsigned) report and the exception that stopped the drill,
    if any (the caller decides the exit status; an interrupt is returned, not swallowed).

    `checkpoint` runs before each step and may raise (the CLI re-raises a signal there that
    arrived while some library swallowed the first raise); `shield` wraps teardown and the
    report so that a second Ctrl-C cannot abandon them."""
    started_at = clock.now()
    incident = incident_at or started_at
    steps = _Steps(clock, on_event, checkpoint)
    ledger = ResourceLedger()
    point: RecoveryPointRef | None = None
    verification = Verification(checks=())
    verified_at: datetime | None = None
    error: BaseException | None = None
    try:
        with steps.run(SELECT) as d:
            point = engine.select_recovery_point()
            d.append(f"{point.kind} {point.id} from {point.created_at.isoformat()}")
        with steps.run(PROVISION) as d:
            d.append(engine.provision_isolation(ledger))
        with steps.run(RESTORE) as d:
            d.append(engine.restore(point, ledger))
        with steps.run(VERIFY) as d:
            verification = engine.verify()
            passed = sum(c.passed for c in verification.checks)
            d.append(f"{passed}/{len(verification.checks)} checks passed")
            if passed == len(verification.checks) and verification.checks:
                verified_at = clock.now()
    except BaseException as exc:
        error = exc
    with shield():
        rto = measure_rto(incident, verified_at, spec.rto_target)
        rpo = measure_rpo(
            incident, newest_data(verification.freshness), point.created_at if point else None, spec.rpo_target
        )
        done = {r.name for r in steps.records}
        for name in (SELECT, PROVISION, RESTORE, VERIFY):
            if name not in done:
                steps.skip(name, "not reached: an earlier step failed")
        with contextlib.suppress(Exception), steps.run(MEASURE) as d:
            d.append(_describe(rto, "RTO") + "; " + _describe(rpo, "RPO"))
        failed = error is not None or not all(c.passed for c in verification.checks)
        policy = "never" if keep else spec.teardown
        kept = policy == "never" or (policy == "on-success" and failed)
        if kept:
            steps.skip(
                TEARDOWN,
                f"teardown: {policy}{' (--keep)' if keep else ''}; kept on purpose: "
                + (", ".join(ledger.outstanding()) or "nothing"),
            )
        else:
            try:
                with steps.run(TEARDOWN) as d:
                    d.append(engine.teardown(ledger))
            except BaseException as exc:
                error = error or exc
        status = _status(error is not None, verification.checks, rto, rpo)
        report = DrillReport(
            drill=spec.drill,
            environment=spec.environment,
            scenario=spec.scenario,
            engine=engine.name,
            status=status,
            incident_at=incident,
            started_at=started_at,
            recovered_at=verified_at,
            finished_at=clock.now(),
            recovery_point=point,
            rto=rto,
            rpo=rpo,
            steps=tuple(steps.records),
            checks=verification.checks,
            resources=ledger.to_resources(kept_on_purpose=kept),
        )
    return report, error


def _describe(obj: Objective, label: str) -> str:
    if obj.achieved_s is None:
        return f"{label} not achieved (target {obj.target_s:.0f}s)"
    verdict = "met" if obj.met else "MISSED"
    return f"{label} {obj.achieved_s:.1f}s vs target {obj.target_s:.0f}s: {verdict}"
