"""Each normaliser turns department spellings into canonical text, and leaves junk alone."""

from __future__ import annotations

import duckdb
import pytest

from catalog.ingest.normalise import normalise_sql


def _normalise(contract, item_name: str, raw: str | None) -> str | None:
    expression = normalise_sql(contract.item(item_name), "$raw")
    return duckdb.execute(f"SELECT {expression}", {"raw": raw}).fetchone()[0]


@pytest.mark.parametrize(
    ("item", "raw", "expected"),
    [
        ("id_number", "３３０１０６１９９００１０１１２３ｘ", "33010619900101123X"),
        ("id_number", " 33010619900101123x ", "33010619900101123X"),
        ("id_number", "330106 19900101 123X", "33010619900101123X"),
        ("phone", "１３８００００１１１１", "13800001111"),
        ("phone", "+86 138-0000-1111", "13800001111"),
        ("birth_date", "1990/1/1", "1990-01-01"),
        ("birth_date", "19900101", "1990-01-01"),
        ("birth_date", "1990年1月1日", "1990-01-01"),
        ("birth_date", "1990.01.01", "1990-01-01"),
        ("birth_date", "２０２４－０３－０１", "2024-03-01"),
        ("birth_date", "not a date", "not a date"),
        ("birth_date", "45352", "2024-03-01"),  # an Excel date cell
        ("updated_at", "45352.5", "2024-03-01 12:00:00"),
        ("updated_at", "2024/3/1 8:05:09", "2024-03-01 08:05:09"),
        ("updated_at", "2024-03-01T08:05:09", "2024-03-01 08:05:09"),
        ("updated_at", "20240301", "2024-03-01 00:00:00"),
        ("name", "\u3000张三 ", "张三"),
        ("name", "   ", None),
        ("name", "", None),
        ("name", None, None),
        ("address", "文三路１２号Ａ座", "文三路12号A座"),
    ],
)
def test_population_normalisers(contracts, item, raw, expected):
    assert _normalise(contracts["population"], item, raw) == expected


def test_uscc_and_decimal_normalisers(contracts):
    legal = contracts["legal_persons"]
    assert _normalise(legal, "uscc", "９１３３０１０６ｍａ２ｈ１２３４５ｘ") == "91330106MA2H12345X"
    assert _normalise(legal, "registered_capital", "1,200.50") == "1200.50"
    assert _normalise(legal, "registered_capital", "１２００") == "1200"
