"""Expectations of a verification check (CONTRACT.md: `expect`).

Forms: `== N`, `>= N`, `<= N`, `> N`, `< N`, `between A and B`, `not null`, or a literal
value compared as text (so `expect: t` matches PostgreSQL's boolean true rendered as text,
and `expect: "42"` matches the number 42).

    >>> parse_expect(">= 1000").holds(1200)
    True
    >>> parse_expect("between 1 and 3").holds(4)
    False
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

_CMP: dict[str, Callable[[Any, Any], bool]] = {
    "==": operator.eq,
    ">=": operator.ge,
    "<=": operator.le,
    ">": operator.gt,
    "<": operator.lt,
}
_CMP_RE = re.compile(r"^(==|>=|<=|>|<)\s*(\S.*)$")
_BETWEEN_RE = re.compile(r"^between\s+(\S+)\s+and\s+(\S+)$", re.IGNORECASE)


def _number(text: str) -> Decimal:
    try:
        return Decimal(text.strip())
    except InvalidOperation as exc:
        raise ValueError(f"{text!r} is not a number") from exc


def _as_number(value: Any) -> Decimal | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float | Decimal):
        return Decimal(str(value))
    try:
        return Decimal(str(value).strip())
    except InvalidOperation:
        return None


def _render(value: Any) -> str:
    """How a SQL value reads as text (PostgreSQL's own text output where it matters)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "t" if value else "f"
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(value)


@dataclass(frozen=True)
class Expectation:
    """A parsed `expect`; `holds(value)` says whether a query result satisfies it."""

    text: str
    kind: str  # "compare" | "between" | "not_null" | "literal"
    op: str = ""
    low: Decimal | None = None
    high: Decimal | None = None
    literal: str = ""

    def holds(self, value: Any) -> bool:
        if self.kind == "not_null":
            return value is not None
        if self.kind == "literal":
            if isinstance(value, bool):
                return self.literal.lower() in ({"t", "true"} if value else {"f", "false"})
            num, lit = _as_number(value), _as_number(self.literal)
            if num is not None and lit is not None:
                return num == lit
            return _render(value) == self.literal
        num = _as_number(value)
        if num is None:
            return False
        if self.kind == "between":
            assert self.low is not None and self.high is not None
            return self.low <= num <= self.high
        assert self.low is not None
        return _CMP[self.op](num, self.low)


def parse_expect(text: Any) -> Expectation:
    """Parse an `expect` value from YAML (a string, or a bare number/bool literal)."""
    if isinstance(text, bool):
        return Expectation(text=str(text).lower(), kind="literal", literal=str(text).lower())
    raw = str(text).strip()
    if not raw:
        raise ValueError("expect is empty: write e.g. '>= 1', 'between 1 and 10', 'not null' or a value")
    if raw.lower() == "not null":
        return Expectation(text=raw, kind="not_null")
    m = _BETWEEN_RE.match(raw)
    if m:
        low, high = _number(m.group(1)), _number(m.group(2))
        if low > high:
            raise ValueError(f"{raw!r}: the lower bound is above the upper bound")
        return Expectation(text=raw, kind="between", low=low, high=high)
    m = _CMP_RE.match(raw)
    if m:
        return Expectation(text=raw, kind="compare", op=m.group(1), low=_number(m.group(2)))
    return Expectation(text=raw, kind="literal", literal=raw)
