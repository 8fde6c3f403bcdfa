"""``govshare catalog``: the catalog's releases and diffs at the machine (the same core as
``GET /catalog/releases``; counts and metadata only, never rows)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    import duckdb

    from catalog.contracts import Contract
    from catalog.store.releases import Release

catalog_app = typer.Typer(
    help="Catalog releases (the catalog versioned as a whole) and diffs.",
    no_args_is_help=True,
)
console = Console()


@contextmanager
def _lake(record: bool = True) -> Iterator[tuple[dict[str, Contract], duckdb.DuckDBPyConnection]]:
    """The contracts and a lake reader; first records a release if the contracts changed."""
    from catalog.contracts import ContractError, load_contracts
    from catalog.runtime import secure_home
    from catalog.settings import Settings
    from catalog.store.lake import Lake, LakeBusy
    from catalog.store.releases import ResourceCodeChanged, sync

    settings = Settings()
    secure_home(settings)
    lake = Lake(settings)
    try:
        contracts = load_contracts(settings.schemas_dir)
        try:
            made = sync(lake, contracts) if record else None
        except LakeBusy as busy:  # the publish holding the lake records its own release
            console.print(f"[yellow]no release recorded now: {busy}[/yellow]")
            made = None
        if made is not None:
            console.print(f"recorded catalog release {made.release}: {made.reason}")
        with lake.reader() as con:
            yield contracts, con
    except (ContractError, ResourceCodeChanged) as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from exc
    finally:
        lake.close()


def _release(con: duckdb.DuckDBPyConnection, number: int | None) -> Release:
    from catalog.store.releases import get_release, latest_release

    found = latest_release(con) if number is None else get_release(con, number)
    if found is None:
        console.print(f"[red]no catalog release {number or 'yet'}[/red]")
        raise typer.Exit(1)
    return found


@catalog_app.command()
def releases(limit: Annotated[int, typer.Option(min=1, max=1000)] = 20) -> None:
    """Catalog releases, newest first (records one first if the contracts changed)."""
    from catalog.store.releases import list_releases

    with _lake() as (_contracts, con):
        found, total = list_releases(con, limit)
    table = Table("release", "created", "datasets", "what changed", title=f"{total} releases")
    for release in found:
        table.add_row(
            str(release.release),
            release.created_at.isoformat(timespec="seconds"),
            str(len(release.datasets)),
            release.reason,
        )
    console.print(table)


@catalog_app.command()
def show(release: Annotated[int | None, typer.Argument(help="Latest if absent")] = None) -> None:
    """One release: each dataset's resource code, version and row count in it."""
    with _lake() as (_contracts, con):
        found = _release(con, release)
    table = Table("dataset", "resource code", "version", "rows", title=f"release {found.release}")
    for name, entry in found.datasets.items():
        table.add_row(
            name,
            entry["resource_code"],
            str(entry["version"] or "—"),
            f"{entry['row_count']:,}" if entry["row_count"] is not None else "—",
        )
    console.print(table)
    console.print(f"{found.created_at.isoformat(timespec='seconds')}: {found.reason}")


@catalog_app.command()
def diff(
    a: Annotated[int, typer.Argument(help="The older release")],
    b: Annotated[int | None, typer.Argument(help="The newer release; the latest if absent")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="The diff as JSON")] = False,
) -> None:
    """What changed between two releases: datasets added and removed, versions, row counts,
    metadata field by field, data items."""
    from catalog.store.releases import diff as release_diff

    with _lake() as (_contracts, con):
        older, newer = _release(con, a), _release(con, b)
        if older.release >= newer.release:
            console.print(f"[red]release {a} is not before release {newer.release}[/red]")
            raise typer.Exit(2)
        found = release_diff(con, older, newer)
    if as_json:
        print(json.dumps(found, ensure_ascii=False, indent=2))
        return
    console.print(f"release {found['from']} → {found['to']}")
    for name in found["added"]:
        console.print(f"  [green]+ {name}[/green]")
    for name in found["removed"]:
        console.print(f"  [red]- {name}[/red]")
    for change in found["changed"]:
        version, rows = change["version"], change["row_count"]
        console.print(
            f"  ~ {change['dataset']}: v{version['from']} → v{version['to']}, rows "
            f"{rows['from']} → {rows['to']} ({rows['change']:+d})"
        )
        for field in change["metadata"]:
            console.print(f"      {field['field']}: {field['from']!r} → {field['to']!r}")
        items = change["items"]
        for label, names in (("items added", items["added"]), ("items removed", items["removed"])):
            if names:
                console.print(f"      {label}: {', '.join(names)}")
        for item in items["changed"]:
            console.print(
                f"      item {item['item']}.{item['field']}: {item['from']!r} → {item['to']!r}"
            )


@catalog_app.command()
def changes(
    dataset: str,
    older: Annotated[int | None, typer.Option("--from", help="The version before --to")] = None,
    newer: Annotated[int | None, typer.Option("--to", help="The latest version")] = None,
) -> None:
    """Rows added, deleted and changed between two versions of a dataset (counts only)."""
    from catalog.store.changes import version_changes
    from catalog.store.versions import get_version, latest_version

    with _lake(record=False) as (contracts, con):
        if dataset not in contracts:
            console.print(f"[red]no dataset {dataset!r}[/red]")
            raise typer.Exit(2)
        b = latest_version(con, dataset) if newer is None else get_version(con, dataset, newer)
        number = older if older is not None else (b.version - 1 if b else 0)
        a = get_version(con, dataset, number) if number >= 1 else None  # None: before v1
        if b is None or number >= b.version or (older is not None and a is None):
            console.print(f"[red]{dataset}: no versions {number} and {newer or 'latest'}[/red]")
            raise typer.Exit(2)
        found = version_changes(con, contracts[dataset], a, b)
    console.print(f"{dataset} v{a.version if a else 0} → v{b.version}: {found.counts}")
    if found.items_changed:
        console.print(f"  changed items: {found.items_changed}")
    console.print(f"  schema: {found.schema}")
