"""The example configurations are real: the contract's, the repository's and the docstrings'.

CONTRACT.md's YAML blocks are read straight out of the contract, so that the contract and the
code cannot drift apart; the repository's example files must be byte-for-byte those blocks.
"""

from __future__ import annotations

import inspect
import json
import os
import re
import textwrap
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel

import drkit.config.models as models
from drkit.config import json_schema, load_config

REPO = Path(__file__).resolve().parents[2]
CONTRACT = REPO.parent / "shared" / "design" / "CONTRACT.md"
EXAMPLES = {
    "schedule": ["schedules/production.yaml", "schedules/local.yaml"],
    "drill": ["drills/quarterly-production.yaml", "drills/local-demo.yaml"],
    "runbook": ["runbooks/restore-rds-pitr.yaml"],
}


def contract_blocks() -> dict[str, str]:
    """The contract's ```yaml blocks, keyed by the path in their first line (`# schedules/x.yaml`)."""
    if not CONTRACT.is_file():
        if os.environ.get("CI") == "true":
            pytest.fail(f"{CONTRACT} is missing: the config examples cannot be checked against the contract")
        pytest.skip(f"{CONTRACT} not present (outside the shared workspace)")
    text = CONTRACT.read_text(encoding="utf-8")
    blocks = re.findall(r"^```yaml\n(.*?)^```", text, re.S | re.M)
    out = {}
    for block in blocks:
        first = block.splitlines()[0]
        match = re.fullmatch(r"#\s*(\S+\.yaml)", first)
        assert match, f"a contract YAML block must start with '# DIR/NAME.yaml', found {first!r}"
        out[match.group(1)] = block
    return out


def test_the_contract_has_the_three_examples() -> None:
    assert sorted(contract_blocks()) == [
        "drills/quarterly-production.yaml",
        "runbooks/restore-rds-pitr.yaml",
        "schedules/production.yaml",
    ]


def test_the_contract_examples_validate_as_written(tmp_path: Path) -> None:
    for rel, block in contract_blocks().items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(block, encoding="utf-8")
    config = load_config(tmp_path)
    schedule = config.schedule("production")
    assert [r.name for r in schedule.rds] == ["orders"]
    assert schedule.rds[0].copies is not None and schedule.rds[0].copies.kms_key == "alias/drkit-dr"
    assert [n.kind for n in schedule.notify] == ["slack", "sns"]
    drill = config.drill("quarterly-production")
    assert (drill.engine, drill.source.point, drill.scenario) == ("rds", "latest-copy", "region-loss")
    assert [c.freshness for c in drill.verify.checks] == [False, True]
    runbook = config.runbook("restore-rds-pitr")
    assert [s.kind for s in runbook.steps] == ["manual", "run", "run", "manual"]
    assert runbook.params["to_time"].type == "datetime"


@pytest.mark.parametrize(
    "rel", ["schedules/production.yaml", "drills/quarterly-production.yaml", "runbooks/restore-rds-pitr.yaml"]
)
def test_the_repository_examples_are_the_contract_examples_byte_for_byte(rel: str) -> None:
    assert (REPO / rel).read_text(encoding="utf-8") == contract_blocks()[rel]


def test_the_repository_config_loads_without_errors() -> None:
    config = load_config(REPO)
    assert {"production", "local"} <= set(config.schedules)
    assert {"quarterly-production", "local-demo"} <= set(config.drills)
    assert "restore-rds-pitr" in config.runbooks


def test_the_demo_drill_restores_the_demo_schedule() -> None:
    config = load_config(REPO)
    local = config.schedule("local")
    app = local.postgres[0]
    assert (local.environment, app.name, app.dsn_env) == ("demo", "app", "DRKIT_DEMO_DSN")
    assert app.backups.keep.to_policy().describe() == "last 10, daily 7, weekly 4"
    assert config.resolve_path(app.store) == REPO / ".drkit" / "backups"
    assert app.encryption.key_file is not None
    assert config.resolve_path(app.encryption.key_file) == REPO / ".drkit" / "backup.key"

    demo = config.drill("local-demo")
    assert (demo.engine, demo.source.ref.schedule, demo.source.ref.resource) == ("postgres", "local", "app")
    assert demo.source.point == "latest"
    checks = {c.name: c for c in demo.verify.checks}
    assert list(checks) == [
        "accounts present",
        "branches present",
        "every account has a branch",
        "newest heartbeat",
    ]
    accounts = checks["accounts present"].expectation
    assert accounts is not None and accounts.holds(100000) and not accounts.holds(99999)
    orphans = checks["every account has a branch"].expectation
    assert orphans is not None and orphans.holds(0) and not orphans.holds(1)
    assert checks["newest heartbeat"].freshness and checks["newest heartbeat"].expect is None
    assert (demo.teardown, demo.report.formats) == ("always", ("json", "md", "html", "junit"))


def _model_classes() -> list[type[BaseModel]]:
    return [
        obj
        for obj in vars(models).values()
        if inspect.isclass(obj)
        and issubclass(obj, BaseModel)
        and obj.__module__.startswith("drkit.config.")
        and obj.__name__ not in ("ConfigModel", "Document")
    ]


@pytest.mark.parametrize("model", _model_classes(), ids=lambda m: m.__name__)
def test_each_model_docstring_has_a_yaml_example_that_validates(model: type[BaseModel]) -> None:
    doc = inspect.cleandoc(model.__doc__ or "")
    match = re.search(r"Example::\n\n((?:[ ]{4}.*\n?|\n)+)", doc)
    assert match, f"{model.__name__}'s docstring has no 'Example::' YAML block"
    data = yaml.safe_load(textwrap.dedent(match.group(1)))
    model.model_validate(data)


def _json_ready(value: Any) -> Any:
    """YAML data as JSON would carry it (times as ISO-8601 text), for JSON Schema validation."""
    return json.loads(json.dumps(value, default=lambda v: v.isoformat() if isinstance(v, date) else str(v)))


@pytest.mark.parametrize("kind", sorted(EXAMPLES))
def test_json_schema_is_valid_and_accepts_the_examples(kind: str) -> None:
    schema = json_schema(kind)
    json.dumps(schema)  # serialisable as is, for `drkit schema`
    examples = [_json_ready(yaml.safe_load((REPO / rel).read_text())) for rel in EXAMPLES[kind]]
    bad = {**examples[0], "unexpected_key": 1}
    try:
        import jsonschema
    except ImportError:
        # Structural checks only: an object schema that forbids unknown keys and names every
        # top-level key the examples use.
        assert schema["type"] == "object" and schema["additionalProperties"] is False
        for example in examples:
            assert set(example) <= set(schema["properties"])
            assert set(schema.get("required", [])) <= set(example)
        assert "unexpected_key" not in schema["properties"]
        return
    validator_class = jsonschema.validators.validator_for(schema)
    validator_class.check_schema(schema)
    validator = validator_class(schema)
    for example in examples:
        assert list(validator.iter_errors(example)) == []
    assert not validator.is_valid(bad)


def test_json_schema_expresses_exactly_one_of() -> None:
    jsonschema = pytest.importorskip("jsonschema", reason="jsonschema is not installed")
    schema = json_schema("schedule")
    both = {
        "environment": "x",
        "targets": {"rto": "1h", "rpo": "15m"},
        "aws": {"region": "us-east-1"},
        "rds": [{"name": "a", "instance": "a", "cluster": "b"}],
    }
    assert not jsonschema.Draft202012Validator(schema).is_valid(both)
