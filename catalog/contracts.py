"""Dataset contracts: one YAML file per dataset in ``schemas/`` drives everything else.

A contract holds the catalog metadata (catalog compilation guide fields), the data items,
the key, the quality rules and the source mapping. Contracts are validated on load; a
broken one raises :class:`ContractError` naming the file, the path inside it and the fault.
"""

from __future__ import annotations

import re
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    computed_field,
    field_validator,
    model_validator,
)
from stdnum.cn import uscc

IDENTIFIER = r"^[a-z][a-z0-9_]{0,62}$"
RESERVED_NAMES = frozenset({"search", "releases"})
"""Dataset names taken by routes beside ``/catalog/<dataset>`` (``/catalog/search``,
``/catalog/releases``)."""
Identifier = Annotated[str, Field(pattern=IDENTIFIER)]

FieldType = Literal["string", "integer", "decimal", "date", "timestamp", "boolean", "geojson"]
SQL_TYPES: dict[str, str] = {
    "string": "VARCHAR",
    "integer": "BIGINT",
    "decimal": "DECIMAL(20,4)",
    "date": "DATE",
    "timestamp": "TIMESTAMP",
    "boolean": "BOOLEAN",
    "geojson": "VARCHAR",
}
"""How each item type is stored in the lake."""
FieldFormat = Literal["resident_id", "uscc", "region_code", "phone", "subject_id"]
MaskKind = Literal["identity", "phone", "name", "address", "redact"]
UpdateCycle = Literal["real_time", "daily", "weekly", "monthly", "quarterly", "yearly"]
SharingType = Literal["unconditional", "conditional", "not_shared"]
SharingMethod = Literal["api", "bulk_download", "verification"]
SourceFormat = Literal["csv", "xlsx", "jsonl", "json", "parquet", "geojson"]


class ContractError(ValueError):
    """A contract that cannot be used; the message names file, path and fault."""


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Provider(Strict):
    name: str
    name_en: str
    code: str = Field(description="Unified social credit code of the providing department")

    @field_validator("code")
    @classmethod
    def _valid_uscc(cls, value: str) -> str:
        if not uscc.is_valid(value):
            raise ValueError(f"{value!r} is not a valid unified social credit code")
        return value


class Sharing(Strict):
    type: SharingType
    conditions: str | None = None
    method: list[SharingMethod] = Field(min_length=1)
    legal_basis: str | None = None

    @model_validator(mode="after")
    def _restricted_needs_basis(self) -> Sharing:
        if self.type != "unconditional" and not (self.legal_basis or "").strip():
            raise ValueError(f"sharing type {self.type!r} needs a legal_basis")
        return self


class OpenAttribute(Strict):
    open: bool
    conditions: str | None = None


Classification = Literal["base", "theme", "department"]
# The catalog compilation guide's resource code: 前段码 "/" 后段码. The front part is the
# classification code, 类 (1 digit: 1 base, 2 theme, 3 department resources), 项 (2), 目 (3)
# and an optional 细目 (more digits); the back part is the resource's sequence code in that
# class (digits). The guide fixes no length for 细目 or the sequence; 12 digits each bound them.
CLASS_DIGIT: dict[str, str] = {"base": "1", "theme": "2", "department": "3"}
BASE_ITEMS = ("人口", "法人单位", "自然资源和空间地理", "社会信用", "电子证照")
THEME_ITEMS = (
    "公共服务", "健康保障", "社会保障", "食品药品安全", "安全生产", "价格监管", "能源安全",
    "信用体系", "城乡建设", "社区治理", "生态环保", "应急维稳",
)  # fmt: skip
"""The 项 of base and theme resources, numbered 01, 02, ... in the order the guide lists them;
department resources number their 项 themselves."""
CLASSIFICATION_CODE = r"^[1-3][0-9]{5}[0-9]{0,12}$"
SEQUENCE_CODE = r"^[0-9]{1,12}$"


def code_identity(resource_code: str) -> str:
    """What makes two resource codes the same: the classification code and the sequence
    code's number (000001 and 1 number the same resource)."""
    front, _, sequence = resource_code.partition("/")
    return f"{front}/{int(sequence)}" if sequence.isdigit() else resource_code


def classification_item(classification: str, code: str) -> str | None:
    """The guide's name of a classification code's 项 (None for department resources)."""
    items = {"base": BASE_ITEMS, "theme": THEME_ITEMS}.get(classification, ())
    number = int(code[1:3])
    return items[number - 1] if 1 <= number <= len(items) else None


class CatalogMeta(Strict):
    classification_code: str = Field(
        pattern=CLASSIFICATION_CODE,
        description="前段码: 类 (1 digit), 项 (2), 目 (3), optional 细目 (digits)",
    )
    sequence_code: str = Field(
        pattern=SEQUENCE_CODE, description="后段码: the resource's sequence code in its class"
    )
    name: str
    name_en: str
    provider: Provider
    summary: str
    summary_en: str
    classification: Classification
    keywords: list[str] = []
    sharing: Sharing
    open: OpenAttribute
    update_cycle: UpdateCycle
    related: list[Identifier] = []

    @model_validator(mode="after")
    def _code_in_class(self) -> CatalogMeta:
        code, kind = self.classification_code, self.classification
        if code[0] != CLASS_DIGIT[kind]:
            raise ValueError(
                f"classification_code {code!r} starts with 类 {code[0]!r}, but a {kind} resource "
                f"is 类 {CLASS_DIGIT[kind]!r} (1 base, 2 theme, 3 department)"
            )
        if kind != "department" and classification_item(kind, code) is None:
            count = len(BASE_ITEMS if kind == "base" else THEME_ITEMS)
            raise ValueError(
                f"classification_code {code!r}: 项 {code[1:3]!r} is not one of the guide's {kind} "
                f"resource items (01 to {count:02d})"
            )
        return self

    @computed_field  # type: ignore[prop-decorator]  # in dumps: the API shows the code
    @property
    def resource_code(self) -> str:
        """The compilation guide's resource code: classification code "/" sequence code."""
        return f"{self.classification_code}/{self.sequence_code}"


class AgreesWith(Strict):
    """This field must agree with the part of a resident identity number it repeats."""

    field: Identifier
    part: Literal["sex", "birth_date"]


# Parts of a value another item may repeat: of an identifier (GB 11643, GB 32100), or the
# whole value (a sole trader's business name carries the owner's name).
ItemPart = Literal["region", "birth_date", "sex", "org_code", "whole"]


class Reveals(Strict):
    """This item (often) repeats a part of another item, e.g. a household region code the
    region digits of the identity number. Masking uses it: a partial mask that hides that
    part would leak when this item is shown in clear, so a keyed pseudonym replaces it."""

    field: Identifier
    part: ItemPart


class RuleRef(Strict):
    """A quality rule of the rule library (``docs/rules.md``) named in an item's ``rules:``.

    Written as the rule's name (``not_in_future``), as a one-key mapping of the name to its
    parameters (``{not_before: {item: issue_date}}``), or in full (``{rule: ..., params:
    ...}``). The library checks the name and the parameters when the contract loads."""

    rule: Identifier
    params: dict[str, Any] = {}

    @model_validator(mode="before")
    @classmethod
    def _short_forms(cls, value: Any) -> Any:
        if isinstance(value, str):
            return {"rule": value}
        if isinstance(value, dict) and len(value) == 1 and "rule" not in value:
            ((name, params),) = value.items()
            return {"rule": name, "params": {} if params is None else params}
        return value


class DataItem(Strict):
    name: Identifier
    label: str = Field(description="Chinese name of the data item")
    type: FieldType
    length: int | None = Field(default=None, gt=0)
    description: str
    sensitivity: Literal["public", "internal", "sensitive"] = "public"
    mask: MaskKind | None = None
    headers: list[str] = Field(default=[], description="Further source column headers")
    required: bool = False
    format: FieldFormat | None = None
    allowed: list[str] | None = None
    pattern: str | None = None
    min: float | str | None = None
    max: float | str | None = None
    agrees_with: AgreesWith | None = None
    not_before: Identifier | None = Field(
        default=None, description="Field this one must not precede"
    )
    reveals: list[Reveals] = Field(
        default=[], description="Parts of other items this one repeats (not a quality rule)"
    )
    legacy_15_digit: bool = Field(
        default=False,
        description="Also accept the 15-digit resident identity numbers of GB 11643-1989 "
        "(birth YYMMDD in the 1900s, no check character); only with format resident_id or "
        "subject_id",
    )
    rules: list[RuleRef] = Field(
        default=[],
        description="Further rules of the rule library for this item, by name (with params)",
    )

    @model_validator(mode="after")
    def _mask_when_sensitive(self) -> DataItem:
        if self.sensitivity == "sensitive" and self.mask is None:
            raise ValueError("a sensitive data item needs a mask kind")
        if self.legacy_15_digit and self.format not in ("resident_id", "subject_id"):
            raise ValueError("legacy_15_digit needs format resident_id or subject_id")
        if self.pattern is not None:
            re.compile(self.pattern)
        return self

    @property
    def source_headers(self) -> list[str]:
        return [self.label, self.name, *self.headers]

    @property
    def disclosed_parts(self) -> list[Reveals]:
        """Parts of other items this one tells: its ``reveals`` and what it must agree with."""
        if self.agrees_with is None:
            return list(self.reveals)
        agreed = Reveals(field=self.agrees_with.field, part=self.agrees_with.part)
        return [*self.reveals, agreed]


class Quality(Strict):
    max_failure_rate: float = Field(ge=0, le=1)


class DeletionMarker(Strict):
    item: Identifier
    values: list[str] = Field(min_length=1)


class Source(Strict):
    formats: list[SourceFormat] = Field(min_length=1)
    geometry_field: Identifier | None = Field(
        default=None, description="For GeoJSON: the data item that receives each feature's geometry"
    )
    partial_updates: bool = Field(
        default=False,
        description="Files may omit optional items: an omitted item keeps the published value "
        "of an existing key (NULL for a new key). False: every file carries every item.",
    )
    updated_at: Identifier | None = Field(
        default=None,
        description="Item (timestamp or date) saying when a record last changed: a row older "
        "than the published row with its key is not applied (quarantined as stale)",
    )
    delivery: Literal["increments", "full"] = Field(
        default="increments",
        description="increments: a delivery upserts its rows by key and leaves the others; "
        "full: a delivery is the whole dataset, a published key absent from it is deleted",
    )
    deleted_when: DeletionMarker | None = Field(
        default=None,
        description="A row whose item has one of these values deletes its key (it leaves the "
        "latest version and stays in the older ones)",
    )
    max_deletion_rate: float = Field(
        default=0.5,
        ge=0,
        le=1,
        description="A full delivery deleting more than this share of the published rows is "
        "refused (a truncated export must not erase the register)",
    )


class Reference(Strict):
    """A cross-dataset reference: the value of ``items`` in a row should exist as the value
    of ``target_items`` in the latest version of ``dataset`` (a licence's holder in the legal
    persons register, a region code in geography). Checked per published version; the
    unresolved rows are counted and reported, never dropped. With ``when_format``, only rows
    whose first item is a well-formed value of that format are checked (a holder may be a
    company or a person). ``blocking``: unresolved rows are quarantined instead of
    published."""

    name: Identifier
    description: str
    items: list[Identifier] = Field(min_length=1, max_length=4)
    dataset: Identifier
    target_items: list[Identifier] = Field(min_length=1, max_length=4)
    when_format: Literal["resident_id", "uscc"] | None = None
    blocking: bool = False

    @model_validator(mode="after")
    def _same_width(self) -> Reference:
        if len(self.items) != len(self.target_items):
            raise ValueError("items and target_items must have the same number of items")
        return self


class VerificationService(Strict):
    """A yes/no question answered over the latest version without handing over records:
    TRUE when a row matches every input, has an allowed value in each ``where`` item and,
    with ``valid_on``, covers today (a missing end date means open-ended)."""

    service: Identifier
    question: str
    question_en: str
    inputs: list[Identifier] = Field(min_length=1)
    where: dict[Identifier, list[str]] = {}
    valid_on: tuple[Identifier, Identifier] | None = None

    @property
    def referenced(self) -> list[str]:
        return [*self.inputs, *self.where, *(self.valid_on or ())]


class Contract(Strict):
    dataset: Identifier
    title: str
    catalog: CatalogMeta
    items: list[DataItem] = Field(min_length=1)
    key: list[Identifier] = Field(min_length=1)
    quality: Quality
    source: Source
    verification: list[VerificationService] = []
    references: list[Reference] = []

    @model_validator(mode="after")
    def _consistent(self) -> Contract:
        names = [item.name for item in self.items]
        duplicates = {n for n in names if names.count(n) > 1}
        if duplicates:
            raise ValueError(f"data items defined twice: {sorted(duplicates)}")
        for key in self.key:
            if key not in names:
                raise ValueError(f"key field {key!r} is not a data item")
        for item in self.items:
            for revealed in item.reveals:
                if revealed.field not in names or revealed.field == item.name:
                    raise ValueError(
                        f"data item {item.name!r} reveals part of unknown item {revealed.field!r}"
                    )
            refs = [item.agrees_with.field if item.agrees_with else None, item.not_before]
            for ref in filter(None, refs):
                if ref not in names:
                    raise ValueError(f"data item {item.name!r} refers to unknown item {ref!r}")
        headers = [h for item in self.items for h in item.source_headers]
        clashes = {h for h in headers if headers.count(h) > 1}
        if clashes:
            raise ValueError(f"source headers mapped to more than one item: {sorted(clashes)}")
        if self.source.geometry_field and self.source.geometry_field not in names:
            raise ValueError(f"geometry_field {self.source.geometry_field!r} is not a data item")
        if self.source.updated_at is not None:
            stamp = self.source.updated_at
            if stamp not in names:
                raise ValueError(f"source.updated_at {stamp!r} is not a data item")
            if self.item(stamp).type not in ("timestamp", "date"):
                raise ValueError(f"source.updated_at {stamp!r} must be a timestamp or date item")
        refs = [r.name for r in self.references]
        if len(set(refs)) != len(refs):
            raise ValueError(
                f"references named twice: {sorted(set(n for n in refs if refs.count(n) > 1))}"
            )
        for ref in self.references:
            for name in ref.items:
                if name not in names:
                    raise ValueError(f"reference {ref.name!r}: {name!r} is not a data item")
        marker = self.source.deleted_when
        if marker is not None and marker.item not in names:
            raise ValueError(f"source.deleted_when.item {marker.item!r} is not a data item")
        if self.source.delivery == "full" and self.source.partial_updates:
            raise ValueError("a full delivery carries every item: it cannot take partial updates")
        self._check_verification(names)
        self._check_rules()
        return self

    def _check_rules(self) -> None:
        """Rules named in ``rules:`` exist in the library and their parameters fit."""
        if not any(item.rules for item in self.items):
            return
        # The library compiles contracts, so it imports this module; import it only now.
        from catalog.ingest.rules import rule_ref_faults

        faults = rule_ref_faults(self)
        if faults:
            raise ValueError("; ".join(faults))

    def _check_verification(self, names: list[str]) -> None:
        if self.verification and "verification" not in self.catalog.sharing.method:
            raise ValueError("verification services need 'verification' in catalog.sharing.method")
        for service in self.verification:
            unknown = [n for n in service.referenced if n not in names]
            if unknown:
                raise ValueError(f"verification {service.service!r} uses unknown items {unknown}")

    @cached_property
    def item_names(self) -> list[str]:
        return [item.name for item in self.items]

    def item(self, name: str) -> DataItem:
        return next(item for item in self.items if item.name == name)

    @cached_property
    def header_map(self) -> dict[str, str]:
        """Source column header → data item name (exact match after trimming)."""
        return {header: item.name for item in self.items for header in item.source_headers}

    @cached_property
    def sensitive_items(self) -> frozenset[str]:
        return frozenset(item.name for item in self.items if item.sensitivity == "sensitive")

    @property
    def required_items(self) -> list[str]:
        return [item.name for item in self.items if item.required]


def _format_error(path: Path, error: ValidationError) -> str:
    lines = [f"{path}: invalid contract"]
    for detail in error.errors():
        where = ".".join(str(part) for part in detail["loc"]) or "(top level)"
        lines.append(f"  at {where}: {detail['msg']}")
    return "\n".join(lines)


def load_contract(path: Path) -> Contract:
    """Load and validate one contract file."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ContractError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise ContractError(f"{path}: a contract must be a YAML mapping")
    try:
        contract = Contract.model_validate(raw)
    except ValidationError as exc:
        raise ContractError(_format_error(path, exc)) from exc
    if contract.dataset != path.stem:
        raise ContractError(f"{path}: at dataset: {contract.dataset!r} must match the file name")
    if contract.dataset in RESERVED_NAMES:
        raise ContractError(
            f"{path}: at dataset: {contract.dataset!r} is a name the catalog's own routes use "
            f"(reserved: {', '.join(sorted(RESERVED_NAMES))})"
        )
    return contract


def load_contracts(folder: Path) -> dict[str, Contract]:
    """All contracts of a folder, by dataset name; resource codes must be unique."""
    contracts = {p.stem: load_contract(p) for p in sorted(folder.glob("*.yaml"))}
    if not contracts:
        raise ContractError(f"{folder}: no contracts (*.yaml) found")
    codes: dict[str, str] = {}
    services: dict[str, str] = {}
    for name, contract in contracts.items():
        code = code_identity(contract.catalog.resource_code)
        if code in codes:
            raise ContractError(
                f"{folder / (name + '.yaml')}: at catalog.sequence_code: resource code "
                f"{contract.catalog.resource_code!r} is already used by {codes[code]}"
            )
        codes[code] = name
        for service in contract.verification:
            if service.service in services:
                raise ContractError(
                    f"{folder / (name + '.yaml')}: at verification: service {service.service!r} "
                    f"is already offered by {services[service.service]}"
                )
            services[service.service] = name
        for ref in contract.references:
            target = contracts.get(ref.dataset)
            missing = [i for i in ref.target_items if target and i not in target.item_names]
            if target is None or missing:
                what = (
                    f"unknown dataset {ref.dataset!r}"
                    if target is None
                    else (f"{ref.dataset} has no item {missing[0]!r}")
                )
                raise ContractError(
                    f"{folder / (name + '.yaml')}: at references.{ref.name}: {what}"
                )
        for related in contract.catalog.related:
            if related not in contracts:
                raise ContractError(
                    f"{folder / (name + '.yaml')}: at catalog.related: unknown dataset {related!r}"
                )
    return contracts
