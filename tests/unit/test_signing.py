"""Report signatures: an auditor can tell an untouched report from a changed one."""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import re
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from drkit.domain.report import CheckResult, DrillReport, Objective, RecoveryPointRef, Resources, StepResult
from drkit.errors import UsageError
from drkit.signing import ReportSigner, default_signing_key_path, verify_report

T0 = datetime(2026, 11, 29, 8, 55, tzinfo=UTC)


def report_dict() -> dict[str, Any]:
    return DrillReport(
        drill="quarterly-production",
        environment="production",
        scenario="region-loss",
        engine="rds",
        status="passed",
        incident_at=T0,
        started_at=T0,
        recovered_at=T0 + timedelta(seconds=812.4),
        finished_at=T0 + timedelta(seconds=1000),
        recovery_point=RecoveryPointRef("snap-1", "copy", T0 - timedelta(minutes=5), "us-west-2"),
        rto=Objective(3600, 812.4, True),
        rpo=Objective(900, 301.0, True, "data"),
        steps=(StepResult("restore", T0, T0 + timedelta(seconds=700), "ok", "done"),),
        checks=(
            CheckResult("orders present", True, ">= 1000", 1234),
            CheckResult("ünïcode ✓", True, None, "naïve"),
        ),
        resources=Resources(("rds:orders-drill",), ("rds:orders-drill",), ()),
    ).to_dict()


@pytest.fixture
def signer(tmp_path: Path) -> ReportSigner:
    return ReportSigner(tmp_path / "state" / "drkit" / "signing-key.pem")


def test_key_is_created_once_private_and_reused(tmp_path: Path) -> None:
    path = tmp_path / "state" / "signing-key.pem"
    first = ReportSigner(path)
    assert path.is_file()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert b"BEGIN PRIVATE KEY" in path.read_bytes()  # PKCS8 PEM
    assert ReportSigner(path).key_id == first.key_id  # reused, not regenerated
    assert [p.name for p in path.parent.iterdir()] == ["signing-key.pem"]  # no temp files left


def test_key_id_is_sha256_of_the_raw_public_key(signer: ReportSigner) -> None:
    public = serialization.load_pem_public_key(signer.public_key_pem())
    assert isinstance(public, Ed25519PublicKey)
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    assert re.fullmatch(r"ed25519:[0-9a-f]{16}", signer.key_id)
    assert signer.key_id == "ed25519:" + hashlib.sha256(raw).hexdigest()[:16]


def test_sign_then_verify(signer: ReportSigner) -> None:
    original = report_dict()
    signed = signer.sign(original)
    assert "signature" not in original or original["signature"] is None  # input untouched
    assert signed["signature"]["alg"] == "ed25519"
    assert signed["signature"]["key_id"] == signer.key_id
    ok, reason = verify_report(signed, public_key_pem=signer.public_key_pem())
    assert ok, reason
    assert signer.key_id in reason
    # Survives being written and read back, and verifies with the private key file too.
    reread = json.loads(json.dumps(signed, indent=2, ensure_ascii=False))
    assert verify_report(reread, key_path=signer.key_path)[0]


def test_an_auditor_can_verify_without_drkit(signer: ReportSigner) -> None:
    """The documented recipe: Ed25519 over sorted, compact UTF-8 JSON of the report minus signature."""
    signed = signer.sign(report_dict())
    body = {k: v for k, v in signed.items() if k != "signature"}
    payload = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    public = serialization.load_pem_public_key(signer.public_key_pem())
    assert isinstance(public, Ed25519PublicKey)
    public.verify(base64.b64decode(signed["signature"]["value"]), payload)  # raises if wrong


def _set(d: dict[str, Any], path: tuple[Any, ...], value: Any) -> None:
    for key in path[:-1]:
        d = d[key]
    d[path[-1]] = value


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("rto", "achieved_s"), 3599.0),
        (("rto", "met"), False),
        (("checks", 0, "passed"), False),
        (("checks", 0, "actual"), 1235),
        (("status",), "failed"),
        (("resources", "leaked"), ["vpc-1"]),
        (("finished_at",), "2026-11-29T09:11:41Z"),
        (("checks", 1, "name"), "unicode ✓"),
    ],
)
def test_any_change_after_signing_fails_verification(
    signer: ReportSigner, path: tuple[Any, ...], value: Any
) -> None:
    signed = signer.sign(report_dict())
    tampered = copy.deepcopy(signed)
    _set(tampered, path, value)
    ok, reason = verify_report(tampered, public_key_pem=signer.public_key_pem())
    assert not ok
    assert reason == "signature does not match: the report was changed after signing"


def test_added_or_removed_fields_fail_too(signer: ReportSigner) -> None:
    signed = signer.sign(report_dict())
    added = {**signed, "note": "all good"}
    assert not verify_report(added, public_key_pem=signer.public_key_pem())[0]
    removed = {k: v for k, v in signed.items() if k != "drkit_version"}
    assert not verify_report(removed, public_key_pem=signer.public_key_pem())[0]


def test_a_different_key_fails(signer: ReportSigner, tmp_path: Path) -> None:
    signed = signer.sign(report_dict())
    other = ReportSigner(tmp_path / "other" / "signing-key.pem")
    assert other.key_id != signer.key_id
    ok, reason = verify_report(signed, public_key_pem=other.public_key_pem())
    assert not ok
    assert signer.key_id in reason and other.key_id in reason
    # A forger who also rewrites key_id to match the other key still fails on the signature.
    forged = {**signed, "signature": {**signed["signature"], "key_id": other.key_id}}
    ok, reason = verify_report(forged, public_key_pem=other.public_key_pem())
    assert not ok and "changed after signing" in reason


def test_unsigned_and_malformed_signatures_are_reported(signer: ReportSigner) -> None:
    pem = signer.public_key_pem()
    assert verify_report(report_dict(), public_key_pem=pem) == (False, "the report is not signed")
    signed = signer.sign(report_dict())
    bad_b64 = {**signed, "signature": {**signed["signature"], "value": "not base64!"}}
    assert verify_report(bad_b64, public_key_pem=pem) == (False, "the signature value is not valid base64")
    other_alg = {**signed, "signature": {**signed["signature"], "alg": "rsa"}}
    assert "unsupported signature algorithm" in verify_report(other_alg, public_key_pem=pem)[1]
    assert "malformed" in verify_report({**signed, "signature": "x"}, public_key_pem=pem)[1]
    assert verify_report(signed, public_key_pem=b"garbage")[0] is False


def test_a_broken_key_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "signing-key.pem"
    path.write_text("not a key")
    with pytest.raises(UsageError, match="not an unencrypted PEM private key"):
        ReportSigner(path)


def test_default_key_path_is_in_drkits_state_dir() -> None:
    path = default_signing_key_path()
    assert path.name == "signing-key.pem"
    assert "drkit" in path.parent.parts
