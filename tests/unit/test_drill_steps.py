"""The shared drill steps: order, status, RTO/RPO, and teardown that always runs.

The engine here is a small in-memory stand-in (the domain is pure); the real engine is
exercised against PostgreSQL in tests/pg and tests/e2e.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from drkit.clock import FakeClock
from drkit.domain.drill import STEP_ORDER, DrillSpec, ResourceLedger, Verification, run_drill
from drkit.domain.report import CheckResult, RecoveryPointRef
from drkit.errors import DrkitError, Interrupted

T0 = datetime(2026, 11, 29, 10, 0, tzinfo=UTC)


class Engine:
    name = "postgres"

    def __init__(
        self,
        clock: FakeClock,
        *,
        fail_at: str | None = None,
        interrupt_at: str | None = None,
        checks_pass: bool = True,
        restore_s: float = 60,
        data_age_s: float | None = 120,
    ) -> None:
        self.clock, self.fail_at, self.interrupt_at = clock, fail_at, interrupt_at
        self.checks_pass, self.restore_s, self.data_age_s = checks_pass, restore_s, data_age_s
        self.live: set[str] = set()
        self.torn_down = False

    def _maybe(self, step: str) -> None:
        if self.fail_at == step:
            raise DrkitError(f"{step} broke")
        if self.interrupt_at == step:
            raise Interrupted("SIGTERM")

    def select_recovery_point(self) -> RecoveryPointRef:
        self._maybe("select")
        return RecoveryPointRef(id="app-1", kind="dump", created_at=T0 - timedelta(minutes=30), region=None)

    def provision_isolation(self, ledger: ResourceLedger) -> str:
        ledger.creating("cluster")
        self.live.add("cluster")
        self._maybe("provision")
        return "cluster up"

    def restore(self, point: RecoveryPointRef, ledger: ResourceLedger) -> str:
        self.clock.advance(self.restore_s)
        self._maybe("restore")
        return "restored"

    def verify(self) -> Verification:
        self._maybe("verify")
        marker = None if self.data_age_s is None else T0 - timedelta(seconds=self.data_age_s)
        return Verification(
            checks=(CheckResult(name="rows", passed=self.checks_pass, expected=">= 1", actual=5),),
            freshness=(marker,),
        )

    def teardown(self, ledger: ResourceLedger) -> str:
        self.torn_down = True
        self.live.discard("cluster")
        ledger.deleted_ok("cluster")
        return "removed"


SPEC = DrillSpec(
    drill="d",
    environment="test",
    scenario="data-corruption",
    rto_target=timedelta(minutes=15),
    rpo_target=timedelta(minutes=5),
)


def test_passing_drill_measures_rto_and_data_rpo() -> None:
    clock = FakeClock(T0)
    report, error = run_drill(SPEC, Engine(clock), clock, incident_at=T0)
    assert error is None
    assert report.status == "passed"
    assert [s.name for s in report.steps] == list(STEP_ORDER[:-1])  # "report" is added by the writer
    assert report.rto.achieved_s == 60 and report.rto.met
    assert report.rpo.achieved_s == 120 and report.rpo.method == "data" and report.rpo.met
    assert report.resources.leaked == () and report.resources.deleted == ("cluster",)


def test_rpo_falls_back_to_the_recovery_point_time_without_a_data_marker() -> None:
    clock = FakeClock(T0)
    report, _ = run_drill(SPEC, Engine(clock, data_age_s=None), clock, incident_at=T0)
    assert report.rpo.method == "metadata"
    assert report.rpo.achieved_s == 1800
    assert report.status == "targets_missed"


def test_slow_restore_misses_rto() -> None:
    clock = FakeClock(T0)
    report, _ = run_drill(SPEC, Engine(clock, restore_s=3600), clock, incident_at=T0)
    assert report.status == "targets_missed"
    assert report.rto.achieved_s == 3600 and not report.rto.met


def test_failed_check_fails_the_drill_and_rto_is_not_achieved() -> None:
    clock = FakeClock(T0)
    engine = Engine(clock, checks_pass=False)
    report, error = run_drill(SPEC, engine, clock, incident_at=T0)
    assert report.status == "failed" and error is None
    assert report.rto.achieved_s is None and not report.rto.met
    assert engine.torn_down


@pytest.mark.parametrize("step", ["provision", "restore", "verify"])
def test_teardown_runs_when_a_step_fails(step: str) -> None:
    clock = FakeClock(T0)
    engine = Engine(clock, fail_at=step)
    report, error = run_drill(SPEC, engine, clock, incident_at=T0)
    assert isinstance(error, DrkitError)
    assert report.status == "failed"
    assert engine.torn_down and not engine.live
    failed = [s for s in report.steps if s.status == "failed"]
    assert len(failed) == 1 and f"{step} broke" in failed[0].detail
    assert report.resources.leaked == ()


def test_teardown_runs_on_sigterm_and_the_interrupt_is_returned() -> None:
    clock = FakeClock(T0)
    engine = Engine(clock, interrupt_at="restore")
    report, error = run_drill(SPEC, engine, clock, incident_at=T0)
    assert isinstance(error, Interrupted)
    assert engine.torn_down and not engine.live
    assert report.status == "failed"


def test_keep_skips_teardown_and_does_not_call_kept_resources_leaked() -> None:
    clock = FakeClock(T0)
    engine = Engine(clock)
    report, _ = run_drill(SPEC, engine, clock, incident_at=T0, keep=True)
    assert not engine.torn_down
    teardown = next(s for s in report.steps if s.name == "teardown")
    assert teardown.status == "skipped" and "cluster" in teardown.detail
    assert report.resources.leaked == ()


def test_teardown_that_leaves_something_reports_it_leaked() -> None:
    clock = FakeClock(T0)

    class Leaky(Engine):
        def teardown(self, ledger: ResourceLedger) -> str:
            return "tried"

    report, _ = run_drill(SPEC, Leaky(clock), clock, incident_at=T0)
    assert report.resources.leaked == ("cluster",)


def test_on_success_teardown_keeps_a_failed_drill_for_inspection() -> None:
    clock = FakeClock(T0)
    engine = Engine(clock, checks_pass=False)
    spec = DrillSpec(**{**SPEC.__dict__, "teardown": "on-success"})
    run_drill(spec, engine, clock, incident_at=T0)
    assert not engine.torn_down
