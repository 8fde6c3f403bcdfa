"""Population ingest benchmark: govshare's ingest vs DuckDB's own read_csv of the same file.

    .venv/bin/python bench/ingest.py                 # 1M rows, 3 baseline/ingest pairs
    .venv/bin/python bench/ingest.py --ten-million   # 10M rows

Each side runs in its own process (so peak RSS is its own). The sample generator writes the
population drop as departments do, a GBK CSV with 1% of rows per defect kind (6% fail); a UTF-8 twin
of it is made untimed. The baseline is DuckDB's read_csv of the UTF-8 twin into a table of a
DuckDB database file, with explicit text columns (typed sniffing drops leading zeros and
cannot parse the mixed date formats; DuckDB 1.5.5 cannot read the GBK file reliably, see
docs/decisions.md). "ingest" is the whole synchronous run of `govshare ingest`: read +
normalise into staging, validate (one SQL pass), quarantine + publish a version into the
DuckLake, file the delivery away. It is timed on the UTF-8 twin (same file as the baseline)
and on the GBK original (adds our streaming transcode). The Great Expectations suite that
Dagster runs as asset checks on the same staged delivery (counting validation's verdicts)
is timed against the same checks written by hand: one SQL pass counting each rule's
failing rows; both must find the same counts.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from statistics import median

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"


def _child(kind: str, csv: str, work: str) -> dict:
    """Runs inside a child process; returns timings and the child's peak RSS."""
    sys.path.insert(0, str(ROOT))
    from catalog.contracts import load_contracts
    from catalog.settings import Settings
    from catalog.store.lake import Lake, new_connection

    settings = Settings(home=Path(work) / f"runtime-{Path(csv).stem}")
    population = load_contracts(settings.schemas_dir)["population"]
    result: dict = {}
    if kind == "ingest":
        # The lake and the platform state (where the run's audit entry goes) exist before
        # any delivery in production: create them untimed.
        from catalog.state.db import StateStore

        Lake(settings).initialise()
        StateStore(settings).close()
    if kind in ("expectations", "checks_sql"):
        # The checks run on a staged, validated delivery (as in the Dagster run: the staging
        # step writes the verdicts; a run removes its staging when it ends).
        from catalog.ingest.delivery import validate_staged
        from catalog.ingest.staging import stage

        stage(population, [Path(csv)], settings, run_id="bench")
        t_verdicts = time.perf_counter()
        validate_staged(population, settings, "bench")
        result["verdicts_seconds"] = time.perf_counter() - t_verdicts
    start = time.perf_counter()
    if kind == "baseline":
        con = new_connection(settings)
        con.execute(f"ATTACH '{Path(work) / 'baseline.duckdb'}' AS b")
        # Header names as in the file; every column explicitly text.
        with Path(csv).open("rb") as handle:
            header = handle.readline().decode("utf-8").strip().split(",")
        columns = "{" + ", ".join(f"'{h}': 'VARCHAR'" for h in header) + "}"
        con.execute(
            f"CREATE TABLE b.t AS SELECT * FROM read_csv('{csv}', header = true, "
            f"auto_detect = false, columns = {columns})"
        )
        result["rows"] = con.execute("SELECT count(*) FROM b.t").fetchone()[0]
    elif kind == "ingest":
        from catalog.ingest.delivery import run_ingest

        marks: dict[str, float] = {}
        lake = Lake(settings)
        outcome = run_ingest(
            population, [Path(csv)], lake,
            on_step=lambda step: marks.__setitem__(step, time.perf_counter()),
        )  # fmt: skip
        end = time.perf_counter()
        result.update(
            status=outcome.status, rows=outcome.rows_read, published=outcome.rows_published,
            quarantined=outcome.rows_quarantined,
            steps={
                "prepare": marks["stage"] - start,
                "stage": marks["validate"] - marks["stage"],
                "validate": marks["publish"] - marks["validate"],
                "publish+file": end - marks["publish"],
            },
        )  # fmt: skip
    elif kind == "expectations":
        from catalog.ingest.rules import compile_rules
        from catalog.ingest.staging import STAGING_TABLE, staging_path
        from catalog.ingest.validation import VERDICTS_TABLE

        t_import = time.perf_counter()
        from catalog.ingest.expectations import _gx, run_suite

        _gx()  # Great Expectations itself is imported on first use: not part of the suite
        result["import_seconds"] = time.perf_counter() - t_import
        start = time.perf_counter()
        outcomes = run_suite(
            staging_path(settings, "population", "bench"), STAGING_TABLE, compile_rules(population),
            suite_name="bench", verdicts=VERDICTS_TABLE,
        )  # fmt: skip
        result["rules"] = len(outcomes)
        result["failing"] = {o.rule: o.unexpected_count for o in outcomes}
    elif kind == "checks_sql":
        # The same checks by hand: every rule's failing rows counted in one SQL pass.
        from catalog.ingest.rules import compile_rules
        from catalog.ingest.staging import STAGING_TABLE, open_staging

        rules = compile_rules(population)
        con = open_staging(settings, "population", "bench")
        start = time.perf_counter()
        counts = con.execute(
            "SELECT " + ", ".join(f"count_if(({r.failing_sql}))" for r in rules)
            + f" FROM {STAGING_TABLE}"
        ).fetchone()  # fmt: skip
        result["failing"] = {r.name: n for r, n in zip(rules, counts, strict=True)}
        con.close()
    result["seconds"] = time.perf_counter() - start
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return result


def run_child(kind: str, csv: Path, work: Path) -> dict:
    """One measurement in a process of its own, in a folder of its own (a second ingest of
    the same file into the same lake would be an identical re-delivery)."""
    own = tempfile.mkdtemp(prefix=f"{kind}-", dir=work)
    out = subprocess.run(
        [sys.executable, __file__, "--child", kind, str(csv), own],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--ten-million", action="store_true", help="10M rows")
    parser.add_argument("--repeat", type=int, default=3, help="baseline/ingest pairs")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(_child(*args.child)))
        return
    rows = 10_000_000 if args.ten_million else args.rows
    sys.path.insert(0, str(ROOT))
    from catalog.ingest.readers import transcode_to_utf8
    from catalog.samples import generate

    work = Path(tempfile.mkdtemp(prefix="govshare-bench-"))
    try:
        t = time.perf_counter()
        report = generate(
            work / "drops", rows=rows, seed=1, defect_rate=0.01, datasets=["population"]
        )
        generated = time.perf_counter() - t
        gbk = work / "drops" / report.datasets["population"].files[0]
        utf8 = transcode_to_utf8(gbk, "gb18030", work / "population_utf8.csv")
        megabytes = gbk.stat().st_size / 1e6
        print(f"generated {rows:,} rows ({megabytes:.0f} MB GBK CSV) in {generated:.1f} s")
        # The VM's speed drifts by tens of percent within minutes: each repeat runs the
        # baseline and our ingest back to back, and the ratio is the median of the pairs'.
        pairs = []
        for _ in range(args.repeat):
            pairs.append((run_child("baseline", utf8, work), run_child("ingest", utf8, work)))
        ingest_gbk = run_child("ingest", gbk, work)
        expectations = run_child("expectations", utf8, work)
        checks_sql = run_child("checks_sql", utf8, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if expectations["failing"] != checks_sql["failing"]:
        raise SystemExit("the GE suite and the hand-written SQL disagree on the counts")
    ratios = sorted(i["seconds"] / b["seconds"] for b, i in pairs)
    ratio = median(ratios)
    # The pair whose ratio is nearest the median is the one shown step by step.
    baseline, ingest = min(pairs, key=lambda p: abs(p[1]["seconds"] / p[0]["seconds"] - ratio))
    ratio_gbk = ingest_gbk["seconds"] / baseline["seconds"]
    ge_ratio = expectations["seconds"] / checks_sql["seconds"]
    summary = {
        "rows": rows, "pairs": pairs, "ingest_gbk": ingest_gbk,
        "expectations": expectations, "checks_sql": checks_sql,
        "ratios_ingest_vs_read_csv": [round(r, 2) for r in ratios],
        "ratio_ingest_vs_read_csv": round(ratio, 2),
        "ratio_ingest_gbk_vs_read_csv": round(ratio_gbk, 2),
        "ratio_ge_vs_sql": round(ge_ratio, 2),
    }  # fmt: skip
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"ingest_{rows}.json").write_text(json.dumps(summary, indent=2))
    base_s, base_mb = baseline["seconds"], baseline["peak_rss_mb"]
    print(f"DuckDB read_csv -> table : {base_s:6.2f} s  peak {base_mb:6.0f} MB")
    for label, run in (("govshare ingest (UTF-8)", ingest), ("govshare ingest (GBK)", ingest_gbk)):
        print(
            f"{label:25}: {run['seconds']:6.2f} s  peak {run['peak_rss_mb']:6.0f} MB  "
            f"({run['published']:,} published, {run['quarantined']:,} quarantined)"
        )
        print("  steps: " + ", ".join(f"{k} {v:.2f} s" for k, v in run["steps"].items()))
    ge_s, ge_rules = expectations["seconds"], expectations["rules"]
    print(
        f"GE suite on staging      : {ge_s:6.2f} s  ({ge_rules} rules, counting the verdicts "
        f"written in {expectations['verdicts_seconds']:.2f} s by validation; GE import "
        f"{expectations['import_seconds']:.1f} s)"
    )
    print(f"same checks, one SQL pass: {checks_sql['seconds']:6.2f} s  -> GE {ge_ratio:.2f}x")
    print(
        f"ratio ingest / read_csv  : {ratio:.2f}x UTF-8 (median of "
        f"{', '.join(f'{r:.2f}' for r in ratios)}), {ratio_gbk:.2f}x GBK"
    )


if __name__ == "__main__":
    main()
