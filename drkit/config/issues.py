"""Turn pydantic's validation errors into `field.path: message` a person can act on.

pydantic's own messages are written for programmers ("Input should be a valid dictionary or
instance of KeepConfig"); here each becomes what a config author needs: what is wrong, and
what to write instead. Cross-field rules raise `Problems`, expanded into one issue per path.
"""

from __future__ import annotations

import difflib
import types
import typing
from datetime import date
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from drkit.config.fields import Loc, Problems, dotted

__all__ = ["describe", "dotted", "pydantic_issues"]


def describe(value: Any) -> str:
    """A short rendering of a YAML value for messages."""
    if value is None:
        return "nothing"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, bool):
        return "true" if value else "false"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _unwrap(annotation: Any) -> Any:
    """Strip Annotated[...] and Optional[...] down to the type that matters."""
    while True:
        origin = typing.get_origin(annotation)
        if origin is typing.Annotated:
            annotation = typing.get_args(annotation)[0]
        elif origin in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(annotation) if a is not type(None)]
            if len(args) != 1:
                return annotation
            annotation = args[0]
        else:
            return annotation


def _model_at(root: type[BaseModel], loc: Loc) -> type[BaseModel] | None:
    """The model class found at `loc` inside `root`, or None (a list, a scalar, unknown)."""
    current: Any = root
    for part in loc:
        current = _unwrap(current)
        origin = typing.get_origin(current)
        if isinstance(part, str) and isinstance(current, type) and issubclass(current, BaseModel):
            field = current.model_fields.get(part)
            if field is None:
                return None
            current = field.annotation
        elif isinstance(part, int) and origin in (list, tuple):
            current = typing.get_args(current)[0]
        elif isinstance(part, str) and origin is dict:
            current = typing.get_args(current)[1]
        else:
            return None
    current = _unwrap(current)
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _message(err: ErrorDetails, root: type[BaseModel], loc: Loc) -> str:
    kind = err["type"]
    value = err.get("input")
    ctx = err.get("ctx") or {}
    if kind == "missing":
        parent = _model_at(root, loc[:-1])
        field = parent.model_fields.get(str(loc[-1])) if parent and loc else None
        return f"required: {field.description}" if field and field.description else "required"
    if kind == "extra_forbidden":
        parent = _model_at(root, loc[:-1])
        key = str(loc[-1]) if loc else "?"
        if parent is None:
            return f"unknown key '{key}'"
        allowed = list(parent.model_fields)
        close = difflib.get_close_matches(key, allowed, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        return f"unknown key '{key}'{hint}; expected one of: {', '.join(allowed)}"
    if kind in ("value_error", "assertion_error"):
        error = ctx.get("error")
        return str(error) if error is not None else err["msg"]
    if kind == "literal_error":
        return f"{describe(value)} is not one of {ctx.get('expected', '')}"
    if kind in ("too_short", "string_too_short"):
        return "must not be empty"
    if kind in ("int_type", "int_parsing", "int_from_float"):
        return f"expected a whole number, got {describe(value)}"
    if kind in ("bool_type", "bool_parsing"):
        return f"expected true or false, got {describe(value)}"
    if kind == "string_type":
        quote = f' (quote it: "{value}")' if isinstance(value, int | float | date) else ""
        return f"expected text, got {describe(value)}{quote}"
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return f"expected a mapping (key: value), got {describe(value)}"
    if kind in ("list_type", "tuple_type"):
        return f"expected a list, got {describe(value)}"
    return str(err["msg"])


def pydantic_issues(exc: ValidationError, root: type[BaseModel]) -> list[tuple[Loc, str]]:
    """Each error of `exc` (raised validating `root`) as (path, message)."""
    out: list[tuple[Loc, str]] = []
    errors = exc.errors()
    item_errors = {tuple(e["loc"][:i]) for e in errors for i, p in enumerate(e["loc"]) if isinstance(p, int)}
    for err in errors:
        # "[key]" marks an error in a mapping's key itself (e.g. a bad param name): point at the key.
        loc: Loc = tuple(part for part in err["loc"] if part != "[key]")
        if err["type"] == "too_short" and loc in item_errors:
            continue  # pydantic counts only the valid items: a list of bad items is not "empty"
        error = (err.get("ctx") or {}).get("error")
        if isinstance(error, Problems):
            out.extend(((*loc, *sub), message) for sub, message in error.items)
        else:
            out.append((loc, _message(err, root, loc)))
    return out
