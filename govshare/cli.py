"""The ``govshare`` command: demo, ingest, status, serve, samples, contracts, admin, audit."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn
from rich.table import Table

from catalog.contracts import ContractError, load_contracts
from catalog.runtime import secure_home
from catalog.settings import REPO_ROOT, Settings
from govshare.access_cli import admin_app, audit_app
from govshare.catalog_cli import catalog_app
from govshare.quality_cli import register as register_quality

if TYPE_CHECKING:
    from catalog.ingest.delivery import IngestOutcome

app = typer.Typer(
    help="govshare: the data-sharing platform of a government information office.",
    no_args_is_help=True,
    add_completion=False,
)
app.add_typer(admin_app, name="admin")
app.add_typer(audit_app, name="audit")
app.add_typer(catalog_app, name="catalog")
console = Console()
SAMPLES_DIR = REPO_ROOT / "data"


# The write side (ingest, the lake, Dagster) is imported by the commands that use it:
# `govshare serve` starts the API without loading it (a second of imports).


def _settings() -> Settings:
    settings = Settings()
    secure_home(settings)  # the runtime folder and all it holds: owner-only
    return settings


def _contracts(settings: Settings) -> dict:
    try:
        return load_contracts(settings.schemas_dir)
    except ContractError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from exc


def _print_outcome(outcome: IngestOutcome) -> None:
    colour = {"published": "green", "unchanged": "cyan"}.get(outcome.status, "red")
    version = f"v{outcome.version.version}" if outcome.version else "-"
    console.print(
        f"[{colour}]{outcome.dataset}: {outcome.status}[/{colour}]  read {outcome.rows_read:,}  "
        f"published {outcome.rows_published:,}  quarantined {outcome.rows_quarantined:,}  "
        f"version {version}  (run {outcome.run_id})"
    )
    if outcome.message and (outcome.status != "published" or outcome.rows_stale):
        console.print(f"  {outcome.message}")


@app.command()
def ingest(
    dataset: Annotated[str, typer.Argument(help="Dataset name, as in schemas/")],
    files: Annotated[list[Path], typer.Argument(help="Files handed over by the department")],
) -> None:
    """Ingest files handed over by a department, synchronously (the files are copied)."""
    from catalog.ingest.delivery import run_ingest
    from catalog.sharing.audit import AuditUnavailable
    from catalog.store.lake import Lake

    settings = _settings()
    contracts = _contracts(settings)
    if dataset not in contracts:
        console.print(f"[red]unknown dataset {dataset!r}; known: {', '.join(contracts)}[/red]")
        raise typer.Exit(2)
    try:
        with Progress(SpinnerColumn(), TextColumn("{task.description}"), console=console) as bar:
            task = bar.add_task(f"{dataset}: starting")
            outcome = run_ingest(
                contracts[dataset], [f.resolve() for f in files], Lake(settings),
                on_step=lambda step: bar.update(task, description=f"{dataset}: {step}"),
            )  # fmt: skip
    except AuditUnavailable as exc:  # the run is done and recorded in the lake, not in the log
        console.print(f"[red]{exc}[/red] (the run itself is recorded: govshare status)")
        raise typer.Exit(1) from exc
    _print_outcome(outcome)
    if outcome.status in ("failed", "rejected"):
        raise typer.Exit(1)


@app.command()
def status() -> None:
    """Datasets, their latest versions and the last runs."""
    from catalog.store.lake import Lake
    from catalog.store.versions import latest_versions, recent_runs

    settings = _settings()
    contracts = _contracts(settings)
    with Lake(settings).reader() as con:
        latest = latest_versions(con)
        runs = recent_runs(con, limit=10)
    table = Table(title="Datasets")
    columns = ("dataset", "name", "sharing", "version", "rows", "published at", "quarantine rate")
    for column in columns:
        table.add_column(column)
    for name, contract in contracts.items():
        v = latest.get(name)
        table.add_row(
            name, contract.catalog.name, contract.catalog.sharing.type,
            str(v.version) if v else "-", f"{v.row_count:,}" if v else "-",
            v.published_at.strftime("%Y-%m-%d %H:%M:%S") if v else "-",
            f"{_quarantine_rate(v.quality):.2%}" if v else "-",
        )  # fmt: skip
    console.print(table)
    runs_table = Table(title="Last runs")
    for column in ("finished", "dataset", "status", "read", "quarantined", "version", "run"):
        runs_table.add_column(column, no_wrap=column != "run", overflow="fold")
    # The reason whole, wrapped by rich (it names the file, row and column at fault).
    runs_table.add_column("message", ratio=1, overflow="fold")
    for r in runs:
        runs_table.add_row(
            r.finished_at.strftime("%Y-%m-%d %H:%M:%S"), r.dataset, r.status, f"{r.rows_read:,}",
            f"{r.rows_quarantined:,}", str(r.version or "-"), r.run_id, r.message,
        )  # fmt: skip
    console.print(runs_table)


def _quarantine_rate(quality: dict) -> float:
    """The share of a delivery's rows quarantined (recorded as ``failure_rate`` before)."""
    return quality.get("quarantine_rate", quality["failure_rate"])


@app.command()
def samples(
    rows: Annotated[
        int, typer.Option(help="Population rows (other datasets scale from it)")
    ] = 2000,
    seed: Annotated[int, typer.Option(help="Random seed: same seed, same files")] = 7,
    out: Annotated[Path, typer.Option(help="Output folder")] = SAMPLES_DIR,
    defect_rate: Annotated[float, typer.Option(help="Share of rows per defect kind")] = 0.01,
) -> None:
    """Generate synthetic department drops in the formats departments send."""
    from catalog.samples import generate

    with Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), console=console
    ) as bar:
        tasks: dict[str, int] = {}

        def progress(dataset: str, done: int, total: int) -> None:
            if dataset not in tasks:
                tasks[dataset] = bar.add_task(dataset, total=total)
            bar.update(tasks[dataset], completed=done, total=total)

        report = generate(out, rows=rows, seed=seed, defect_rate=defect_rate, progress=progress)
    console.print(f"[green]samples written to {out}[/green]")
    for dataset, info in report.datasets.items():
        console.print(
            f"  {dataset}: {info.rows:,} rows in {', '.join(Path(f).name for f in info.files)}"
        )


def _ingest_samples_with_dagster(settings: Settings, contracts: dict) -> None:
    """Hand every sample drop to its landing folder and run its Dagster job in-process, so
    the runs show in the Dagster UI."""
    from catalog.store.lake import Lake
    from catalog.store.versions import recent_runs
    from pipelines.definitions import build_definitions
    from pipelines.instance import instance_for

    instance = instance_for(settings)
    defs = build_definitions(contracts, str(settings.home))
    with Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), console=console
    ) as bar:
        task = bar.add_task("ingesting sample drops", total=len(contracts))
        for dataset in contracts:
            landing = settings.folder("landing", dataset)
            landing.mkdir(parents=True, exist_ok=True)
            files = []
            for source in sorted((SAMPLES_DIR / dataset).glob("*")):
                shutil.copy2(source, landing / source.name)
                files.append(str(landing / source.name))
            bar.update(task, description=f"ingesting {dataset}")
            defs.resolve_job_def(f"ingest_{dataset}").execute_in_process(
                run_config={
                    "ops": {f"stage_{dataset}": {"config": {"files": files}}},
                    # The summary below is the demo's output; the full log is in the UI.
                    "loggers": {"console": {"config": {"log_level": "CRITICAL"}}},
                },
                instance=instance,
                raise_on_error=False,
            )
            bar.advance(task)
    with Lake(settings).reader() as con:
        runs = {r.dataset: r for r in reversed(recent_runs(con, limit=len(contracts)))}
    for run in runs.values():
        colour = "green" if run.status in ("published", "unchanged") else "red"
        console.print(
            f"[{colour}]{run.dataset}: {run.status}[/{colour}]  read {run.rows_read:,}  "
            f"quarantined {run.rows_quarantined:,}  version {run.version or '-'}"
        )
        if run.status != "published":
            console.print(f"  {run.message}", highlight=False)


def _start(command: list[str]) -> subprocess.Popen:
    """Start a server in its own process group, so stopping it stops its children too."""
    return subprocess.Popen(command, cwd=REPO_ROOT, start_new_session=True)


def _interrupt(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


def _stop(process: subprocess.Popen, grace_seconds: float = 20) -> None:
    """SIGINT to the whole group (what Ctrl-C in a terminal does), SIGKILL if it lingers."""
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGINT)
    try:
        process.wait(timeout=grace_seconds)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


@app.command()
def serve(
    dagster: Annotated[bool, typer.Option(help="Also serve the Dagster UI and daemon")] = False,
) -> None:
    """Serve the API (and optionally the Dagster UI) on localhost until interrupted."""
    settings = _settings()
    processes = [
        _start(
            [sys.executable, "-m", "uvicorn", "api.main:app", "--host", settings.api_host,
             "--port", str(settings.api_port)],
        )
    ]  # fmt: skip
    console.print(f"API:        http://{settings.api_host}:{settings.api_port}/docs")
    if dagster:
        from pipelines.instance import dagster_dev_command, prepare_dagster_home

        prepare_dagster_home(settings)
        processes.append(_start(dagster_dev_command(settings)))
        console.print(f"Dagster UI: http://{settings.api_host}:{settings.dagster_port}")
    console.print("Press Ctrl-C to stop.")
    # Stop cleanly on Ctrl-C and on SIGTERM (service managers), even where the shell that
    # started us set SIGINT to be ignored.
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, _interrupt)
    try:
        while all(p.poll() is None for p in processes):
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        for p in processes:
            _stop(p)


def _seed_identities(settings: Settings, contracts: dict, *, serving: bool) -> None:
    from govshare.demo_access import TOKENS_FILE, seed

    users = seed(settings, contracts)
    listing = settings.home / TOKENS_FILE
    reused = all(u.reused for u in users)
    state = "kept from the last demo run" if reused else "issued now"
    console.print(f"Demo users and their tokens ({state}; also in {listing}):")
    for u in users:
        console.print(f"  {u.username:<24} {u.role:<9} {u.token}", highlight=False, soft_wrap=True)
    consumer = next((u.token for u in users if u.username == "civil_consumer"), None)
    url = f"http://{settings.api_host}:{settings.api_port}"
    if not serving:
        console.print(
            "The API is not running (--no-serve). Start it with `govshare serve` "
            "(`govshare serve --dagster` adds the Dagster UI and the landing sensors), "
            f"then call {url}/docs with one of the tokens above.",
            highlight=False,
        )
        return
    if consumer:
        console.print(
            f"Try: curl -H 'Authorization: Bearer {consumer}' "
            f"'{url}/datasets/population/rows?limit=3'",
            highlight=False,
            soft_wrap=True,
        )


@app.command()
def demo(
    no_serve: Annotated[bool, typer.Option("--no-serve", help="Ingest only, then exit")] = False,
) -> None:
    """Ingest the sample drops of all five departments, then serve the API and Dagster UI.
    Re-running it keeps the demo users and their tokens (new ones only where one no longer
    works)."""
    from catalog.store.lake import Lake

    settings = _settings()
    contracts = _contracts(settings)
    console.print(f"runtime folder: {settings.home}")
    Lake(settings).initialise()
    _ingest_samples_with_dagster(settings, contracts)
    _seed_identities(settings, contracts, serving=not no_serve)
    if not no_serve:
        console.print(
            f"Drop more files into {settings.folder('landing')}/<dataset>/ and the "
            "landing sensors ingest them."
        )
        serve(dagster=True)


@app.command()
def contracts() -> None:
    """Validate every contract in schemas/ and list them."""
    settings = _settings()
    loaded = _contracts(settings)
    for name, contract in loaded.items():
        console.print(
            f"[green]ok[/green] {name}: {contract.catalog.name} — {len(contract.items)} items, "
            f"{contract.catalog.sharing.type}"
        )


register_quality(app)  # after the commands above, so that help lists them first

if __name__ == "__main__":
    app()
