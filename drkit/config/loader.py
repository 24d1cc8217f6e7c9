"""Load a config directory (schedules/, drills/, runbooks/) into typed models, or fail with
every problem at once, each as `FILE:LINE: field.path: message`, sorted by file and line.

"Validation that stops": nothing runs on a configuration with any error in it, and the user
sees all of them in one go rather than one per attempt.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from drkit.config.drill import Drill
from drkit.config.fields import Document, Loc
from drkit.config.issues import dotted, pydantic_issues
from drkit.config.runbook import Runbook
from drkit.config.schedule import Schedule
from drkit.config.yamlload import YamlDoc, load_yaml
from drkit.errors import ConfigError, UsageError

__all__ = ["FOLDERS", "KINDS", "Config", "json_schema", "load_config"]

KINDS = ("schedule", "drill", "runbook")
FOLDERS = {"schedule": "schedules", "drill": "drills", "runbook": "runbooks"}
MODELS: dict[str, type[Document]] = {"schedule": Schedule, "drill": Drill, "runbook": Runbook}
_NAME_CHARS = set("abcdefghijklmnopqrstuvwxyz0123456789-")
_T = TypeVar("_T")
_HOW = "point --config-dir or DRKIT_CONFIG_DIR at the directory that holds them"


@dataclass(frozen=True)
class Config:
    """Everything in a config directory, by kind and name (the file stem)."""

    config_dir: Path
    schedules: dict[str, Schedule] = field(default_factory=dict)
    drills: dict[str, Drill] = field(default_factory=dict)
    runbooks: dict[str, Runbook] = field(default_factory=dict)

    def resolve_path(self, text: str) -> Path:
        """A path from the config (`file://.drkit/backups`, `.drkit/backup.key`, `~/keys/k`):
        relative paths are relative to the config directory, not to wherever drkit runs."""
        if text.startswith("s3://"):
            raise UsageError(f"{text} is an S3 location, not a local path")
        if text.startswith("file://"):
            text = text[len("file://") :]
        path = Path(text).expanduser()
        return path if path.is_absolute() else self.config_dir / path

    def schedule(self, name: str) -> Schedule:
        return self._lookup("schedule", self.schedules, name)

    def drill(self, name: str) -> Drill:
        return self._lookup("drill", self.drills, name)

    def runbook(self, name: str) -> Runbook:
        return self._lookup("runbook", self.runbooks, name)

    def _lookup(self, kind: str, items: dict[str, _T], name: str) -> _T:
        if name in items:
            return items[name]
        have = ", ".join(sorted(items)) or "none"
        raise UsageError(f"no {kind} named {name} in {self.config_dir / FOLDERS[kind]} (have: {have})")


@dataclass(frozen=True, order=True)
class _Issue:
    file: str
    line: int
    seq: int  # keeps the order of discovery among issues on the same line
    path: str = ""
    message: str = ""

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}"
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


class _Collector:
    def __init__(self) -> None:
        self.issues: list[_Issue] = []

    def add(self, file: str, line: int, loc: Loc, message: str) -> None:
        self.issues.append(_Issue(file, line, len(self.issues), dotted(loc), message))


def _validate(kind: str, data: Any, doc: YamlDoc, label: str, issues: _Collector) -> Document | None:
    model = MODELS[kind]
    if data is None:
        issues.add(
            label, 1, (), f"the file is empty: a {kind} is a mapping of keys (see `drkit schema {kind}`)"
        )
        return None
    if not isinstance(data, dict):
        issues.add(label, doc.root_line, (), f"a {kind} is a mapping of keys (key: value), not {_what(data)}")
        return None
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        for loc, message in pydantic_issues(exc, model):
            issues.add(label, doc.line_of(loc), loc, message)
        return None


def _what(data: Any) -> str:
    return "a list" if isinstance(data, list) else f"the value {data!r}"


def _raw_ref(data: Any) -> tuple[str, str | None, str | None] | None:
    """(engine, schedule, resource) as written in a drill's `source`, valid or not."""
    source = data.get("source") if isinstance(data, dict) else None
    if not isinstance(source, dict):
        return None
    for engine in ("rds", "postgres"):
        ref = source.get(engine)
        if isinstance(ref, dict):
            schedule, resource = ref.get("schedule"), ref.get("resource")
            return (
                engine,
                schedule if isinstance(schedule, str) else None,
                resource if isinstance(resource, str) else None,
            )
    return None


def _check_reference(
    data: Any,
    drill: Drill | None,
    doc: YamlDoc,
    label: str,
    schedules: dict[str, Schedule],
    stems: set[str],
    issues: _Collector,
) -> None:
    """A drill's source must name an existing schedule and a resource of the right engine in it.

    Checked on the raw data too, so a drill with other errors still reports a bad reference.
    """
    found = _raw_ref(data)
    if found is None:
        return
    engine, schedule_name, resource = found

    def report(loc: Loc, message: str) -> None:
        issues.add(label, doc.line_of(loc), loc, message)

    if schedule_name is None:
        return
    if schedule_name not in stems:
        have = ", ".join(sorted(stems)) or "none"
        report(
            ("source", engine, "schedule"),
            f"no schedule named '{schedule_name}' in schedules/ (have: {have})",
        )
        return
    schedule = schedules.get(schedule_name)
    if schedule is None or resource is None:  # the schedule's own errors are reported on their own
        return
    items = schedule.rds if engine == "rds" else schedule.postgres
    names = [item.name for item in items]
    if resource not in names:
        message = (
            f"schedule '{schedule_name}' has no {engine} resource named '{resource}' "
            f"({engine} resources: {', '.join(names) or 'none'})"
        )
        other = schedule.resource(resource)
        if other is not None:
            section = next(s for s in ("rds", "s3", "postgres") if other in getattr(schedule, s))
            message += f"; '{resource}' is in its {section} section"
        report(("source", engine, "resource"), message)
        return
    if drill is not None and engine == "rds" and drill.source.recovery_point == "latest-copy":
        rds = next(item for item in schedule.rds if item.name == resource)
        if rds.copies is None:
            report(
                ("source", "recovery_point"),
                f"latest-copy, but '{resource}' has no copies in schedules/{schedule_name}.yaml",
            )
        elif drill.restore is not None and drill.restore.region != rds.copies.region:
            report(
                ("restore", "region"),
                f"{drill.restore.region}, but the copies of '{resource}' are in {rds.copies.region}: "
                "restore where the copies are",
            )


def _files(config_dir: Path, folder: str) -> list[Path]:
    directory = config_dir / folder
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.iterdir() if p.is_file() and not p.name.startswith("."))


def load_config(config_dir: Path, *, kinds: Collection[str] = KINDS) -> Config:
    """Load and validate the config directory; raise ConfigError listing every problem.

    Loading drills also loads schedules, because a drill's source must name a resource that
    exists there. Relative paths in the result resolve with `Config.resolve_path`.
    """
    config_dir = Path(config_dir)
    unknown = [k for k in kinds if k not in KINDS]
    if unknown:
        raise UsageError(f"unknown config kind {unknown[0]!r}: one of {', '.join(KINDS)}")
    where = ", ".join(f"{config_dir / FOLDERS[k]}/*.yaml" for k in KINDS)
    if not config_dir.is_dir():
        raise ConfigError([f"{config_dir}: no such config directory (looked for {where}; {_HOW})"])
    listing = {kind: _files(config_dir, FOLDERS[kind]) for kind in KINDS}
    if not any(p.suffix in (".yaml", ".yml") for paths in listing.values() for p in paths):
        raise ConfigError([f"{config_dir}: no configuration files found (looked for {where}; {_HOW})"])

    wanted = set(kinds) | ({"schedule"} if "drill" in kinds else set())
    issues = _Collector()
    loaded: dict[str, dict[str, Any]] = {kind: {} for kind in KINDS}
    drill_docs: dict[str, tuple[YamlDoc, str]] = {}
    for kind in KINDS:
        if kind not in wanted:
            continue
        for path in listing[kind]:
            label = path.relative_to(config_dir).as_posix()
            if path.suffix == ".yml":
                issues.add(label, 1, (), f"drkit reads *.yaml files: rename it to {path.stem}.yaml")
                continue
            if path.suffix != ".yaml":
                continue
            if not path.stem or not set(path.stem) <= _NAME_CHARS:
                issues.add(
                    label, 1, (), f"'{path.stem}' is not a valid name: use lowercase letters, digits and '-'"
                )
            try:
                text = path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                issues.add(label, 1, (), f"cannot read: {exc}")
                continue
            doc, problems = load_yaml(text)
            for problem in problems:
                issues.add(label, problem.line, problem.path, problem.message)
            if doc is None:
                continue
            loaded[kind][path.stem] = None  # present, even if invalid (for cross-references)
            item = _validate(kind, doc.data, doc, label, issues)
            if item is not None:
                item.bind(path.stem, path)
                loaded[kind][path.stem] = item
            if kind == "drill":
                drill_docs[path.stem] = (doc, label)

    schedules: dict[str, Schedule] = {k: v for k, v in loaded["schedule"].items() if v is not None}
    stems = set(loaded["schedule"])
    for name, (doc, label) in drill_docs.items():
        _check_reference(doc.data, loaded["drill"][name], doc, label, schedules, stems, issues)

    if issues.issues:
        raise ConfigError([str(issue) for issue in sorted(issues.issues)])
    return Config(
        config_dir=config_dir,
        schedules=schedules if "schedule" in wanted else {},
        drills={k: v for k, v in loaded["drill"].items() if v is not None},
        runbooks={k: v for k, v in loaded["runbook"].items() if v is not None},
    )


def json_schema(kind: str) -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of a config kind, for editors (`drkit schema KIND`)."""
    if kind not in MODELS:
        raise UsageError(f"unknown config kind {kind!r}: one of {', '.join(KINDS)}")
    model: type[BaseModel] = MODELS[kind]
    schema = model.model_json_schema()
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        **schema,
        "title": f"drkit {kind} ({FOLDERS[kind]}/*.yaml)",
    }
