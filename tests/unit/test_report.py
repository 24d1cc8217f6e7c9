"""The drill report model against CONTRACT.md "Drill report (JSON)"."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest

from drkit.domain.report import (
    CheckResult,
    DrillReport,
    Objective,
    RecoveryPointRef,
    Resources,
    Signature,
    StepResult,
    signing_payload,
)

# The contract's example, filled in with concrete values of the documented types.
CONTRACT_EXAMPLE: dict[str, Any] = {
    "schema": "drkit.drill-report/1",
    "drill": "quarterly-production",
    "environment": "production",
    "scenario": "region-loss",
    "engine": "rds",
    "status": "passed",
    "incident_at": "2026-11-29T08:55:00Z",
    "started_at": "2026-11-29T08:55:00Z",
    "recovered_at": "2026-11-29T09:08:32.400000Z",
    "finished_at": "2026-11-29T09:12:00Z",
    "recovery_point": {
        "id": "orders-prod-copy-20261129",
        "kind": "copy",
        "created_at": "2026-11-29T08:50:00Z",
        "region": "us-west-2",
    },
    "rto": {"target_s": 3600, "achieved_s": 812.4, "met": True},
    "rpo": {"target_s": 900, "achieved_s": 301.0, "met": True, "method": "data"},
    "steps": [
        {
            "name": "restore",
            "started_at": "2026-11-29T08:55:00Z",
            "finished_at": "2026-11-29T09:06:00Z",
            "status": "ok",
            "detail": "restored orders-drill",
        }
    ],
    "checks": [{"name": "orders present", "passed": True, "expected": ">= 1000", "actual": 1234}],
    "resources": {"created": ["rds:orders-drill"], "deleted": ["rds:orders-drill"], "leaked": []},
    "signature": {"alg": "ed25519", "key_id": "ed25519:0123456789abcdef", "value": "c2ln"},
}

T0 = datetime(2026, 11, 29, 8, 55, tzinfo=UTC)


def make_report(**changes: Any) -> DrillReport:
    fields: dict[str, Any] = dict(
        drill="quarterly-production",
        environment="production",
        scenario="region-loss",
        engine="rds",
        status="passed",
        incident_at=T0,
        started_at=T0,
        recovered_at=T0 + timedelta(seconds=812.4),
        finished_at=T0 + timedelta(seconds=1020),
        recovery_point=RecoveryPointRef(
            "orders-prod-copy-20261129", "copy", T0 - timedelta(minutes=5), "us-west-2"
        ),
        rto=Objective(3600, 812.4, True),
        rpo=Objective(900, 301.0, True, "data"),
        steps=(
            StepResult("restore", T0, T0 + timedelta(seconds=660), "ok", "restored orders-drill"),
            StepResult("teardown", T0 + timedelta(seconds=900), None, "skipped", "--keep"),
        ),
        checks=(
            CheckResult("orders present", True, ">= 1000", 1234, sql="SELECT count(*) FROM orders"),
            CheckResult("newest order", True, None, "2026-11-29T08:50:00Z"),
        ),
        resources=Resources(("rds:orders-drill",), ("rds:orders-drill",), ()),
        signature=Signature("ed25519", "ed25519:0123456789abcdef", "c2ln"),
    )
    fields.update(changes)
    return DrillReport(**fields)


def _kind(value: Any) -> str:
    """JSON type of a value, with int and float both 'number'."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    return type(value).__name__


def test_to_dict_has_exactly_the_contract_keys_and_types() -> None:
    d = make_report().to_dict()
    # Contract keys plus the documented top-level extensions (id, drkit_version), nothing else.
    assert set(d) == set(CONTRACT_EXAMPLE) | {"id", "drkit_version"}
    for key, example in CONTRACT_EXAMPLE.items():
        assert _kind(d[key]) == _kind(example), key
        if isinstance(example, dict):
            assert set(d[key]) == set(example), key
            for sub, sub_example in example.items():
                assert _kind(d[key][sub]) == _kind(sub_example), f"{key}.{sub}"
    for list_key in ("steps", "checks"):
        # Required item keys; checks may carry the `sql`/`error` extensions, nothing else.
        required = set(CONTRACT_EXAMPLE[list_key][0])
        for item in d[list_key]:
            assert required <= set(item) <= required | {"sql", "error"}, list_key
    assert d["schema"] == "drkit.drill-report/1"
    assert d["id"] == "quarterly-production-20261129T085500Z"
    assert "method" not in d["rto"]


def test_contract_example_reads_and_writes_back_unchanged() -> None:
    report = DrillReport.from_dict(CONTRACT_EXAMPLE)
    assert report.rto.achieved_s == 812.4 and report.rpo.method == "data"
    assert report.recovered_at == datetime(2026, 11, 29, 9, 8, 32, 400000, tzinfo=UTC)
    out = report.to_dict()
    del out["id"], out["drkit_version"]
    assert out == CONTRACT_EXAMPLE


def test_round_trip_through_json() -> None:
    report = make_report()
    again = DrillReport.from_dict(json.loads(json.dumps(report.to_dict())))
    assert again == report
    unsigned = make_report(
        signature=None,
        recovery_point=None,
        recovered_at=None,
        rto=Objective(3600, None, False),
        host="drill-runner-1",
    )
    assert DrillReport.from_dict(json.loads(json.dumps(unsigned.to_dict()))) == unsigned


def test_times_are_utc_with_z_whatever_zone_they_came_in() -> None:
    plus2 = timezone(timedelta(hours=2))
    report = make_report(started_at=datetime(2026, 11, 29, 10, 55, tzinfo=plus2))
    d = report.to_dict()
    assert d["started_at"] == "2026-11-29T08:55:00Z"
    assert d["id"] == "quarterly-production-20261129T085500Z"
    for value in (
        d["incident_at"],
        d["recovered_at"],
        d["finished_at"],
        d["recovery_point"]["created_at"],
        d["steps"][0]["started_at"],
        d["steps"][0]["finished_at"],
    ):
        assert value.endswith("Z") and "+" not in value
    assert d["steps"][1]["finished_at"] is None


def test_naive_times_are_refused() -> None:
    with pytest.raises(ValueError, match="no timezone"):
        make_report(started_at=datetime(2026, 11, 29, 8, 55))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"schema": "drkit.drill-report/2"}, "schema"),
        ({"rto": {"target_s": 3600, "achieved_s": 812.4, "met": "yes"}}, r"rto\.met"),
        ({"status": "green"}, "status"),
        ({"started_at": "2026-11-29T08:55:00"}, "no timezone"),
        (
            {"steps": [{"name": "x", "started_at": "2026-11-29T08:55:00Z", "status": "ok", "detail": ""}]},
            r"steps\[0\]\.finished_at: missing",
        ),
        ({"rpo": {"target_s": 900, "achieved_s": 301.0, "met": True, "method": "guess"}}, "method"),
    ],
)
def test_from_dict_is_strict(change: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        DrillReport.from_dict({**CONTRACT_EXAMPLE, **change})


def test_from_dict_requires_every_contract_key_but_signature() -> None:
    for key in CONTRACT_EXAMPLE:
        if key in ("schema", "signature"):
            continue
        broken = {k: v for k, v in CONTRACT_EXAMPLE.items() if k != key}
        with pytest.raises(ValueError, match=key):
            DrillReport.from_dict(broken)
    unsigned = {k: v for k, v in CONTRACT_EXAMPLE.items() if k != "signature"}
    assert DrillReport.from_dict(unsigned).signature is None


def test_check_values_become_json_values() -> None:
    c = CheckResult("x", True, None, Decimal("12.50"))
    assert c.actual == "12.50"  # exact, not a rounded float
    assert CheckResult("x", True, None, Decimal(5)).actual == 5
    assert (
        CheckResult("x", True, None, datetime(2026, 1, 2, 3, 4, tzinfo=UTC)).actual == "2026-01-02T03:04:00Z"
    )
    report = make_report(checks=(c,))
    json.dumps(report.to_dict())  # would raise on a Decimal or datetime


def test_signing_payload_is_canonical_and_excludes_the_signature() -> None:
    d = make_report().to_dict()
    payload = signing_payload(d)
    assert b"signature" not in payload
    assert payload == signing_payload(dict(reversed(list(d.items()))))  # key order does not matter
    assert payload == signing_payload({**d, "signature": {"alg": "x"}})
    assert payload.startswith(b'{"checks":[{')  # sorted keys: "checks" comes first
    assert b'": ' not in payload and b', "' not in payload  # no whitespace between tokens
    assert json.loads(payload) == {k: v for k, v in d.items() if k != "signature"}
    changed = {**d, "rto": {**d["rto"], "achieved_s": 812.5}}
    assert signing_payload(changed) != payload
