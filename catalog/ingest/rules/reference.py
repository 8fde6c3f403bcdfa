"""The tables the rules read beside the staged rows, and the run's "today".

Staging writes them once per run into the run's DuckDB file
(:func:`write_reference_tables`), so the verdicts and the Great Expectations checks of a run
read the same reference data and the same day, however long the run takes.
"""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

import duckdb
import pyarrow as pa

from catalog.regions import region_last_years, regions

# The staged rows (a view over the run's table, see catalog.ingest.staging).
STAGING_TABLE = "staging"
# Today's GB/T 2260 codes: ``code``.
REGIONS_TABLE = "ref_regions"
# Every GB/T 2260 code since 1980, retired ones included: ``_code``, ``_last_year`` (the last
# year in use; IN_USE for a code in use today). Underscored names never clash with an item's
# (items start with a letter) in the correlated lookups.
REGION_YEARS_TABLE = "ref_region_years"
IN_USE = 9999
# The same years as one list indexed by code + 1 (0: never a code): ``_last_years``.
REGION_INDEX_TABLE = "ref_region_index"
_CODES = 1_000_000  # six digits
# The run's today in the office's time zone: one row, ``today``.
CLOCK_TABLE = "ref_clock"
# Row ids (``_rid``) of staged rows that a later row with the same key replaces.
SUPERSEDED_TABLE = "ref_superseded"


def office_today(zone: str, now: datetime | None = None) -> date:
    """The office's calendar day at ``now`` (default: the current time) in time zone ``zone``
    (``Settings.timezone``): a delivery staged at 01:00 in Shanghai is checked against that
    Shanghai day, not the UTC one."""
    moment = now or datetime.now(ZoneInfo(zone))
    if moment.tzinfo is None:
        raise ValueError("now must carry a time zone")
    return moment.astimezone(ZoneInfo(zone)).date()


def write_reference_tables(con: duckdb.DuckDBPyConnection, today: date) -> None:
    """Write the region tables and the run's ``today`` into the connection's default schema."""
    current = sorted(regions())
    years = region_last_years()
    ever = sorted(years)
    tables = {
        REGIONS_TABLE: pa.table({"code": current}),
        REGION_YEARS_TABLE: pa.table(
            {
                "_code": ever,
                "_last_year": pa.array(
                    [IN_USE if years[c] is None else years[c] for c in ever], pa.int32()
                ),
            }
        ),
        REGION_INDEX_TABLE: _region_index(years),
        CLOCK_TABLE: pa.table({"today": pa.array([today], pa.date32())}),
    }
    for name, table in tables.items():
        con.register("reference_rows", table)
        try:
            con.execute(f"CREATE OR REPLACE TABLE {name} AS SELECT * FROM reference_rows")
        finally:
            con.unregister("reference_rows")


def _region_index(years: dict[str, int | None]) -> pa.Table:
    last_years = [0] * _CODES
    for code, year in years.items():
        last_years[int(code)] = IN_USE if year is None else year
    values = pa.array(last_years, pa.int32())
    offsets = pa.array([0, _CODES], pa.int32())
    return pa.table({"_last_years": pa.ListArray.from_arrays(offsets, values)})
