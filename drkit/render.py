"""Drill reports on paper: JSON (signed), Markdown, self-contained HTML and JUnit XML.

`write_report` is what a drill calls at the end; the `render_*` functions are what
`drkit report render` calls on a stored report. Layout on disk (CONTRACT.md):

    reports/
      signing-key.pub.pem                  # public key: verify any report without drkit's state dir
      quarterly-production/
        20261129T085500Z.json              # the signed report (the source of truth)
        20261129T085500Z.md  .html  .xml   # renderings of the same report

Formatting decisions (durations, times, yes/NO) live here in Python; the jinja2 templates in
drkit/templates only lay them out. HTML is autoescaped and has no scripts and no external
URLs, so a report can be mailed, archived or attached to a ticket and still open.
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
import os
import re
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import jinja2

from drkit.domain.durations import format_duration
from drkit.domain.report import DrillReport, Objective, Signature
from drkit.errors import UsageError
from drkit.signing import ReportSigner, key_id_of, load_public_key

__all__ = [
    "FORMATS",
    "PUBLIC_KEY_NAME",
    "find_public_key",
    "load_report",
    "render",
    "render_html",
    "render_json",
    "render_junit",
    "render_markdown",
    "write_report",
]

# format name (as in a drill's `report.formats` and `--format`) -> file suffix
FORMATS: dict[str, str] = {"json": ".json", "md": ".md", "html": ".html", "junit": ".xml"}
PUBLIC_KEY_NAME = "signing-key.pub.pem"
MAX_TREND_RUNS = 50  # a chart of more quarterly drills than this is no longer readable

_STATUS_LABEL = {"passed": "PASSED", "failed": "FAILED", "targets_missed": "TARGETS MISSED"}


# --- shared view model -------------------------------------------------------------------


def _when(value: datetime | None) -> str:
    return "—" if value is None else f"{value:%Y-%m-%d %H:%M:%S} UTC"


def _dur(seconds: float | None, missing: str = "—") -> str:
    return missing if seconds is None else format_duration(seconds)


def _value(value: Any) -> str:
    """A check's actual value as a reader expects it: SQL NULL as NULL, text unquoted."""
    if value is None:
        return "NULL"
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _objective_row(name: str, o: Objective, missing: str) -> dict[str, Any]:
    return {
        "name": name,
        "target": _dur(o.target_s),
        "achieved": _dur(o.achieved_s, missing),
        "method": o.method or "—",
        "met": o.met,
        "met_label": "yes" if o.met else "NO",
    }


def _view(report: DrillReport, history: Sequence[DrillReport]) -> dict[str, Any]:
    """Everything the templates show, already formatted as text."""
    rp = report.recovery_point
    recovery_point = (
        f"{rp.id} ({rp.kind}{', ' + rp.region if rp.region else ''}, taken {_when(rp.created_at)})"
        if rp
        else "— (none chosen)"
    )
    leaked = list(report.resources.leaked)
    return {
        "r": report,
        "id": report.id,
        "status_label": _STATUS_LABEL.get(report.status, report.status.upper()),
        "objectives": [
            _objective_row("RTO", report.rto, "not recovered"),
            _objective_row("RPO", report.rpo, "unknown"),
        ],
        "details": [
            ("Drill", report.drill),
            ("Run id", report.id),
            ("Scenario", report.scenario),
            ("Environment", report.environment),
            ("Engine", report.engine),
            ("Recovery point", recovery_point),
            ("Incident at", _when(report.incident_at)),
            ("Started", _when(report.started_at)),
            ("Recovered", _when(report.recovered_at)),
            ("Finished", _when(report.finished_at)),
            ("Total duration", _dur(report.duration_s)),
            ("drkit", report.drkit_version + (f" on {report.host}" if report.host else "")),
        ],
        "checks": [
            {
                "name": c.name,
                "passed": c.passed,
                "result": "pass" if c.passed else "FAIL",
                "expected": c.expected if c.expected is not None else "—",
                "actual": _value(c.actual),
                "sql": c.sql,
                "error": c.error,
            }
            for c in report.checks
        ],
        "failed_checks": [c for c in report.checks if not c.passed],
        "steps": [
            {
                "n": i,
                "name": s.name,
                "status": s.status,
                "started": f"{s.started_at:%H:%M:%S}",
                "duration": _dur(s.duration_s, "unfinished"),
                "detail": s.detail,
            }
            for i, s in enumerate(report.steps, 1)
        ],
        "created": list(report.resources.created),
        "deleted": list(report.resources.deleted),
        "leaked": leaked,
        "key_id": report.signature.key_id if report.signature else None,
        "history": [
            {
                "id": h.id,
                "started": _when(h.started_at),
                "status": h.status,
                "rto": _dur(h.rto.achieved_s, "not recovered"),
                "rto_met": h.rto.met,
                "rpo": _dur(h.rpo.achieved_s, "unknown"),
                "rpo_met": h.rpo.met,
                "current": h.id == report.id,
            }
            for h in reversed(_trend_runs(report, history))
        ],
    }


def _trend_runs(report: DrillReport, history: Iterable[DrillReport]) -> list[DrillReport]:
    """History plus this run, oldest first, this run counted once, the newest MAX_TREND_RUNS."""
    runs = {h.id: h for h in history if h.id != report.id}
    runs[report.id] = report
    return sorted(runs.values(), key=lambda r: r.started_at)[-MAX_TREND_RUNS:]


# --- the trend chart (inline SVG, drawn by the HTML template) ----------------------------

# Tick steps that read well as durations: 1s ... 4w.
# fmt: off
_NICE_STEPS = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200,
               86400, 172800, 604800, 1209600, 2419200)
# fmt: on


@dataclass(frozen=True)
class _Point:
    x: float
    y: float
    css: str  # "met", "missed" or "missing" (+ " current" for this run)
    title: str


@dataclass(frozen=True)
class _Chart:
    title: str
    width: int
    height: int
    left: int
    right: int
    top: int
    bottom: int
    points: tuple[_Point, ...]
    achieved_path: str
    target_path: str
    yticks: tuple[tuple[float, str], ...]
    xlabels: tuple[tuple[float, str], ...]


def _tick_label(seconds: int) -> str:
    """Axis labels without noise: `0`, `30s`, `15m`, `1h`, `1h30m`, `2d`."""
    if seconds < 60:
        return f"{seconds}s" if seconds else "0"
    return re.sub(r"(?<=[mh])00[ms]$", "", format_duration(seconds))


def _trend_chart(title: str, runs: Sequence[DrillReport], pick: str) -> _Chart:
    """One point per run: achieved `pick` (rto|rpo) against that run's target, in seconds."""
    width, height, left, right, top, bottom = 520, 220, 64, 504, 16, 184
    objectives: list[Objective] = [getattr(r, pick) for r in runs]
    values = [o.achieved_s for o in objectives if o.achieved_s is not None]
    raw_max = max([*values, *(o.target_s for o in objectives), 1.0]) * 1.1
    step = next((s for s in _NICE_STEPS if raw_max / s <= 5), max(_NICE_STEPS))
    y_max = math.ceil(raw_max / step) * step

    def y_of(seconds: float) -> float:
        return round(bottom - (bottom - top) * min(seconds, y_max) / y_max, 1)

    n = len(runs)
    xs = [round(left + (right - left) * (i / (n - 1) if n > 1 else 0.5), 1) for i in range(n)]
    points = []
    for x, run, o in zip(xs, runs, objectives, strict=True):
        current = " current" if run is runs[-1] else ""
        when = f"{run.started_at:%Y-%m-%d %H:%M} UTC"
        if o.achieved_s is None:
            # Still one mark per run: a hollow point on the top edge says "never got there".
            points.append(
                _Point(x, top, "missing" + current, f"{when}: not measured (target {_dur(o.target_s)})")
            )
        else:
            css = ("met" if o.met else "missed") + current
            label = f"{when}: {_dur(o.achieved_s)} (target {_dur(o.target_s)})"
            points.append(_Point(x, y_of(o.achieved_s), css, label))
    achieved = [p for p in points if not p.css.startswith("missing")]
    every = max(1, math.ceil(n / 6))  # at most ~7 date labels, the newest always, none overlapping
    return _Chart(
        title=title,
        width=width,
        height=height,
        left=left,
        right=right,
        top=top,
        bottom=bottom,
        points=tuple(points),
        achieved_path=" ".join(f"{'M' if i == 0 else 'L'}{p.x},{p.y}" for i, p in enumerate(achieved)),
        target_path=" ".join(
            f"{'M' if i == 0 else 'L'}{x},{y_of(o.target_s)}"
            for i, (x, o) in enumerate(zip(xs, objectives, strict=True))
        ),
        yticks=tuple((y_of(v), _tick_label(v)) for v in range(0, int(y_max) + 1, step)),
        xlabels=tuple(
            (x, f"{r.started_at:%Y-%m-%d}")
            for i, (x, r) in enumerate(zip(xs, runs, strict=True))
            if i == n - 1 or (i % every == 0 and n - 1 - i >= every)
        ),
    )


# --- renderers ---------------------------------------------------------------------------


def _md_cell(value: Any) -> str:
    """Make text safe inside a Markdown table cell: one line, no pipes, no raw HTML or links."""
    text = " ".join(str(value).split())
    for ch in "\\`*[]<|":
        text = text.replace(ch, "\\" + ch)
    return text


@functools.cache
def _env(html: bool) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("drkit", "templates"),
        autoescape=html,  # HTML: escape everything; Markdown: escaped per cell with |md
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        undefined=jinja2.StrictUndefined,
    )
    env.filters["md"] = _md_cell
    return env


def render_markdown(report: DrillReport, history: Sequence[DrillReport] = ()) -> str:
    """A Markdown report for a pull request, a wiki page or a ticket."""
    return _env(False).get_template("report.md.j2").render(**_view(report, history))


def render_html(report: DrillReport, history: Sequence[DrillReport] = ()) -> str:
    """A self-contained HTML report (inline CSS and SVG, no JS, no external URLs)."""
    runs = _trend_runs(report, history)
    charts = [
        _trend_chart("RTO: achieved vs target", runs, "rto"),
        _trend_chart("RPO: achieved vs target", runs, "rpo"),
    ]
    return _env(True).get_template("report.html.j2").render(charts=charts, **_view(report, history))


def render_json(report: DrillReport) -> str:
    """The report as the contract's JSON (unsigned unless `report.signature` is set)."""
    return json.dumps(report.to_dict(), indent=2, ensure_ascii=False, allow_nan=False) + "\n"


def render_junit(report: DrillReport) -> str:
    """JUnit XML so CI shows a drill like a test run.

    One testcase per check (a failure carries expected and actual), `rto within target`,
    `rpo within target`, `resources cleaned up` (fails when anything leaked), and one per
    failed step.
    """
    suite = ET.Element(
        "testsuite",
        name=report.drill,
        timestamp=f"{report.started_at:%Y-%m-%dT%H:%M:%S}",
        time=f"{report.duration_s:.3f}",
    )
    props = ET.SubElement(suite, "properties")
    for name, value in (
        ("status", report.status),
        ("scenario", report.scenario),
        ("environment", report.environment),
        ("engine", report.engine),
        ("report_id", report.id),
        ("recovery_point", report.recovery_point.id if report.recovery_point else ""),
        ("signature_key_id", report.signature.key_id if report.signature else ""),
    ):
        ET.SubElement(props, "property", name=name, value=value)

    def case(name: str, failure: str | None = None, text: str = "", seconds: float = 0.0) -> None:
        tc = ET.SubElement(
            suite, "testcase", classname=f"drkit.drill.{report.drill}", name=name, time=f"{seconds:.3f}"
        )
        if failure is not None:
            ET.SubElement(tc, "failure", message=failure, type="DrillFailure").text = text or failure

    for c in report.checks:
        if c.passed:
            case(f"check: {c.name}")
            continue
        expected = c.expected if c.expected is not None else "—"
        message = f"expected {expected}, got {_value(c.actual)}" + (f" ({c.error})" if c.error else "")
        details = [f"expected: {expected}", f"actual: {_value(c.actual)}"]
        details += [f"error: {c.error}"] if c.error else []
        details += [f"sql: {c.sql}"] if c.sql else []
        case(f"check: {c.name}", message, "\n".join(details))
    for label, o in (("rto", report.rto), ("rpo", report.rpo)):
        achieved = _dur(o.achieved_s, "not measured")
        if o.met:
            case(f"{label} within target", seconds=o.achieved_s or 0.0)
        else:
            case(
                f"{label} within target",
                f"{label.upper()} {achieved} against a target of {_dur(o.target_s)}",
                seconds=o.achieved_s or 0.0,
            )
    leaked = report.resources.leaked
    case(
        "resources cleaned up",
        f"{len(leaked)} resource(s) leaked: {', '.join(leaked)}" if leaked else None,
        "\n".join(leaked),
    )
    for s in report.steps:
        if s.status == "failed":
            case(f"step: {s.name}", f"step {s.name} failed: {s.detail}", s.detail, s.duration_s or 0.0)

    cases = suite.findall("testcase")
    suite.set("tests", str(len(cases)))
    suite.set("failures", str(sum(1 for tc in cases if tc.find("failure") is not None)))
    suite.set("errors", "0")
    suite.set("skipped", "0")
    ET.indent(suite)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suite, encoding="unicode") + "\n"


def render(report: DrillReport, fmt: str, history: Sequence[DrillReport] = ()) -> str:
    """Render one of FORMATS by name (what `drkit report render --format` calls)."""
    if fmt == "json":
        return render_json(report)
    if fmt == "md":
        return render_markdown(report, history)
    if fmt == "html":
        return render_html(report, history)
    if fmt == "junit":
        return render_junit(report)
    raise UsageError(f"unknown report format {fmt!r}: use one of {', '.join(FORMATS)}")


# --- files -------------------------------------------------------------------------------


def _write_atomic(path: Path, data: bytes) -> None:
    """Write via a temp file in the same directory and rename, so readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # reports are meant to be read by others; mkstemp makes 0600
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _publish_public_key(report_dir: Path, signer: ReportSigner) -> None:
    """Place the signer's public key at report_dir/signing-key.pub.pem.

    When the key was rotated, the old public key is kept as signing-key.<hex>.pub.pem so that
    reports signed before the rotation still verify from this folder alone.
    """
    path = report_dir / PUBLIC_KEY_NAME
    pem = signer.public_key_pem()
    if path.exists():
        old = path.read_bytes()
        if old == pem:
            return
        try:
            old_id = key_id_of(load_public_key(old)).split(":", 1)[1]
            _write_atomic(report_dir / f"signing-key.{old_id}.pub.pem", old)
        except ValueError:
            pass  # not a key we can read: nothing worth keeping, replace it
    _write_atomic(path, pem)


def write_report(
    report: DrillReport,
    report_dir: Path,
    formats: Collection[str],
    *,
    signer: ReportSigner | None,
    history: Sequence[DrillReport] = (),
) -> dict[str, Path]:
    """Write `report_dir/<drill>/<started-at>.<ext>` for each format; return {format: path}.

    The JSON is signed when a signer is given, and the other renderings show the same key id.
    Each file is written atomically (temp file + rename).
    """
    unknown = sorted(set(formats) - set(FORMATS))
    if unknown:
        raise UsageError(f"unknown report format(s) {', '.join(unknown)}: use {', '.join(FORMATS)}")
    if not report.drill or "/" in report.drill or "\\" in report.drill or report.drill.startswith("."):
        raise UsageError(f"drill name {report.drill!r} cannot be used as a folder name")
    report_dir = Path(report_dir)
    doc = report.to_dict()
    if signer is not None:
        doc = signer.sign(doc)
        sig = doc["signature"]
        report = replace(
            report, signature=Signature(alg=sig["alg"], key_id=sig["key_id"], value=sig["value"])
        )
        _publish_public_key(report_dir, signer)
    base = report_dir / report.drill / report.stamp
    written: dict[str, Path] = {}
    for fmt in (f for f in FORMATS if f in formats):  # contract order, whatever order was asked
        path = base.with_suffix(FORMATS[fmt])
        if fmt == "json":
            text = json.dumps(doc, indent=2, ensure_ascii=False, allow_nan=False) + "\n"
        else:
            text = render(report, fmt, history)
        _write_atomic(path, text.encode("utf-8"))
        written[fmt] = path
    return written


def load_report(path: Path) -> dict[str, Any]:
    """Read a stored JSON report as a dict (verify it as is; `DrillReport.from_dict` to render)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"{path}: no such report") from None
    except OSError as e:
        raise UsageError(f"{path}: cannot read the report: {e.strerror}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise UsageError(f"{path}: not a JSON report ({e})") from None
    if not isinstance(data, Mapping):
        raise UsageError(f"{path}: not a drill report (the JSON is not an object)")
    return dict(data)


def find_public_key(report_path: Path, key_id: str | None = None) -> Path | None:
    """The published public key for a report at `<report_dir>/<drill>/<stamp>.json`.

    Looks beside the report and one folder up (the report dir). With `key_id`, prefers the
    file holding that key (older keys are kept as signing-key.<hex>.pub.pem after rotation).
    """
    report_path = Path(report_path)
    for folder in (report_path.parent, report_path.parent.parent):
        candidates = [folder / PUBLIC_KEY_NAME, *sorted(folder.glob("signing-key.*.pub.pem"))]
        for candidate in candidates:
            if not candidate.is_file():
                continue
            if key_id is None:
                return candidate
            try:
                if key_id_of(load_public_key(candidate.read_bytes())) == key_id:
                    return candidate
            except (OSError, ValueError):
                continue
    return None
