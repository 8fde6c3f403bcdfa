"""Read path vs Datasette: pages of rows over HTTP on loopback, timed with wrk.

    .venv/bin/python bench/read.py [--rows 1000000] [--duration 10] [--connections 1,8]
        [--scopes masked,clear] [--filter grant|query] [--fresh] [--keep]

Setup (cached in ``/tmp/govshare-bench-read-<rows>/``, rebuilt with ``--fresh``): a
population drop of ``--rows`` rows ingested into a runtime home; departments, users and
tokens seeded; four grants on the items id_number, name, region_code, status approved
through the API (department A: masked, the identity number pseudonymised, with and without
a row filter on the most common region code; department B: the same two with id_number and
name in clear). The same rows' four items go into an SQLite file (id_number its primary
key, region_code indexed) for Datasette.

Run: govshare's API (uvicorn on ``api.main:app``, as ``govshare serve`` starts it: access
control and the audit entry of every call on), Datasette (``datasette serve -i``, from its
own virtual environment ``bench/.venv-datasette``, made on first run) and a bare FastAPI
endpoint (``bench/bare_app.py``) run as processes of their own; wrk loads each case at each
connection count for ``--duration`` seconds, govshare then Datasette back to back. Every
URL is fetched once first (warm-up and check: 200, a full page; the deep page by key the
same rows as by offset); a run with any non-2xx answer or socket error fails its case.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from importlib.metadata import version as installed_version
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
DATASETTE_VENV = BENCH / ".venv-datasette"
DATASETTE_VERSION = "0.65.5"
ITEMS = ["id_number", "name", "region_code", "status"]
SCOPES = {
    # scope name → (requesting user, items in clear)
    "masked": ("consumer_a", []),
    "clear": ("consumer_b", ["id_number", "name"]),
}
WRK_INSTALL = "apt-get install -y wrk   (Debian/Ubuntu; or build it from its source)"


# --------------------------------------------------------------------------- setup


def _cache(rows: int) -> Path:
    return Path(tempfile.gettempdir()) / f"govshare-bench-read-{rows}"


def build(rows: int, fresh: bool) -> dict:
    """The runtime home, tokens, grants and SQLite file for ``rows`` rows (cached)."""
    folder = _cache(rows)
    setup_file = folder / "setup.json"
    if not fresh and setup_file.exists():
        setup = json.loads(setup_file.read_text())
        print(f"setup: cached in {folder} (--fresh rebuilds it)")
        return setup
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    started = time.perf_counter()

    from fastapi.testclient import TestClient

    from api.app import create_app
    from catalog.contracts import load_contracts
    from catalog.ingest.delivery import run_ingest
    from catalog.samples import generate
    from catalog.settings import REPO_ROOT, Settings
    from catalog.store.lake import Lake
    from tests.conftest import approve_request, seed_identities

    settings = Settings(home=folder / "runtime")
    contracts = load_contracts(REPO_ROOT / "schemas")
    print(f"setup: generating and ingesting {rows:,} population rows into {folder} ...")
    generate(folder / "drops", rows=rows, seed=11, defect_rate=0.0, datasets=["population"])
    lake = Lake(settings)
    run_ingest(contracts["population"], sorted((folder / "drops" / "population").glob("*")), lake)
    lake.close()
    shutil.rmtree(folder / "drops")
    tokens = seed_identities(settings, contracts)
    period = {"period_start": "2026-01-01", "period_end": "2030-12-31", "legal_basis": "基准测试"}
    grants: dict[str, dict[str, int]] = {}
    with TestClient(create_app(settings)) as client:
        con = client.app.state.govshare.connection().cursor()
        # The filtered page: the most common region code (a full page even of few rows).
        code, matching = con.execute(
            "SELECT region_code, count(*) AS n FROM lake.published.population "
            "GROUP BY region_code ORDER BY n DESC, region_code LIMIT 1"
        ).fetchone()
        row_filter = [{"item": "region_code", "op": "eq", "values": [code]}]
        for scope, (user, clear) in SCOPES.items():
            grants[scope] = {}
            for kind, extra in (("all", {}), ("filtered", {"row_filter": row_filter})):
                body = {
                    "dataset": "population",
                    "items": ITEMS,
                    "unmasked_items": clear,
                    "purpose": f"read benchmark, {scope}, {kind}",
                    **period,
                    **extra,
                }
                grants[scope][kind] = approve_request(client, tokens, body, requester=user)[
                    "grant"
                ]["id"]
        published = _export_sqlite(con, folder / "population.db")
    setup = {
        "rows": rows,
        "published": published,
        "home": str(folder / "runtime"),
        "sqlite": str(folder / "population.db"),
        "tokens": {user: tokens[user] for user, _ in SCOPES.values()},
        "grants": grants,
        "filter": {"region_code": code, "rows": matching},
    }
    setup_file.write_text(json.dumps(setup, indent=2))  # last: a complete setup only
    print(f"setup: done in {time.perf_counter() - started:.0f} s")
    return setup


def _export_sqlite(con, path: Path) -> int:
    """The published rows' four items into an SQLite table keyed by the identity number."""
    db = sqlite3.connect(path)
    db.execute(
        "CREATE TABLE population (id_number TEXT PRIMARY KEY, name TEXT, region_code TEXT, "
        "status TEXT)"
    )
    con.execute(f"SELECT {', '.join(ITEMS)} FROM lake.published.population")
    count = 0
    while batch := con.fetchmany(50_000):
        db.executemany("INSERT INTO population VALUES (?, ?, ?, ?)", batch)
        count += len(batch)
    db.execute("CREATE INDEX population_region_code ON population (region_code)")
    db.commit()
    db.execute("ANALYZE")
    db.close()
    return count


def datasette_bin() -> Path:
    """Datasette in the benchmark's own virtual environment (made on first use), with the
    project's uvicorn, uvloop and httptools versions, so both servers run on the same stack.
    Reinstalled when those pins change."""
    binary, pins_file = DATASETTE_VENV / "bin" / "datasette", DATASETTE_VENV / "pins.txt"
    pins = [f"datasette=={DATASETTE_VERSION}"]
    pins += [f"{name}=={installed_version(name)}" for name in ("uvicorn", "uvloop", "httptools")]
    if binary.exists() and pins_file.exists() and pins_file.read_text().split() == pins:
        return binary
    print(f"setup: installing {' '.join(pins)} into {DATASETTE_VENV} ...")
    if not (DATASETTE_VENV / "bin" / "pip").exists():
        base = getattr(sys, "_base_executable", sys.executable)
        subprocess.run([base, "-m", "venv", str(DATASETTE_VENV)], check=True)
    subprocess.run([str(DATASETTE_VENV / "bin" / "pip"), "install", "-q", *pins], check=True)
    pins_file.write_text("\n".join(pins) + "\n")
    return binary


# --------------------------------------------------------------------------- servers


@dataclass
class Server:
    name: str
    process: subprocess.Popen
    base: str
    log: Path

    def peak_rss_mb(self) -> float | None:
        """VmHWM of the server process (read before it stops)."""
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
        return None

    def stop(self) -> None:
        if self.process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGINT)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(name: str, command: list[str], ready: str, logs: Path, env: dict | None = None) -> Server:
    """Start a server in its own process group; wait until ``ready`` answers 200."""
    port = _free_port()
    command = [part.replace("{port}", str(port)) for part in command]
    log = logs / f"{name}.log"
    process = subprocess.Popen(
        command,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    server = Server(name, process, f"http://127.0.0.1:{port}", log)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited ({process.returncode}):\n{log.read_text()[-3000:]}")
        with (
            contextlib.suppress(OSError),
            urllib.request.urlopen(server.base + ready, timeout=5) as response,
        ):
            if response.status == 200:
                return server
        time.sleep(0.3)
    server.stop()
    raise RuntimeError(f"{name} did not answer {ready} within 180 s:\n{log.read_text()[-3000:]}")


# --------------------------------------------------------------------------- cases


@dataclass(frozen=True)
class Case:
    name: str
    limit: int
    where: str  # "first", "offset" (deep page by offset), "key" (deep, by key), "filtered"


CASES = [
    Case("first page of 100", 100, "first"),
    Case("first page of 1,000", 1000, "first"),
    Case("deep page of 100, by offset", 100, "offset"),
    Case("deep page of 100, by key", 100, "key"),
    Case("deep page of 1,000, by offset", 1000, "offset"),
    Case("deep page of 1,000, by key", 1000, "key"),
    Case("filtered page of 100", 100, "filtered"),
]


def deep_offset(rows: int) -> int:
    return rows * 9 // 10  # 900k of 1M


def _get(url: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=300) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def govshare_filter(setup: dict, scope: str, how: str) -> tuple[int, str]:
    """The grant and extra query of the filtered page (region_code = the most common code):
    ``grant``: a grant with that row filter; ``query``: the unfiltered grant and the filter
    as a query parameter (``?region_code=``, where the rows route takes item filters)."""
    if how == "query":
        return setup["grants"][scope]["all"], f"&region_code={setup['filter']['region_code']}"
    return setup["grants"][scope]["filtered"], ""


def govshare_url(
    base: str, setup: dict, scope: str, case: Case, headers: dict, filter_by: str
) -> str:
    """The govshare URL of a case; a deep page by key asks for the page before's cursor."""
    grant, extra = setup["grants"][scope]["all"], ""
    if case.where == "filtered":
        grant, extra = govshare_filter(setup, scope, filter_by)
    rows = f"{base}/datasets/population/rows?grant={grant}{extra}"
    if case.where == "offset":
        return f"{rows}&limit={case.limit}&offset={deep_offset(setup['published'])}"
    if case.where == "key":
        status, body = _get(f"{rows}&limit=1&offset={deep_offset(setup['published']) - 1}", headers)
        if status != 200:
            raise RuntimeError(f"govshare: the cursor before the deep page: {status} {body[:300]}")
        return f"{rows}&limit={case.limit}&after={json.loads(body)['next']}"
    return f"{rows}&limit={case.limit}"


def datasette_url(base: str, setup: dict, case: Case) -> str:
    """Datasette's table JSON. It pages by key only (``_next``: the key of the page before's
    last row), so both deep cases are its keyset page at the same position."""
    table = f"{base}/population/population.json?_shape=objects&_nosuggest=1&_size={case.limit}"
    if case.where in ("offset", "key"):
        db = sqlite3.connect(f"file:{setup['sqlite']}?mode=ro", uri=True)
        (key,) = db.execute(
            "SELECT id_number FROM population ORDER BY id_number LIMIT 1 OFFSET ?",
            (deep_offset(setup["published"]) - 1,),
        ).fetchone()
        db.close()
        assert re.fullmatch(r"[0-9A-Za-z]+", key), key  # nothing to tilde-encode
        return f"{table}&_next={key}"
    if case.where == "filtered":
        return f"{table}&region_code={setup['filter']['region_code']}"
    return table


def check(url: str, headers: dict, case: Case, setup: dict) -> tuple[str | None, list]:
    """Fetch once (warm-up): (None, the rows) if 200 with a full page (of the filter's
    region code on the filtered page), else what went wrong."""
    limit = case.limit
    status, body = _get(url, headers)
    if status != 200:
        return f"HTTP {status}: {body[:200]!r}", []
    rows = json.loads(body)["rows"]
    if len(rows) != limit:
        return f"{len(rows)} rows, not {limit}", rows
    code = setup["filter"]["region_code"]
    if case.where == "filtered" and any(row["region_code"] != code for row in rows):
        return f"rows of region codes other than {code}: not filtered", rows
    return None, rows


# --------------------------------------------------------------------------- wrk


@dataclass
class Run:
    rps: float = 0.0
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    requests: int = 0
    error: str | None = None


_UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}


def _ms(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", text).groups()
    return float(number) * _UNIT_MS[unit]


def wrk(url: str, connections: int, duration: int, headers: dict) -> Run:
    command = ["wrk", f"-t{min(2, connections)}", f"-c{connections}", f"-d{duration}s"]
    command += ["--timeout", "60s", "--latency"]
    for name, value in headers.items():
        command += ["-H", f"{name}: {value}"]
    done = subprocess.run(
        [*command, url], capture_output=True, text=True, timeout=duration + 120, check=False
    )
    out = done.stdout
    run = Run()
    if done.returncode != 0 or "Requests/sec:" not in out:
        run.error = f"wrk failed: {done.stderr.strip() or out.strip()}"[:300]
        return run
    run.rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    run.requests = int(re.search(r"(\d+) requests in", out).group(1))
    for percent, field in (("50", "p50_ms"), ("99", "p99_ms")):
        found = re.search(rf"^\s+{percent}(?:\.000)?%\s+(\S+)", out, re.M)
        setattr(run, field, _ms(found.group(1)) if found else float("nan"))
    problems = []
    if found := re.search(r"Non-2xx or 3xx responses: (\d+)", out):
        problems.append(f"{found.group(1)} non-2xx")
    if found := re.search(r"Socket errors: (.*)", out):
        problems.append(f"socket errors: {found.group(1)}")
    if run.requests == 0:
        problems.append("no request completed")
    run.error = "; ".join(problems) or None
    return run


# --------------------------------------------------------------------------- report


def _cell(run: Run) -> str:
    if run.error:
        return f"FAIL ({run.error.replace('|', '/')}) | | "
    return f"{run.rps:,.1f} | {run.p50_ms:,.1f} | {run.p99_ms:,.1f}"


def _ratio(ours: Run, theirs: Run) -> str:
    if ours.error or theirs.error or not theirs.rps:
        return "–"
    ratio = ours.rps / theirs.rps
    return f"**{ratio:.2f}x**" if ratio >= 1 else f"{ratio:.2f}x"


def _slower(deep: Run, first: Run) -> str:
    """Deep page p50 / first page p50."""
    if deep.error or first.error or not first.p50_ms:
        return "–"
    return f"{deep.p50_ms / first.p50_ms:.2f}x"


def warm_copies(base: str, setup: dict, scopes: list[str], how: str) -> None:
    """Ask once for every case, so the server queues the read-optimised copies they read
    (decision 50), then wait until ``/health`` says none is pending: the runs time pages
    of built copies, not the lake fallback of the first minutes after a publish."""
    start = time.perf_counter()
    for case in CASES:
        for scope in scopes:
            headers = {"Authorization": f"Bearer {setup['tokens'][SCOPES[scope][0]]}"}
            url = govshare_url(base, setup, scope, case, headers, how)
            for _ in range(2):  # an order asked for again gets its copy
                _get(url, headers)
    while json.loads(_get(base + "/health")[1])["read_copies_pending"]:
        time.sleep(0.5)
    print(f"read copies ready after {time.perf_counter() - start:.1f} s")


def main(args: argparse.Namespace) -> int:
    if shutil.which("wrk") is None:
        print(f"wrk (the HTTP load generator) is not installed. Install it with:\n  {WRK_INSTALL}")
        return 2
    connections = [int(c) for c in args.connections.split(",")]
    scopes = [s for s in args.scopes.split(",") if s]
    if unknown := set(scopes) - set(SCOPES):
        print(f"unknown scope(s) {sorted(unknown)}; choose among {sorted(SCOPES)}")
        return 2
    setup = build(args.rows, args.fresh)
    datasette = datasette_bin()
    logs = Path(tempfile.mkdtemp(prefix="govshare-bench-read-logs-"))
    servers: list[Server] = []
    failed = False
    try:
        gov = start(
            "govshare",
            [sys.executable, "-m", "uvicorn", "api.main:app", "--host", "127.0.0.1",
             "--port", "{port}"],
            "/health",
            logs,
            env={"GOVSHARE_HOME": setup["home"]},
        )  # fmt: skip
        servers.append(gov)
        ds = start(
            "datasette",
            [str(datasette), "serve", "-i", setup["sqlite"], "--host", "127.0.0.1",
             "--port", "{port}", "--setting", "max_returned_rows", "1000",
             "--setting", "sql_time_limit_ms", "60000"],
            "/-/versions.json",
            logs,
        )  # fmt: skip
        servers.append(ds)
        bare = start(
            "bare",
            [sys.executable, "-m", "uvicorn", "bare_app:app", "--app-dir", str(BENCH),
             "--host", "127.0.0.1", "--port", "{port}"],
            "/ping",
            logs,
        )  # fmt: skip
        servers.append(bare)
        wrk_version = subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout
        print(
            f"population: {setup['published']:,} rows; deep page at offset "
            f"{deep_offset(setup['published']):,}; filtered page: region_code = "
            f"{setup['filter']['region_code']} ({setup['filter']['rows']:,} rows) by "
            f"{args.filter}; wrk {wrk_version.split()[1]}, "
            f"{args.duration} s per run, connections {connections} (wrk threads ≤ 2); "
            f"{os.cpu_count()} cores; Datasette {DATASETTE_VERSION}"
        )
        ds_urls = {case: datasette_url(ds.base, setup, case) for case in CASES}
        lines = [
            "| case | scope | conns | govshare req/s | p50 ms | p99 ms "
            "| Datasette req/s | p50 ms | p99 ms | ratio |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        ]
        warm_copies(gov.base, setup, scopes, args.filter)
        print("running (a line per case as it ends; the tables follow):")
        results: dict[tuple[str, str, int], Run] = {}
        ds_results: dict[tuple[str, int], Run] = {}
        deep_rows: dict[tuple[str, int], list] = {}
        for case in CASES:
            for scope in scopes:
                user = SCOPES[scope][0]
                headers = {"Authorization": f"Bearer {setup['tokens'][user]}"}
                url = govshare_url(gov.base, setup, scope, case, headers, args.filter)
                problem, rows = check(url, headers, case, setup)
                if case.where == "offset":
                    deep_rows[scope, case.limit] = rows
                elif case.where == "key" and not problem and rows != deep_rows[scope, case.limit]:
                    problem = "not the same rows as the deep page by offset"
                if problem:
                    print(f"  govshare {case.name} ({scope}): {problem}")
                for c in connections:
                    ours = wrk(url, c, args.duration, headers)
                    if problem:
                        ours.error = problem
                    if (case.name, c) not in ds_results:
                        ds_url = ds_urls[case]
                        ds_problem = check(ds_url, {}, case, setup)[0]
                        theirs = wrk(ds_url, c, args.duration, {})
                        theirs.error = ds_problem or theirs.error
                        ds_results[case.name, c] = theirs
                    theirs = ds_results[case.name, c]
                    results[case.name, scope, c] = ours
                    failed |= bool(ours.error or theirs.error)
                    lines.append(
                        f"| {case.name} | {scope} | {c} | {_cell(ours)} | {_cell(theirs)} "
                        f"| {_ratio(ours, theirs)} |"
                    )
                    print(f"  {lines[-1]}", flush=True)
        base_lines = [
            "| endpoint | conns | req/s | p50 ms | p99 ms | vs bare |",
            "| --- | --- | --- | --- | --- | --- |",
        ]
        for c in connections:
            ping = wrk(bare.base + "/ping", c, args.duration, {})
            failed |= bool(ping.error)
            base_lines.append(f"| bare FastAPI `/ping` | {c} | {_cell(ping)} | 100% |")
            for path in ("/health", "/catalog"):
                run = wrk(gov.base + path, c, args.duration, {})
                failed |= bool(run.error)
                share = f"{run.rps / ping.rps:.0%}" if ping.rps and not run.error else "–"
                base_lines.append(f"| govshare `{path}` | {c} | {_cell(run)} | {share} |")
        gov_rss, ds_rss = gov.peak_rss_mb(), ds.peak_rss_mb()
        print("\n## Rows: govshare vs Datasette (ratio: govshare req/s / Datasette req/s)\n")
        print("\n".join(lines))
        print("\n## Deep page / first page, p50 latency at 1 connection (goal ≤ 1.5x)\n")
        c = min(connections)
        for size in ("100", "1,000"):
            for scope in scopes:
                first = results[f"first page of {size}", scope, c]
                offset = results[f"deep page of {size}, by offset", scope, c]
                key = results[f"deep page of {size}, by key", scope, c]
                print(
                    f"- govshare, {scope}, page of {size}: by offset {_slower(offset, first)}, "
                    f"by key {_slower(key, first)}"
                )
            first = ds_results[f"first page of {size}", c]
            key = ds_results[f"deep page of {size}, by key", c]
            print(f"- Datasette, page of {size}: by key {_slower(key, first)}")
        print("\n## /health and /catalog vs a bare FastAPI endpoint (goal ≥ 50%)\n")
        print("\n".join(base_lines))
        print(
            f"\npeak RSS (VmHWM): govshare server {gov_rss or 0:,.0f} MB, "
            f"Datasette {ds_rss or 0:,.0f} MB"
        )
    finally:
        for server in servers:
            server.stop()
        if args.keep or failed:
            print(f"server logs kept in {logs}")
        else:
            shutil.rmtree(logs, ignore_errors=True)
    if failed:
        print("FAILED: some runs had errors (see FAIL cells)")
    return 1 if failed else 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    parser.add_argument("--connections", default="1,8", help="comma-separated, e.g. 1,8")
    parser.add_argument(
        "--scopes",
        default="masked,clear",
        help="govshare scopes, comma-separated: masked (id_number pseudonymised), clear",
    )
    parser.add_argument(
        "--filter",
        choices=["grant", "query"],
        default="grant",
        help="filtered page: by the grant's row filter, or by ?region_code= on the rows route",
    )
    parser.add_argument("--fresh", action="store_true", help="rebuild the cached setup")
    parser.add_argument("--keep", action="store_true", help="keep the servers' logs")
    sys.exit(main(parser.parse_args()))
