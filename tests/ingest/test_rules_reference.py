"""docs/rules.md is generated from the rule library and the contracts, and kept current."""

from __future__ import annotations

from catalog.ingest.rules import REGISTRY
from catalog.ingest.rules_reference import REGENERATE, render
from catalog.settings import REPO_ROOT

DOC = REPO_ROOT / "docs" / "rules.md"


def test_docs_rules_md_is_the_rendering_of_the_library():
    assert DOC.read_text(encoding="utf-8") == render(), (
        f"docs/rules.md is out of date; regenerate it: {REGENERATE}"
    )


def test_every_rule_is_documented_in_one_line():
    text = render()
    for name, spec in REGISTRY.items():
        assert f"| `{name}` | {spec.summary} |" in text
        assert spec.summary and "\n" not in spec.summary and spec.trigger
