"""Runbooks (runbooks/*.yaml): incident procedures whose steps are drkit commands or manual work.

Placeholders are Python format fields (`{instance}`; `{{` and `}}` for literal braces), so
a shell `${VAR}` must be written `${{VAR}}`. Every placeholder must be a declared param:
a typo must fail at `drkit validate`, not halfway through an incident.
"""

from __future__ import annotations

import difflib
import re
import string
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BeforeValidator, Field, WithJsonSchema, model_validator

from drkit.config.fields import ConfigModel, Document, Loc, ProblemList, Text, aware_time, exactly_one
from drkit.domain.durations import parse_duration

__all__ = ["Param", "Runbook", "Step", "placeholders"]

ParamType = Literal["string", "datetime", "duration", "int"]
_PARAM_RE = re.compile(r"^[a-z_][a-z0-9_]*$")


def _param_name(text: str) -> str:
    if not _PARAM_RE.match(text):
        raise ValueError(f"{text!r} is not a param name: use lowercase letters, digits and '_'")
    return text


ParamName = Annotated[
    str, AfterValidator(_param_name), WithJsonSchema({"type": "string", "pattern": _PARAM_RE.pattern})
]


def placeholders(text: str) -> list[str]:
    """The `{name}` fields of `text`, in order; ValueError for braces that do not parse."""
    names: list[str] = []
    try:
        parsed = list(string.Formatter().parse(text))
    except ValueError:
        raise ValueError(
            "unbalanced braces: write {param} for a param, {{ and }} for literal braces"
        ) from None
    for _, field, spec, conversion in parsed:
        if field is None:
            continue
        if not _PARAM_RE.match(field) or spec or conversion:
            whole = (
                "{" + field + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "") + "}"
            )
            raise ValueError(
                f"'{whole}' is not a placeholder: write {{param}} (or {{{{ }}}} for literal braces)"
            )
        names.append(field)
    return names


def _default_text(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value


class Param(ConfigModel):
    """A runbook parameter, given as `-p NAME=VALUE` on `drkit runbook run`.

    Example::

        required: true
        type: datetime
        help: when the damage started
    """

    required: bool = False
    type: ParamType = "string"
    default: (
        Annotated[str, BeforeValidator(_default_text), WithJsonSchema({"type": ["string", "integer"]})] | None
    ) = Field(default=None, description="may use other params: '{instance}-restored'")
    help: str | None = None

    @model_validator(mode="after")
    def _default_fits(self) -> Param:
        if self.required and self.default is not None:
            raise ValueError("a required param has no default: drop one of required or default")
        if self.default is not None and "{" not in self.default:
            check_value(self.type, self.default)
        return self


def check_value(kind: str, text: str) -> None:
    """Raise ValueError when `text` is not a value of param type `kind`."""
    if kind == "int":
        try:
            int(text)
        except ValueError:
            raise ValueError(f"{text!r} is not an int") from None
    elif kind == "duration":
        parse_duration(text)
    elif kind == "datetime":
        aware_time(text)


class Step(ConfigModel):
    """One runbook step: a command to `run`, or `manual` work for a person; `confirm` asks first.

    Example::

        name: restore
        run: drkit restore rds --instance {instance} --to-time {to_time} --target {target}
        confirm: true
    """

    name: Text
    manual: Text | None = Field(default=None, description="what a person does")
    run: Text | None = Field(default=None, description="the command drkit runs (placeholders allowed)")
    confirm: bool = Field(default=False, description="ask before this step (skipped with --yes)")

    @model_validator(mode="after")
    def _one_action(self) -> Step:
        problem = exactly_one({"run": self.run, "manual": self.manual}, "what the step does")
        if problem:
            raise ValueError(problem)
        return self

    @property
    def kind(self) -> Literal["run", "manual"]:
        return "run" if self.run is not None else "manual"

    @property
    def text(self) -> str:
        value = self.run if self.run is not None else self.manual
        assert value is not None
        return value


class Runbook(Document):
    """A runbook file.

    Example::

        title: Restore an RDS instance to a point in time
        when: Data was corrupted at a known time.
        params:
          instance: {required: true, help: DB instance identifier}
          target: {default: "{instance}-restored"}
        steps:
          - {name: approval, manual: "Get the incident commander's approval.", confirm: true}
          - {name: restore, run: "drkit restore rds --instance {instance} --target {target}"}
    """

    title: Text
    when: Text = Field(description="the situation this runbook is for")
    params: dict[ParamName, Param] = Field(default_factory=dict)
    steps: tuple[Step, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _references(self) -> Runbook:
        problems = ProblemList()
        declared = sorted(self.params)
        uses: dict[str, list[str]] = {}

        def check(loc: Loc, text: str) -> list[str]:
            try:
                names = placeholders(text)
            except ValueError as exc:
                problems.add(loc, str(exc))
                return []
            for name in dict.fromkeys(names):
                if name not in self.params:
                    close = difflib.get_close_matches(name, declared, n=1)
                    hint = f" (did you mean '{close[0]}'?)" if close else ""
                    have = ", ".join(declared) or "none"
                    problems.add(loc, f"'{{{name}}}' is not a declared param{hint}; params: {have}")
            return names

        for name, param in self.params.items():
            if param.default is not None:
                uses[name] = check(("params", name, "default"), param.default)
        first: dict[str, int] = {}
        for i, step in enumerate(self.steps):
            check(("steps", i, step.kind), step.text)
            if step.name in first:
                problems.add(
                    ("steps", i, "name"), f"'{step.name}' is already the name of steps[{first[step.name]}]"
                )
            else:
                first[step.name] = i
        loop = _default_loop(uses)
        if loop:
            problems.add(("params", loop[0], "default"), "defaults refer to each other: " + " -> ".join(loop))
        problems.raise_if_any()
        return self


def _default_loop(uses: dict[str, list[str]]) -> list[str] | None:
    """A cycle among param defaults (`a: {b}`, `b: {a}`), as [a, b, a]; None when there is none."""
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done

    def visit(name: str, path: list[str]) -> list[str] | None:
        if state.get(name) == 1:
            return [*path[path.index(name) :], name]
        if state.get(name) == 2 or name not in uses:
            return None
        state[name] = 1
        for used in uses[name]:
            found = visit(used, [*path, name])
            if found:
                return found
        state[name] = 2
        return None

    for name in sorted(uses):
        found = visit(name, [])
        if found:
            return found
    return None
