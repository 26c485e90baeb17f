"""The rule registry: one declaration per kind, and everything that derives from it."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from hub import metrics
from hub.address.municipalities import default_reference_path
from hub.contracts.enums import RuleName
from hub.engine import Engine, default_config, parse_config, rules
from hub.engine.cases import CaseState
from hub.engine.config import DEFAULT_RULES_PATH, DossierBounds, RulesConfig
from hub.engine.lifecycle import Desired, content_digest, fingerprint
from hub.engine.rules.spec import SIGNAL, RuleSpec
from tests.engine_events import event

ROOT = Path(__file__).resolve().parents[2]


def test_docs_rules_table_is_the_one_generated_from_the_registry():
    text = (ROOT / "docs" / "rules.md").read_text(encoding="utf-8")
    assert rules.docs_table() in text, "regenerate with hub.engine.rules.docs_table()"


def test_every_kind_is_declared_once_and_is_a_metric_label_value():
    kinds = [s.kind for s in rules.REGISTRY]
    assert len(kinds) == len(set(kinds))
    assert frozenset(kinds) == metrics.KINDS
    assert {r.value for r in RuleName} <= metrics.KINDS


def test_a_records_category_is_the_one_its_kind_declares():
    engine = Engine(default_config(), clock=lambda: 1)
    for ev in (
        event("NCG", "v1", "STRENGTHENING", "PLANNED", at=1),
        event("IMG", "s1", "DAMAGE", at=2),
        event("MUNICIPALITY", "b1", "BOTTLENECK", at=3, amount="60000.00"),
    ):
        engine.process(ev)
    records = engine.firing_records().values()
    assert {r["kind"] for r in records} >= {"CONTACT_ROUTING", "SAMENLOOP", "MANDATE_EXCEEDED"}
    for record in records:
        assert record["category"] == rules.SPECS_BY_KIND[record["kind"]].category
    assert rules.SPECS_BY_KIND["CONTACT_ROUTING"].output == "contact-routing"
    assert rules.SPECS_BY_KIND["SAMENLOOP"].output == "signals"


def _acute(
    active: list[CaseState], address_key: str, gm: str, sg: str, config: RulesConfig
) -> list[Desired]:
    """A stand-in new per-case rule: every active ACUTE_UNSAFE case is a signal."""
    out = []
    for c in active:
        if c.case_type == "ACUTE_UNSAFE":
            fp = fingerprint("ACUTE_TEST", address_key, *c.ref)
            digest = content_digest("ACUTE_TEST", sg, gm)
            out.append(Desired(fp, "ACUTE_TEST", (c.ref,), None, {}, digest, c.occurred_at_ms))
    return out


@pytest.mark.parametrize("per_case", [True, False])
def test_a_new_rule_runs_at_a_single_case_address_only_when_declared_per_case(
    monkeypatch, per_case
):
    spec = RuleSpec("ACUTE_TEST", 7, SIGNAL, per_case, _acute, None, "rule + case", "test")
    registry = (*rules.REGISTRY, spec)
    monkeypatch.setattr(rules, "EVALUATES", rules._unique_evaluates(registry))
    monkeypatch.setattr(
        rules,
        "PER_CASE_EVALUATES",
        rules._unique_evaluates(tuple(s for s in registry if s.per_case)),
    )
    engine = Engine(default_config(), clock=lambda: 1)
    engine.process(event("IMG", "a1", "ACUTE_UNSAFE", at=1))
    fired = {r["kind"] for r in engine.firing_records().values()}
    assert ("ACUTE_TEST" in fired) is per_case
    engine.process(event("NCG", "v1", "STRENGTHENING", at=2))  # two cases: every rule runs
    assert "ACUTE_TEST" in {r["kind"] for r in engine.firing_records().values()}


def test_every_key_of_rules_toml_is_owned_by_exactly_one_section():
    owners: dict[str, int] = {}
    for model in (*rules.settings_models(), DossierBounds):
        for key in model.model_fields:
            owners[key] = owners.get(key, 0) + 1
    packaged = tomllib.loads(DEFAULT_RULES_PATH.read_text(encoding="utf-8"))
    assert set(owners) == set(packaged)
    assert set(owners.values()) == {1}


def test_defaults_live_only_in_rules_toml():
    for model in (*rules.settings_models(), DossierBounds):
        assert all(field.is_required() for field in model.model_fields.values()), model
    # a file naming one key keeps every other packaged value
    config = parse_config("min_gap_days = 7")
    assert config.min_gap_days == 7
    assert config.source == {**default_config().source, "min_gap_days": 7}


def test_the_packaged_config_version_survived_the_registry():
    # Same canonical content as before the rules were split per module (issue 14); a changed
    # default must change this on purpose.
    assert default_config().config_version == "ab6cff5be54d"


def test_the_in_memory_engine_uses_only_the_public_dossier_api():
    tree = ast.parse((ROOT / "hub" / "engine" / "engine.py").read_text(encoding="utf-8"))
    private = [
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("hub.")
        for alias in node.names
        if alias.name.startswith("_")
    ]
    assert private == []


def test_a_steering_group_added_to_the_reference_data_is_a_metric_label(tmp_path):
    reference = default_reference_path().read_text(encoding="utf-8")
    reference = reference.replace(
        "[steering_groups]\n", '[steering_groups]\nWESTERKWARTIER = "Lokale stuurgroep (test)"\n'
    )
    path = tmp_path / "reference.toml"
    path.write_text(reference, encoding="utf-8")
    probe = (
        "from hub import metrics; "
        "print(metrics.safe_label('WESTERKWARTIER', metrics.STEERING_GROUPS))"
    )
    env = {**os.environ, "HUB_REFERENCE_CONFIG": str(path)}
    out = subprocess.run(
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "WESTERKWARTIER"
    assert metrics.safe_label("WESTERKWARTIER", metrics.STEERING_GROUPS) == metrics.OTHER
