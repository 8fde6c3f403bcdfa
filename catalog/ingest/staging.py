"""Landing files → the staging table: read, map headers, normalise, list superseded rows.

Staging lives in a plain DuckDB file per run, ``<home>/staging/<dataset>/<run>.duckdb``
(fast native format, shared between the pipeline's steps and processes), next to the run's
scratch folder and Dagster manifest; :func:`remove_staging` deletes them when the run ends.
Two runs of one dataset never share a file. Only the pipeline opens it; the API never does.

Every file of a delivery carries a column for every data item (its columns are kept per
file in ``ref_files._items``), unless the contract declares ``source.partial_updates``.
"""

from __future__ import annotations

import hashlib
import shutil
import uuid
from dataclasses import asdict, dataclass
from datetime import date
from pathlib import Path

import duckdb
import pyarrow as pa

from catalog.contracts import Contract
from catalog.ingest.normalise import normalise_sql
from catalog.ingest.readers import (
    IngestError,
    RawSource,
    error_row,
    error_summary,
    find_undecodable_row,
    not_utf8,
    open_source,
)
from catalog.ingest.rules import (
    STAGING_TABLE,
    SUPERSEDED_TABLE,
    office_today,
    typed_sql,
    write_reference_tables,
)
from catalog.settings import Settings
from catalog.sql import quote_ident, sql_literal
from catalog.store.lake import new_connection


@dataclass(frozen=True)
class SourceFile:
    name: str
    path: str
    sha256: str
    bytes: int
    rows: int = 0

    def as_dict(self) -> dict:
        """Everything, the server path included: for the pipeline's own manifest only."""
        return asdict(self)

    def public_dict(self) -> dict:
        """What version and run records keep: no server path."""
        return {"name": self.name, "sha256": self.sha256, "bytes": self.bytes, "rows": self.rows}


@dataclass(frozen=True)
class StageReport:
    dataset: str
    staging_path: Path
    rows_read: int
    files: list[SourceFile]
    ignored_headers: dict[str, list[str]]
    run_id: str = ""


def file_checksum(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(8 * 1024 * 1024):
            digest.update(chunk)
    return digest.hexdigest()


def describe_file(path: Path) -> SourceFile:
    return SourceFile(path.name, str(path), file_checksum(path), path.stat().st_size)


def staging_dir(settings: Settings, dataset: str) -> Path:
    return settings.folder("staging", dataset)


def staging_path(settings: Settings, dataset: str, run_id: str) -> Path:
    """The run's own staging file: concurrent runs of one dataset never share one."""
    return staging_dir(settings, dataset) / f"{run_id}.duckdb"


def scratch_path(settings: Settings, dataset: str, run_id: str) -> Path:
    return staging_dir(settings, dataset) / f"{run_id}.scratch"


def manifest_path(settings: Settings, dataset: str, run_id: str) -> Path:
    """The Dagster run's delivery manifest (files with their paths, for the publish step)."""
    return staging_dir(settings, dataset) / f"{run_id}.delivery.json"


def remove_staging(settings: Settings, dataset: str, run_id: str) -> None:
    """Delete the run's staging file (and its WAL), scratch folder and manifest."""
    path = staging_path(settings, dataset, run_id)
    for leftover in (
        path,
        path.with_name(path.name + ".wal"),
        manifest_path(settings, dataset, run_id),
    ):
        leftover.unlink(missing_ok=True)
    shutil.rmtree(scratch_path(settings, dataset, run_id), ignore_errors=True)


def open_staging(settings: Settings, dataset: str, run_id: str) -> duckdb.DuckDBPyConnection:
    path = staging_path(settings, dataset, run_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    con = new_connection(settings)
    # Staging lives for one delivery: writing it uncompressed is 2.5x faster.
    con.execute("SET force_compression = 'uncompressed'")
    # Only loading a file relies on insertion order (see ``_load_file``).
    con.execute("SET preserve_insertion_order = false")
    con.execute(f"ATTACH {sql_literal(str(path))} AS stg")
    con.execute("USE stg")
    return con


def map_headers(
    contract: Contract, path: Path, source: RawSource
) -> tuple[dict[str, str], list[str]]:
    """Data item → source header, and the headers no item claims. A file lacking a column for
    any item fails, unless the contract takes partial updates (then only required and key
    items must be there)."""
    found: dict[str, str] = {}
    ignored: list[str] = []
    for header in source.headers:
        item = contract.header_map.get(header.strip().lstrip("\ufeff"))
        if item is None:
            ignored.append(header)
        elif item in found:
            raise IngestError(path, f"two columns map to {item}: {found[item]!r} and {header!r}")
        else:
            found[item] = header
    absent = [item for item in contract.items if item.name not in found]
    if absent and not contract.source.partial_updates:
        raise IngestError(
            path,
            f"missing column(s) for {_labels(absent)}: this dataset takes full records, so "
            f"every file must carry a column for every data item (a missing column would "
            f"erase the published values)",
            row=0,
        )
    needed = [i for i in absent if i.required or i.name in contract.key]
    if needed:
        raise IngestError(path, f"missing required column(s): {_labels(needed)}", row=0)
    return found, ignored


def _labels(items: list) -> str:
    return ", ".join(f"{i.label} ({i.name})" for i in items)


ROWS_TABLE = "staging_rows"
FILES_TABLE = "ref_files"


def _select_normalised(
    contract: Contract, mapping: dict[str, str], seq: int, source: RawSource
) -> str:
    """One file's rows, normalised while they are read (the file's name is in ``ref_files``:
    a name per row would cost the load 5%)."""
    columns = [f"{seq} AS _file_seq"]
    for item in contract.items:
        header = mapping.get(item.name)
        raw = quote_ident(header) if header is not None else "CAST(NULL AS VARCHAR)"
        columns.append(f"{normalise_sql(item, raw)} AS {quote_ident(item.name)}")
    return f"SELECT {', '.join(columns)} FROM ({source.sql})"


def _load_file(con: duckdb.DuckDBPyConnection, seq: int, select: str) -> int:
    """Append one file's normalised rows in file order, so the table's ``rowid`` numbers the
    rows (DuckDB keeps insertion order in parallel inserts); returns the first rowid."""
    first = con.execute(f"SELECT count(*) FROM {ROWS_TABLE}").fetchone()[0] if seq else 0
    con.execute("SET preserve_insertion_order = true")
    try:
        if seq == 0:
            con.execute(f"CREATE OR REPLACE TABLE {ROWS_TABLE} AS {select}")
        else:
            con.execute(f"INSERT INTO {ROWS_TABLE} {select}")
    finally:
        con.execute("SET preserve_insertion_order = false")
    return int(first)


def _load_source(
    con: duckdb.DuckDBPyConnection, contract: Contract, path: Path, seq: int, scratch: Path
) -> tuple[int, dict[str, str], list[str]]:
    """Load one file: its first rowid, item → header mapping and unclaimed headers. A CSV
    whose header is UTF-8 but whose rows are not (a GBK export with a Latin header) is read
    again as GB18030."""
    geometry = contract.source.geometry_field
    source = open_source(con, path, scratch, geometry)
    try:
        return _load_mapped(con, contract, path, seq, source)
    except duckdb.Error as exc:
        if source.encoding != "utf-8" or not not_utf8(exc):
            raise
    # Neither reading it says where (find_undecodable_row), from the transcode.
    again = open_source(con, path, scratch, geometry, "gb18030")
    return _load_mapped(con, contract, path, seq, again)


def _load_mapped(
    con: duckdb.DuckDBPyConnection, contract: Contract, path: Path, seq: int, source: RawSource
) -> tuple[int, dict[str, str], list[str]]:
    mapping, unclaimed = map_headers(contract, path, source)
    first_rowid = _load_file(con, seq, _select_normalised(contract, mapping, seq, source))
    return first_rowid, mapping, unclaimed


def _create_staging_view(
    con: duckdb.DuckDBPyConnection,
    names: list[str],
    first_rowids: list[int],
    carried: list[list[str]],
) -> None:
    """``staging``: the rows with ``_rid`` (unique in the delivery), ``_file`` and ``_row``
    (the data row number in its file, 1 = first row under the header). ``ref_files`` keeps
    per file its name, first rowid and ``_items``, the data items its columns carried."""
    files = pa.table(
        {
            "_file_seq": list(range(len(first_rowids))),
            "_file": names,
            "first_rowid": first_rowids,
            "_items": pa.array(carried, type=pa.list_(pa.string())),
        }
    )
    con.register("file_offsets", files)
    con.execute(f"CREATE OR REPLACE TABLE {FILES_TABLE} AS SELECT * FROM file_offsets")
    con.unregister("file_offsets")
    con.execute(
        f"CREATE OR REPLACE VIEW {STAGING_TABLE} AS "
        f"SELECT r.rowid AS _rid, f._file, r.rowid - f.first_rowid + 1 AS _row, r.* "
        f"FROM {ROWS_TABLE} r JOIN (SELECT _file_seq, _file, first_rowid FROM {FILES_TABLE}) f "
        f"USING (_file_seq)"
    )


def _write_superseded(con: duckdb.DuckDBPyConnection, contract: Contract) -> None:
    """Rows whose key comes again in the delivery and are not its newest: by the contract's
    ``source.updated_at`` where it has one (then by position), else the last row delivered.
    The window runs only over the (few) repeated keys, not the whole delivery."""
    keys = ", ".join(quote_ident(k) for k in contract.key)
    present = " AND ".join(f"{quote_ident(k)} IS NOT NULL" for k in contract.key)
    order = "_rid DESC"
    if contract.source.updated_at is not None:
        stamp = contract.item(contract.source.updated_at)
        order = f"{typed_sql(stamp, quote_ident(stamp.name))} DESC NULLS LAST, {order}"
    con.execute(
        f"CREATE OR REPLACE TABLE {SUPERSEDED_TABLE} AS SELECT _rid FROM ("
        f"  SELECT _rid, row_number() OVER (PARTITION BY {keys} ORDER BY {order}) AS n"
        f"  FROM {STAGING_TABLE} SEMI JOIN ("
        f"    SELECT {keys} FROM {STAGING_TABLE} WHERE {present} GROUP BY ALL HAVING count(*) > 1"
        f"  ) USING ({keys})"
        f") WHERE n > 1"
    )


def stage(
    contract: Contract,
    files: list[Path],
    settings: Settings,
    described: list[SourceFile] | None = None,
    run_id: str | None = None,
    today: date | None = None,
) -> StageReport:
    """Read and normalise a delivery of one or more files into the run's staging table.
    ``described``: the files' checksums if the caller has them already (hashing is a pass).
    ``today``: the day date rules compare with (default: today in the office's time zone),
    fixed here once for the whole run.
    The caller removes the staging file when the run ends (:func:`remove_staging`)."""
    if not files:
        raise ValueError("no files to stage")
    run_id = run_id or uuid.uuid4().hex[:12]
    described = described or [describe_file(p) for p in files]
    scratch = scratch_path(settings, contract.dataset, run_id)
    con = open_staging(settings, contract.dataset, run_id)
    try:
        ignored: dict[str, list[str]] = {}
        first_rowids: list[int] = []
        carried: list[list[str]] = []
        for seq, path in enumerate(files):
            try:
                first_rowid, mapping, unclaimed = _load_source(con, contract, path, seq, scratch)
            except duckdb.Error as exc:
                raise _as_ingest_error(exc, [path]) from exc
            first_rowids.append(first_rowid)
            if unclaimed:
                ignored[path.name] = unclaimed
            carried.append([name for name in contract.item_names if name in mapping])
        _create_staging_view(con, [p.name for p in files], first_rowids, carried)
        _write_superseded(con, contract)
        counts = dict(
            con.execute(f"SELECT _file_seq, count(*) FROM {ROWS_TABLE} GROUP BY ALL").fetchall()
        )
        empty = [files[i] for i in range(len(files)) if counts.get(i, 0) == 0]
        if empty:
            raise IngestError(empty[0], "the file has a header but no data rows", row=1)
        write_reference_tables(con, today or office_today(settings.timezone))
    finally:
        con.close()
        shutil.rmtree(scratch, ignore_errors=True)
    with_rows = [
        SourceFile(**{**f.as_dict(), "rows": counts.get(i, 0)}) for i, f in enumerate(described)
    ]
    return StageReport(
        contract.dataset, staging_path(settings, contract.dataset, run_id), sum(counts.values()),
        with_rows, ignored, run_id,
    )  # fmt: skip


def _as_ingest_error(exc: duckdb.Error, files: list[Path]) -> IngestError:
    """DuckDB names the offending file in its message; fall back to the first file."""
    message = str(exc)
    for path in files:
        if (undecodable := find_undecodable_row(path)) is not None:
            return undecodable
    path = next((p for p in files if str(p) in message), files[0])
    return IngestError(path, error_summary(message), row=error_row(message))
