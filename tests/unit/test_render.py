"""Rendering and writing drill reports: Markdown, HTML (with the trend chart), JUnit, files on disk."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from drkit.domain.report import CheckResult, DrillReport, Objective, RecoveryPointRef, Resources, StepResult
from drkit.errors import UsageError
from drkit.render import (
    find_public_key,
    load_report,
    render_html,
    render_junit,
    render_markdown,
    write_report,
)
from drkit.signing import ReportSigner, verify_report

T0 = datetime(2026, 11, 29, 8, 55, tzinfo=UTC)


def make_report(start: datetime = T0, rto_s: float | None = 812.4, **changes: Any) -> DrillReport:
    fields: dict[str, Any] = dict(
        drill="quarterly-production",
        environment="production",
        scenario="region-loss",
        engine="rds",
        status="passed",
        incident_at=start,
        started_at=start,
        recovered_at=None if rto_s is None else start + timedelta(seconds=rto_s),
        finished_at=start + timedelta(seconds=1500),
        recovery_point=RecoveryPointRef("orders-copy-1", "copy", start - timedelta(seconds=301), "us-west-2"),
        rto=Objective(3600, rto_s, rto_s is not None and rto_s <= 3600),
        rpo=Objective(900, 301.0, True, "data"),
        steps=(
            StepResult("restore", start, start + timedelta(seconds=700), "ok", "restored orders-drill"),
            StepResult(
                "verify", start + timedelta(seconds=700), start + timedelta(seconds=812.4), "ok", "2 checks"
            ),
        ),
        checks=(
            CheckResult("orders present", True, ">= 1000", 1234, sql="SELECT count(*) FROM orders"),
            CheckResult("newest order", True, None, "2026-11-29T08:50:00Z"),
        ),
        resources=Resources(("rds:orders-drill", "vpc-0abc"), ("rds:orders-drill", "vpc-0abc"), ()),
    )
    fields.update(changes)
    return DrillReport(**fields)


def history(n: int) -> list[DrillReport]:
    """n earlier quarterly runs with different RTOs (the oldest slowest)."""
    return [make_report(T0 - timedelta(days=91 * i), rto_s=600.0 + 300 * i) for i in range(n, 0, -1)]


# --- Markdown ------------------------------------------------------------------------------


def test_markdown_shows_objectives_checks_steps_and_times() -> None:
    md = render_markdown(make_report())
    assert md.startswith("# Drill quarterly-production: PASSED")
    assert "| RTO | 1h00m | 13m32s |" in md  # 812.4 s formatted for people
    assert "| RPO | 15m00s | 5m01s | data | yes |" in md
    assert "orders-copy-1 (copy, us-west-2" in md
    assert "| orders present | pass | >= 1000 | 1234 |" in md
    assert "| 1 | restore | ok | 08:55:00 | 11m40s |" in md  # step duration
    assert "2026-11-29 08:55:00 UTC" in md
    assert "LEAKED" not in md
    assert "Not signed." in md


def test_markdown_shouts_about_leaks_and_failures() -> None:
    report = make_report(
        status="failed",
        resources=Resources(("rds:orders-drill",), (), ("rds:orders-drill",)),
        checks=(CheckResult("orders present", False, ">= 1000", 3, sql="SELECT count(*) FROM orders"),),
    )
    md = render_markdown(report)
    assert md.startswith("# Drill quarterly-production: FAILED")
    assert "LEAKED: 1 resource(s) were left behind" in md
    assert "- **LEAKED: 1**" in md and "**rds:orders-drill**" in md
    assert "| orders present | **FAIL** | >= 1000 | 3 |" in md
    assert "SELECT count(*) FROM orders" in md  # the failed check's SQL, for whoever picks it up


def test_markdown_table_cells_cannot_break_the_table() -> None:
    evil = CheckResult("a | b\nc <script>alert(1)</script>", True, None, "x|y")
    md = render_markdown(make_report(checks=(evil,)))
    row = next(line for line in md.splitlines() if line.startswith("| a "))
    # Five unescaped pipes = four cells, whatever the name contains.
    assert len(re.findall(r"(?<!\\)\|", row)) == 5
    assert not re.search(r"(?<!\\)<script", md)  # raw HTML is escaped, so it shows as text
    assert "\\<script>" in md


def test_markdown_history_lists_each_run_once() -> None:
    report = make_report()
    md = render_markdown(report, [*history(3), report])  # this run also in history: counted once
    assert md.count("(this run)") == 1
    section = md.split("## History", 1)[1].split("##", 1)[0]
    assert len([line for line in section.splitlines() if line.startswith("| 20")]) == 4


# --- HTML ------------------------------------------------------------------------------------


def _svgs(html: str) -> list[ET.Element]:
    return [ET.fromstring(s) for s in re.findall(r"<svg\b.*?</svg>", html, re.S)]


def _points(svg: ET.Element) -> list[ET.Element]:
    return [c for c in svg.iter("circle") if "point" in c.get("class", "").split()]


def test_html_is_self_contained() -> None:
    html = render_html(make_report(), history(4))
    assert html.lstrip().startswith("<!DOCTYPE html>")
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", html, re.I)
    assert not re.search(r"https?://", html)
    assert "<script" not in html.lower()
    assert "<link" not in html.lower() and "@import" not in html and "url(" not in html
    assert "13m32s" in html


def test_html_escapes_everything_from_the_report() -> None:
    report = make_report(
        checks=(CheckResult("<script>alert(1)</script>", False, "<b>", "<img src=x onerror=alert(1)>"),),
        steps=(StepResult("restore", T0, None, "failed", '"><svg onload=alert(1)>'),),
    )
    html = render_html(report)
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<img" not in html and "onerror=alert" not in html.replace("onerror=alert(1)&gt;", "")
    assert "<svg onload" not in html


def test_trend_chart_has_one_point_per_run() -> None:
    report = make_report()
    for n in (0, 1, 5):
        html = render_html(report, history(n))
        svgs = _svgs(html)
        assert len(svgs) == 2  # RTO and RPO
        for svg in svgs:
            assert len(_points(svg)) == n + 1
    # The current run passed in the history as well is still one point.
    assert len(_points(_svgs(render_html(report, [*history(2), report]))[0])) == 3


def test_trend_chart_plots_achieved_against_target() -> None:
    runs = history(3)  # RTO 1500 s, 1200 s, 900 s, then this run 812.4 s
    svg_rto = _svgs(render_html(make_report(), runs))[0]
    ys = [float(p.get("cy", "nan")) for p in _points(svg_rto)]
    xs = [float(p.get("cx", "nan")) for p in _points(svg_rto)]
    assert xs == sorted(xs)  # oldest on the left
    assert ys == sorted(ys)  # SVG y grows downward: faster recoveries sit lower
    target = next(p for p in svg_rto.iter("path") if p.get("class") == "target")
    target_y = float(target.get("d", "").split(",")[1].split()[0])
    assert all(y > target_y for y in ys)  # all runs met the 1h target: below the line


def test_trend_chart_marks_a_run_that_never_recovered() -> None:
    never = make_report(T0 - timedelta(days=91), rto_s=None, status="failed")
    svg_rto = _svgs(render_html(make_report(), [never]))[0]
    classes = [p.get("class", "") for p in _points(svg_rto)]
    assert len(classes) == 2
    assert "missing" in classes[0] and "current" in classes[1]


# --- JUnit -----------------------------------------------------------------------------------


def test_junit_of_a_passing_drill() -> None:
    suite = ET.fromstring(render_junit(make_report()))
    assert suite.tag == "testsuite" and suite.get("name") == "quarterly-production"
    names = [tc.get("name") for tc in suite.iter("testcase")]
    assert names == [
        "check: orders present",
        "check: newest order",
        "rto within target",
        "rpo within target",
        "resources cleaned up",
    ]
    assert suite.get("tests") == "5" and suite.get("failures") == "0"
    assert not list(suite.iter("failure"))


def test_junit_counts_failures() -> None:
    report = make_report(
        rto_s=4000.0,
        status="failed",
        checks=(
            CheckResult("orders present", False, ">= 1000", 3),
            CheckResult("newest order", True, None, "x"),
            CheckResult("no & <weird> names", False, "not null", None, error="relation missing"),
        ),
        steps=(
            StepResult("restore", T0, T0 + timedelta(seconds=60), "ok", ""),
            StepResult("verify", T0 + timedelta(seconds=60), T0 + timedelta(seconds=90), "failed", "boom"),
        ),
    )
    suite = ET.fromstring(render_junit(report))
    failures = {tc.get("name"): tc.find("failure") for tc in suite.iter("testcase")}
    failed = sorted(name for name, f in failures.items() if f is not None and name)
    assert failed == [
        "check: no & <weird> names",
        "check: orders present",
        "rto within target",
        "step: verify",
    ]
    assert suite.get("failures") == "4" and suite.get("tests") == "7"
    orders = failures["check: orders present"]
    assert orders is not None
    assert orders.get("message") == "expected >= 1000, got 3"
    weird = failures["check: no & <weird> names"]
    assert weird is not None and "relation missing" in (weird.get("message") or "")
    rto = failures["rto within target"]
    assert rto is not None and "1h06m" in (rto.get("message") or "")


# --- files -------------------------------------------------------------------------------------


def test_write_report_writes_every_format_signed(tmp_path: Path) -> None:
    signer = ReportSigner(tmp_path / "state" / "signing-key.pem")
    report_dir = tmp_path / "reports"
    paths = write_report(make_report(), report_dir, ["json", "md", "html", "junit"], signer=signer)
    folder = report_dir / "quarterly-production"
    assert paths == {
        "json": folder / "20261129T085500Z.json",
        "md": folder / "20261129T085500Z.md",
        "html": folder / "20261129T085500Z.html",
        "junit": folder / "20261129T085500Z.xml",
    }
    assert sorted(p.name for p in folder.iterdir()) == sorted(p.name for p in paths.values())  # no temp files
    doc = load_report(paths["json"])
    assert doc["signature"]["key_id"] == signer.key_id
    # An auditor holds only the reports folder: the published public key verifies the report.
    pub = report_dir / "signing-key.pub.pem"
    assert pub.is_file() and find_public_key(paths["json"]) == pub
    ok, reason = verify_report(doc, key_path=pub)
    assert ok, reason
    # ... and the same file proves a change.
    doc["rto"]["achieved_s"] = 100.0
    assert verify_report(doc, key_path=pub) == (
        False,
        "signature does not match: the report was changed after signing",
    )
    # The renderings name the key, and the stored JSON reads back into the same report.
    assert signer.key_id in paths["md"].read_text() and signer.key_id in paths["html"].read_text()
    ET.parse(paths["junit"])
    again = DrillReport.from_dict(load_report(paths["json"]))
    assert replace(again, signature=None) == make_report()


def test_write_report_only_the_formats_asked_and_unsigned(tmp_path: Path) -> None:
    paths = write_report(make_report(), tmp_path, {"md"}, signer=None)
    assert list(paths) == ["md"]
    assert [p.name for p in (tmp_path / "quarterly-production").iterdir()] == ["20261129T085500Z.md"]
    assert not (tmp_path / "signing-key.pub.pem").exists()
    with pytest.raises(UsageError, match="pdf"):
        write_report(make_report(), tmp_path, ["pdf"], signer=None)


def test_old_reports_still_verify_after_the_key_changes(tmp_path: Path) -> None:
    first = ReportSigner(tmp_path / "a" / "signing-key.pem")
    second = ReportSigner(tmp_path / "b" / "signing-key.pem")
    old = write_report(make_report(T0 - timedelta(days=91)), tmp_path / "r", ["json"], signer=first)["json"]
    new = write_report(make_report(), tmp_path / "r", ["json"], signer=second)["json"]
    for path, signer in ((old, first), (new, second)):
        doc = load_report(path)
        key = find_public_key(path, doc["signature"]["key_id"])
        assert key is not None
        assert verify_report(doc, key_path=key) == (True, f"signature ok: signed by {signer.key_id}")


def test_load_report_errors_are_one_line(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="no such report"):
        load_report(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(UsageError, match="not a JSON report"):
        load_report(bad)
    bad.write_text(json.dumps([1, 2]))
    with pytest.raises(UsageError, match="not an object"):
        load_report(bad)
