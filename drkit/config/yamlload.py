"""YAML with line numbers: parse a document and remember where every key and item starts.

Why not `yaml.safe_load`: a configuration error must name the file, the line and the field
(CONTRACT.md), and `safe_load` throws the positions away. Here the document is composed into
PyYAML nodes and walked by hand, which also lets us:

- record, for every path such as ``("verify", "checks", 1, "expect")``, the line of the key
  (for mapping entries) or of the item (for sequence entries);
- reject duplicate keys (PyYAML silently keeps the last one, hiding a typo'd override);
- keep mapping keys as the text written (YAML 1.1 would turn a key `on:` into `True`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

Loc = tuple[str | int, ...]


@dataclass(frozen=True)
class YamlProblem:
    """A problem found while reading YAML: 1-based line, path of the field (may be empty), message."""

    line: int
    path: Loc
    message: str


@dataclass
class YamlDoc:
    """Plain Python data (dicts, lists, scalars) plus the line where each path starts."""

    data: Any
    lines: dict[Loc, int] = field(default_factory=dict)
    root_line: int = 1  # where the document's content starts (after leading comments)

    def line_of(self, loc: Sequence[str | int]) -> int:
        """Line of `loc`, or of its nearest parent that has one (a missing key -> its mapping)."""
        path = tuple(loc)
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path[:-1]
        return 1  # a key missing at the top: the file as a whole


def _syntax_problem(exc: yaml.YAMLError) -> YamlProblem:
    """One line for a YAML error, at the line PyYAML points to."""
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 1
        problem = exc.problem or "invalid YAML"
        text = f"invalid YAML: {problem}"
        if exc.context:
            where = f" (line {exc.context_mark.line + 1})" if exc.context_mark is not None else ""
            text += f", {exc.context}{where}"
        return YamlProblem(line, (), text)
    return YamlProblem(1, (), f"invalid YAML: {exc}")


class _Walker:
    """Turns a node tree into plain data, recording lines and collecting problems."""

    def __init__(self, loader: yaml.SafeLoader) -> None:
        self.loader = loader
        self.lines: dict[Loc, int] = {}
        self.problems: list[YamlProblem] = []
        self.open_nodes: set[int] = set()  # ids of the collections being walked (alias loops)

    def value(self, node: Node, path: Loc) -> Any:
        if not isinstance(node, MappingNode | SequenceNode):
            return self.scalar(node, path)
        if id(node) in self.open_nodes:
            self.problems.append(YamlProblem(node.start_mark.line + 1, path, "an alias refers to itself"))
            return None
        self.open_nodes.add(id(node))
        try:
            if isinstance(node, MappingNode):
                return self.mapping(node, path)
            items = []
            for index, item in enumerate(node.value):
                self.lines[(*path, index)] = item.start_mark.line + 1
                items.append(self.value(item, (*path, index)))
            return items
        finally:
            self.open_nodes.discard(id(node))

    def scalar(self, node: Node, path: Loc) -> Any:
        try:
            return self.loader.construct_object(node, deep=True)
        except yaml.YAMLError as exc:
            problem = _syntax_problem(exc)
            self.problems.append(YamlProblem(node.start_mark.line + 1, path, problem.message))
            return None

    def mapping(self, node: MappingNode, path: Loc) -> dict[str, Any]:
        try:
            # Resolves `<<: *anchor` merge keys the way PyYAML's SafeLoader does.
            self.loader.flatten_mapping(node)
        except yaml.YAMLError as exc:
            self.problems.append(_syntax_problem(exc))
        out: dict[str, Any] = {}
        first_seen: dict[str, int] = {}
        for key_node, value_node in node.value:
            line = key_node.start_mark.line + 1
            if not isinstance(key_node, ScalarNode):
                self.problems.append(
                    YamlProblem(line, path, "a key must be plain text, not a list or mapping")
                )
                continue
            key = str(key_node.value)
            if key in first_seen:
                self.problems.append(
                    YamlProblem(
                        line, (*path, key), f"duplicate key '{key}' (first at line {first_seen[key]})"
                    )
                )
            else:
                first_seen[key] = line
                self.lines[(*path, key)] = line
            out[key] = self.value(value_node, (*path, key))
        return out


def load_yaml(text: str) -> tuple[YamlDoc | None, list[YamlProblem]]:
    """Parse one YAML document. Returns (doc, problems); doc is None when the syntax is broken.

    An empty document yields a doc whose data is None (the caller says what was expected).
    """
    loader = yaml.SafeLoader(text)
    try:
        try:
            node = loader.get_single_node()
        except yaml.YAMLError as exc:
            return None, [_syntax_problem(exc)]
        if node is None:
            return YamlDoc(data=None), []
        walker = _Walker(loader)
        data = walker.value(node, ())
        return YamlDoc(data=data, lines=walker.lines, root_line=node.start_mark.line + 1), walker.problems
    finally:
        loader.dispose()
