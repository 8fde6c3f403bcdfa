"""The rule library: every quality rule by name, and the compiler from a contract to rules.

A :class:`RuleSpec` is one named rule: what it checks and why (one line), which contract
keys apply it, its parameters, the quality dimension it measures and a builder that turns
it into a :class:`Rule` (a SQL predicate) for one data item. A contract applies a rule
either through an item's metadata (``required: true``, ``format: uscc``, ``not_before:``:
the spec's ``infer``) or by naming it in the item's ``rules:`` list (a spec that is
``nameable``), e.g. ``rules: [not_in_future]`` or ``rules: [{region_parent: {code:
region_code}}]``. The rules are registered in :mod:`catalog.ingest.rules.library`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

if TYPE_CHECKING:
    from catalog.contracts import Contract, DataItem

Dimension = Literal["completeness", "validity", "uniqueness"]
Scope = Literal["item", "dataset"]


@dataclass(frozen=True)
class Rule:
    """One compiled rule of a contract: ``failing_sql`` is a DuckDB boolean expression over a
    staged row, TRUE when the row breaks the rule. ``kind`` is the library rule's name."""

    name: str
    kind: str
    field: str | None
    columns: tuple[str, ...]
    failing_sql: str
    description: str
    params: dict = field(default_factory=dict, hash=False, compare=False)

    @property
    def dimension(self) -> Dimension:
        """The quality dimension the rule measures (validity for a kind outside the library)."""
        spec = REGISTRY.get(self.kind)
        return spec.dimension if spec else "validity"


class Params(BaseModel):
    """Parameters of a library rule; each field's description is its documentation."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class NoParams(Params):
    pass


Builder = Callable[["Contract", "DataItem | None", Any], Rule]
Inference = Callable[["Contract", "DataItem"], Params | None]
Check = Callable[["Contract", "DataItem", Any], str | None]


@dataclass(frozen=True)
class RuleSpec:
    name: str
    summary: str
    """One line: what the rule checks, and why."""
    trigger: str
    """The contract keys that apply the rule (markdown)."""
    dimension: Dimension
    params: type[Params]
    build: Builder
    infer: Inference | None
    """Parameters the item's metadata implies, or None when it does not apply the rule."""
    nameable: bool
    """Contracts may name the rule in an item's ``rules:``."""
    types: tuple[str, ...] | None
    """Item types the rule can judge (None: any)."""
    check: Check | None
    """A named use's fault beyond its parameters' types (unknown items...), or None."""
    scope: Scope


REGISTRY: dict[str, RuleSpec] = {}


def register(
    name: str,
    summary: str,
    *,
    trigger: str,
    dimension: Dimension = "validity",
    params: type[Params] = NoParams,
    infer: Inference | None = None,
    nameable: bool = False,
    types: tuple[str, ...] | None = None,
    check: Check | None = None,
    scope: Scope = "item",
) -> Callable[[Builder], Builder]:
    """Decorator adding a rule's builder to the library under ``name``."""

    def decorate(build: Builder) -> Builder:
        if name in REGISTRY:
            raise ValueError(f"rule {name!r} is registered twice")
        REGISTRY[name] = RuleSpec(
            name, summary, trigger, dimension, params, build, infer, nameable, types, check,
            scope,
        )  # fmt: skip
        return build

    return decorate


def _params_fault(error: ValidationError) -> str:
    parts = []
    for detail in error.errors():
        where = ".".join(str(p) for p in detail["loc"])
        parts.append(f"{where}: {detail['msg']}" if where else detail["msg"])
    return ", ".join(parts)


def rule_ref_faults(contract: Contract) -> list[str]:
    """What is wrong with the rules the contract's items name (empty: nothing)."""
    nameable = sorted(n for n, s in REGISTRY.items() if s.nameable)
    faults = []
    for item in contract.items:
        for ref in item.rules:
            where = f"data item {item.name!r}, rule {ref.rule!r}"
            spec = REGISTRY.get(ref.rule)
            if spec is None:
                faults.append(f"{where}: no such rule (rules to name: {', '.join(nameable)})")
                continue
            if not spec.nameable:
                faults.append(f"{where}: applied by the item's metadata ({spec.trigger}) only")
                continue
            if spec.types is not None and item.type not in spec.types:
                faults.append(f"{where}: applies to {'/'.join(spec.types)} items only")
                continue
            try:
                params = spec.params.model_validate(ref.params)
            except ValidationError as error:
                faults.append(f"{where}: params {_params_fault(error)}")
                continue
            if spec.check is not None and (fault := spec.check(contract, item, params)):
                faults.append(f"{where}: {fault}")
    return faults


def item_rules(contract: Contract, item: DataItem) -> list[Rule]:
    """The rules of one data item in library order: those its metadata implies, then those it
    names (a named rule compiling to the name of an implied one replaces it)."""
    named = [(REGISTRY[ref.rule], ref.params) for ref in item.rules]
    rules: dict[str, Rule] = {}
    for spec in REGISTRY.values():
        if spec.scope != "item":
            continue
        if spec.infer is not None and (params := spec.infer(contract, item)) is not None:
            rule = spec.build(contract, item, params)
            rules[rule.name] = rule
        for named_spec, raw in named:
            if named_spec is spec:
                rule = spec.build(contract, item, spec.params.model_validate(raw))
                rules[rule.name] = rule
    return list(rules.values())


def compile_rules(contract: Contract) -> list[Rule]:
    """Every quality rule of a contract: each item's in item order, then the dataset's."""
    rules = [rule for item in contract.items for rule in item_rules(contract, item)]
    for spec in REGISTRY.values():
        if spec.scope == "dataset":
            rules.append(spec.build(contract, None, NoParams()))
    return rules
