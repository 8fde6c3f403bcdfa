"""What access control and the audit trail cost per call, against the bare query.

Publishes a population drop, grants a consumer department four items with a row filter, then
times in one process: the bare scoped query (version lookup, ``rows_json``, ``count_rows``:
the data work the endpoint does) vs the whole HTTP call through the in-process ASGI client
(token check, grant lookup, scope, query, audit append); the same for a verification;
``/health`` and ``/catalog`` against a bare FastAPI endpoint through the same client.
Finally it times ``audit verify`` over the entries written.

    .venv/bin/python bench/access.py [--rows 100000] [--calls 300]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from fastapi import FastAPI
from fastapi.testclient import TestClient

from api.app import create_app
from catalog.contracts import load_contracts
from catalog.ingest.delivery import run_ingest
from catalog.samples import generate
from catalog.settings import REPO_ROOT, Settings
from catalog.sharing.access import FilterClause, Scope
from catalog.sharing.audit import verify
from catalog.sharing.masking import pseudonymised_items
from catalog.sharing.reads import count_rows, rows_json
from catalog.sharing.verification import answer
from catalog.store.lake import Lake
from catalog.store.versions import latest_version
from tests.conftest import approve_request, bearer, seed_identities


def _timed(label: str, calls: int, fn: Callable[[], object]) -> float:
    fn()  # warm up
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    per_call = (time.perf_counter() - start) / calls * 1000
    print(f"  {label:<44} {per_call:8.2f} ms per call")
    return per_call


def main(rows: int, calls: int) -> None:
    root = Path(tempfile.mkdtemp(prefix="bench-access-"))
    settings = Settings(home=root / "runtime", verify_rate_per_minute=10**9)
    contracts = load_contracts(REPO_ROOT / "schemas")
    generate(root / "drops", rows=rows, seed=11, defect_rate=0.0, datasets=["population"])
    lake = Lake(settings)
    run_ingest(contracts["population"], sorted((root / "drops" / "population").glob("*")), lake)
    tokens = seed_identities(settings, contracts)
    population = contracts["population"]
    with TestClient(create_app(settings)) as client:
        period = {
            "period_start": "2026-01-01",
            "period_end": "2030-12-31",
            "legal_basis": "基准测试",
        }
        grant = approve_request(
            client,
            tokens,
            {
                "dataset": "population",
                "items": ["id_number", "name", "region_code", "status"],
                "row_filter": [{"item": "region_code", "op": "prefix", "values": ["3301"]}],
                "purpose": "benchmark",
                **period,
            },
        )["grant"]
        approve_request(
            client,
            tokens,
            {
                "dataset": "population",
                "kind": "verification",
                "service": "identity_name",
                "purpose": "bench",
                **period,
            },
        )
        row_filter = (FilterClause(**grant["row_filter"][0]),)
        scope = Scope(
            tuple(grant["items"]),
            frozenset(),
            row_filter,
            "grant",
            grant["id"],
            pseudonymised=pseudonymised_items(
                population, grant["items"], (), [c.item for c in row_filter]
            ),
        )
        state = client.app.state.govshare
        key = state.pseudonyms.key_for(f"grant:{grant['id']}")
        con = state.connection().cursor()
        version = latest_version(con, "population")
        person = con.execute(
            "SELECT id_number, name FROM lake.published.population LIMIT 1"
        ).fetchone()
        inputs = {"id_number": person[0], "name": person[1]}
        headers = bearer(tokens["consumer_a"])
        print(f"population: {version.row_count:,} rows; {calls} calls each")
        bare = _timed(
            "rows: bare scoped query (page of 100)",
            calls,
            lambda: (
                latest_version(con, "population"),
                rows_json(con, population, version, scope, limit=100, offset=0, pseudonym_key=key),
                count_rows(con, population, version, scope),
            ),
        )
        full = _timed(
            "rows: HTTP call with auth, scope, audit",
            calls,
            lambda: client.get(
                "/datasets/population/rows?limit=100", headers=headers
            ).raise_for_status(),
        )
        print(f"  ratio {full / bare:.2f}x, overhead {full - bare:.2f} ms per call")
        visible = client.get("/datasets/population/rows?limit=1", headers=headers).json()
        deep = visible["total"] * 9 // 10  # within the grant's row filter
        by_offset = _timed(
            f"rows: deep page by offset ({deep:,})",
            calls,
            lambda: client.get(
                f"/datasets/population/rows?limit=100&offset={deep}", headers=headers
            ).raise_for_status(),
        )
        before = client.get(
            f"/datasets/population/rows?limit=1&offset={deep - 1}", headers=headers
        ).json()["next"]
        by_key = _timed(
            "rows: the same page by key (after=)",
            calls,
            lambda: client.get(
                f"/datasets/population/rows?limit=100&after={before}", headers=headers
            ).raise_for_status(),
        )
        print(
            f"  deep page / first page: by key {by_key / full:.2f}x, "
            f"by offset {by_offset / full:.2f}x"
        )
        spec = population.verification[0]
        bare_v = _timed(
            "verify: bare EXISTS query",
            calls,
            lambda: (
                latest_version(con, "population"),
                answer(con, population, spec, version, inputs, state.today()),
            ),
        )
        full_v = _timed(
            "verify: HTTP call with grant, rate limit, audit",
            calls,
            lambda: client.post(
                "/verify/identity_name", json=inputs, headers=headers
            ).raise_for_status(),
        )
        print(f"  ratio {full_v / bare_v:.2f}x, overhead {full_v - bare_v:.2f} ms per call")
        bare_app = FastAPI()
        bare_app.get("/ping")(lambda: {"status": "ok"})
        with TestClient(bare_app) as bare_client:
            ping = _timed("bare FastAPI endpoint", calls, lambda: bare_client.get("/ping"))
        for path in ("/health", "/catalog"):
            took = _timed(f"{path} (versions cached per lake snapshot)", calls, lambda p=path: (
                client.get(p).raise_for_status()
            ))  # fmt: skip
            print(f"  throughput {ping / took:.0%} of the bare endpoint's")
        with state.store.reading() as session:
            start = time.perf_counter()
            report = verify(session)
            seconds = time.perf_counter() - start
        print(
            f"audit verify: {report.entries:,} entries in {seconds:.3f} s "
            f"({report.entries / seconds:,.0f} entries/s), intact={report.intact}"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--calls", type=int, default=300)
    args = parser.parse_args()
    main(args.rows, args.calls)
