"""Contracts load, and a broken one fails naming the file, the path inside it and the fault."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from catalog.contracts import ContractError, classification_item, load_contract, load_contracts
from catalog.settings import REPO_ROOT

BASE_DATASETS = {"population", "legal_persons", "geography", "licences", "credit_records"}


def test_the_five_base_contracts_load(contracts):
    assert set(contracts) == BASE_DATASETS
    for contract in contracts.values():
        assert contract.catalog.provider.code
        assert all(h for item in contract.items for h in item.source_headers)
        assert set(contract.key) <= set(contract.item_names)


def test_restricted_contracts_have_legal_basis(contracts):
    for contract in contracts.values():
        sharing = contract.catalog.sharing
        if sharing.type != "unconditional":
            assert sharing.legal_basis


def _broken(tmp_path: Path, edit) -> Path:
    raw = yaml.safe_load((REPO_ROOT / "schemas" / "population.yaml").read_text(encoding="utf-8"))
    edit(raw)
    path = tmp_path / "population.yaml"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("edit", "where", "what"),
    [
        (lambda c: c["catalog"]["sharing"].pop("legal_basis"), "catalog.sharing", "legal_basis"),
        (lambda c: c["catalog"]["provider"].update(code="113301000024821110"),
         "catalog.provider.code", "unified social credit code"),
        (lambda c: c.update(key=["nope"]), "(top level)", "key field 'nope'"),
        (lambda c: c["items"][0].update(type="text"), "items.0.type", "Input should be"),
        (lambda c: c["items"][1].pop("mask"), "items.1", "mask"),
        (lambda c: c["catalog"].update(update_cycle="sometimes"), "catalog.update_cycle", ""),
        (lambda c: c["items"][2]["agrees_with"].update(field="ghost"), "(top level)", "ghost"),
        (lambda c: c["quality"].update(max_failure_rate=2), "quality.max_failure_rate", ""),
        (lambda c: c.update(surprise=1), "surprise", "Extra inputs"),
        # Rules named from the library (docs/rules.md).
        (lambda c: c["items"][3].update(rules=["never_heard"]), "(top level)",
         "data item 'birth_date', rule 'never_heard': no such rule"),
        (lambda c: c["items"][3].update(rules=["required"]), "(top level)",
         "applied by the item's metadata (`required: true`) only"),
        (lambda c: c["items"][1].update(rules=["not_in_future"]), "(top level)",
         "rule 'not_in_future': applies to date/timestamp items only"),
        (lambda c: c["items"][5].update(rules=[{"region_parent": {}}]), "(top level)",
         "params code: Field required"),
        (lambda c: c["items"][5].update(rules=[{"region_parent": {"code": "ghost"}}]),
         "(top level)", "unknown item 'ghost'"),
        (lambda c: c["items"][3].update(rules=[{"not_before": {"item": "name"}}]),
         "(top level)", "item 'name' is not a date/timestamp item"),
        (lambda c: c["items"][3].update(rules=[{"not_in_future": {"days": 1}}]),
         "(top level)", "params days: Extra inputs"),
        (lambda c: c["items"][1].update(legacy_15_digit=True), "items.1",
         "legacy_15_digit needs format resident_id or subject_id"),
        # Resource codes (the compilation guide): 类 1/2/3 agrees with the classification,
        # 项 is one of the guide's base (01-05) or theme (01-12) items, digits only.
        (lambda c: c["catalog"].update(classification_code="201001"), "catalog",
         "a base resource is 类 '1'"),
        (lambda c: c["catalog"].update(classification_code="106001"), "catalog",
         "项 '06' is not one of the guide's base resource items (01 to 05)"),
        (lambda c: c["catalog"].update(classification="theme", classification_code="213001"),
         "catalog", "(01 to 12)"),
        (lambda c: c["catalog"].update(classification_code="10100"), "catalog.classification_code",
         "String should match pattern"),
        (lambda c: c["catalog"].update(classification_code="1010A1"),
         "catalog.classification_code", "String should match pattern"),
        (lambda c: c["catalog"].update(sequence_code="00-01"), "catalog.sequence_code",
         "String should match pattern"),
        (lambda c: c["catalog"].update(resource_code="A01/1"), "catalog.resource_code",
         "Extra inputs"),
    ],
)  # fmt: skip
def test_broken_contract_names_file_path_and_fault(tmp_path, edit, where, what):
    path = _broken(tmp_path, edit)
    with pytest.raises(ContractError) as raised:
        load_contract(path)
    message = str(raised.value)
    assert str(path) in message
    assert f"at {where}" in message
    assert what in message


def test_invalid_yaml_is_reported_with_file(tmp_path):
    path = tmp_path / "population.yaml"
    path.write_text("dataset: [unclosed", encoding="utf-8")
    with pytest.raises(ContractError, match=r"population\.yaml: not valid YAML"):
        load_contract(path)


def test_dataset_name_must_match_file_name(tmp_path):
    path = _broken(tmp_path, lambda c: None).rename(tmp_path / "people.yaml")
    with pytest.raises(ContractError, match="must match the file name"):
        load_contract(path)


@pytest.mark.parametrize(
    ("classification", "front", "item"),
    [
        ("base", "101001", "人口"),
        ("theme", "2080010102", "信用体系"),
        ("department", "347001", None),
    ],
)
def test_resource_code_is_classification_code_slash_sequence(tmp_path, classification, front, item):
    """前段码 (类 项 目, optional 细目) "/" 后段码 (the sequence code), as the guide builds it."""

    def edit(raw):
        raw["catalog"].update(
            classification=classification, classification_code=front, sequence_code="000017"
        )

    meta = load_contract(_broken(tmp_path, edit)).catalog
    assert meta.resource_code == f"{front}/000017"
    assert classification_item(classification, front) == item


def test_duplicate_resource_codes_are_refused(tmp_path):
    for path in (REPO_ROOT / "schemas").glob("*.yaml"):
        text = path.read_text(encoding="utf-8")
        (tmp_path / path.name).write_text(
            text.replace('classification_code: "102001"', 'classification_code: "101001"'),
            encoding="utf-8",
        )
    with pytest.raises(ContractError, match="already used by"):
        load_contracts(tmp_path)


@pytest.mark.parametrize(
    "written",
    [
        [{"not_before": {"item": "birth_date"}}],
        [{"rule": "not_before", "params": {"item": "birth_date"}}],
    ],
)
def test_a_named_rule_in_short_or_full_form(tmp_path, written):
    def edit(raw):
        raw["items"].append(
            {"name": "registered_on", "label": "登记日期", "type": "date",
             "description": "Registration.", "rules": ["not_in_future", *written]}
        )  # fmt: skip

    item = load_contract(_broken(tmp_path, edit)).item("registered_on")
    assert [(r.rule, r.params) for r in item.rules] == [
        ("not_in_future", {}),
        ("not_before", {"item": "birth_date"}),
    ]


def test_fifteen_digit_numbers_are_a_flag_of_the_identity_item(tmp_path):
    contract = load_contract(
        _broken(tmp_path, lambda c: c["items"][0].update(legacy_15_digit=True))
    )
    assert contract.item("id_number").legacy_15_digit
    assert (
        not load_contract(REPO_ROOT / "schemas" / "population.yaml")
        .item("id_number")
        .legacy_15_digit
    )


def test_a_dataset_may_not_take_a_name_the_catalog_routes_use(tmp_path):
    """``/catalog/search`` is the search: a dataset named ``search`` could never be reached
    at ``/catalog/<dataset>``."""
    text = (REPO_ROOT / "schemas" / "geography.yaml").read_text(encoding="utf-8")
    (tmp_path / "search.yaml").write_text(
        text.replace("dataset: geography", "dataset: search"), encoding="utf-8"
    )
    with pytest.raises(ContractError, match="reserved"):
        load_contracts(tmp_path)
