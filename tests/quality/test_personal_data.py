"""No personal data in quality output (issue 8 §5): after a full run of every dataset
through the Dagster jobs (with defects, a rejected delivery and notifications), no stored
result, record, reason or log holds a raw identity number, phone number, name or address
from the input. The lake's data, quarantine and archive hold them by design and are not
output; everything else under the runtime folder is scanned."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import dagster as dg
import pytest
from sqlalchemy import select

from catalog.samples import generate
from catalog.state.db import StateStore
from catalog.state.models import Notification
from catalog.store.lake import Lake, published_table, quarantine_table
from catalog.store.versions import RUNS, VERSIONS
from pipelines.definitions import build_definitions
from tests.conftest import population_rows, write_delivery

NAME_MIN = 3  # two-character names also occur as ordinary words; three never do here
VALUE_MIN = 6


def _sensitive_values(lake: Lake, contracts) -> set[str]:
    values: set[str] = set()
    with lake.reader() as con:
        for contract in contracts.values():
            for item in contract.items:
                if item.sensitivity != "sensitive":
                    continue
                shortest = NAME_MIN if item.mask == "name" else VALUE_MIN
                for table in (
                    published_table(contract.dataset),
                    quarantine_table(contract.dataset),
                ):
                    rows = con.execute(
                        f'SELECT DISTINCT CAST("{item.name}" AS VARCHAR) FROM {table}'
                    ).fetchall()
                    values |= {r[0] for r in rows if r[0] and len(r[0]) >= shortest}
    return values


def _dump_sqlite(path: Path) -> str:
    con = sqlite3.connect(path)
    try:
        return "\n".join(con.iterdump())
    except sqlite3.DatabaseError:
        return path.read_bytes().decode("utf-8", "ignore")
    finally:
        con.close()


def _outputs(settings, lake: Lake, dagster_home: Path) -> str:
    """Every quality output: the platform state (audit, notifications, scorecards), version
    and run records, reasons of refused deliveries, and everything Dagster stored or logged."""
    texts = [_dump_sqlite(settings.home / "state.sqlite")]
    with lake.reader() as con:
        for table in (VERSIONS, RUNS):
            texts += [repr(row) for row in con.execute(f"SELECT * FROM {table}").fetchall()]
    texts += [p.read_text("utf-8") for p in settings.folder("rejected").rglob("*reason.txt")]
    for path in dagster_home.rglob("*"):
        if not path.is_file():
            continue
        if path.suffix == ".db" or path.name.endswith((".sqlite", ".sqlite3")):
            texts.append(_dump_sqlite(path))
        else:
            texts.append(path.read_bytes().decode("utf-8", "ignore"))
    return "\n".join(texts)


@pytest.mark.e2e
def test_no_raw_personal_value_in_any_quality_output(tmp_path, settings, contracts):
    drops = tmp_path / "drops"
    generate(drops, rows=2000, seed=5, defect_rate=0.01)
    defs = build_definitions(contracts, str(settings.home))
    dagster_home = tmp_path / "dagster"
    dagster_home.mkdir()
    population = contracts["population"]
    refused = [dict(r, region_code="000000") for r in population_rows(30, seed=9)]
    rejected_file = write_delivery(population, refused, tmp_path / "refused.csv")
    with dg.DagsterInstance.local_temp(str(dagster_home)) as instance:
        for name in contracts:
            files = [str(p) for p in sorted((drops / name).glob("*"))]
            result = defs.resolve_job_def(f"ingest_{name}").execute_in_process(
                run_config={"ops": {f"stage_{name}": {"config": {"files": files}}}},
                instance=instance,
                raise_on_error=False,
            )
            assert result.success, name
        refusal = defs.resolve_job_def("ingest_population").execute_in_process(
            run_config={"ops": {"stage_population": {"config": {"files": [str(rejected_file)]}}}},
            instance=instance,
            raise_on_error=False,
        )
        assert not refusal.success
    store = StateStore(settings)
    with store.reading() as session:
        kinds = {n.kind for n in session.scalars(select(Notification))}
    store.close()
    # The refused delivery and the defective ones notified (so notifications are scanned).
    assert {"delivery_rejected", "quarantine_rate"} <= kinds
    lake = Lake(settings)
    raw = _sensitive_values(lake, contracts)
    for row in refused:  # the refused delivery's values never reached the lake's tables
        raw |= {row["id_number"], row["phone"], row["address"]}
    assert len(raw) > 500  # the scan has something to find
    text = _outputs(settings, lake, dagster_home)
    lake.close()
    assert len(text) > 10_000
    leaked = sorted(value for value in raw if value in text)
    assert leaked == [], f"{len(leaked)} raw values in quality output, e.g. {leaked[:3]}"
