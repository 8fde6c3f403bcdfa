"""One reader per department file format, each yielding raw text columns to DuckDB.

A reader returns a SQL query (over DuckDB's own readers) whose columns are the file's
headers as text, in file order (staging numbers the rows). Nothing is typed here: typing and
normalisation happen in SQL afterwards, so a leading zero or an odd date is never lost.
Unreadable input raises :class:`IngestError` naming the file, row and column.
"""

from __future__ import annotations

import codecs
import csv
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pyarrow as pa

from catalog.sql import quote_ident, sql_literal
from catalog.store.lake import load_extension

# What a CSV may be in: UTF-8 (with or without BOM), else GB18030 (covers GBK and GB2312).
ENCODINGS = ("utf-8", "gb18030")
# Chunk size for transcoding: big enough to be quick, small enough to stay in memory.
_SNIFF_CHUNK = 16 * 1024 * 1024


class IngestError(ValueError):
    """A delivered file cannot be used; says which file and, where known, row and column."""

    def __init__(
        self, file: Path | str, message: str, *, row: int | None = None, column: str | None = None
    ) -> None:
        self.file = str(file)
        self.row = row
        self.column = column
        self.reason = message
        where = [f"file {Path(self.file).name}"]
        if row is not None:
            where.append(f"row {row}")
        if column is not None:
            where.append(f"column {column}")
        super().__init__(f"{', '.join(where)}: {message}")


@dataclass(frozen=True)
class RawSource:
    """A query yielding the file's columns as text, in file order; ``headers`` as found."""

    sql: str
    headers: list[str]
    encoding: str | None = None
    """A CSV's encoding as read: "utf-8" is an assumption DuckDB checks while it reads
    (see :func:`read_csv`)."""


def find_undecodable_row(path: Path) -> IngestError | None:
    """On the error path only: where a CSV stops decoding, in whichever of UTF-8 and GB18030
    reads further (the file's encoding, damaged there); None when either reads it whole.
    DuckDB's message for a decoding failure has no usable line number. The message names no
    bytes: they are part of a value."""
    if FORMAT_OF_SUFFIX.get(path.suffix.lower()) != "csv":
        return None
    stops = {encoding: _first_undecodable_line(path, encoding) for encoding in ENCODINGS}
    if any(line is None for line in stops.values()):
        return None
    encoding, line = max(stops.items(), key=lambda stop: stop[1] or 0)
    return IngestError(
        path,
        f"the row is not valid {encoding}, the encoding of the rows above it: the file mixes "
        "encodings or is damaged",
        row=(line or 1) - 1,
    )


def _first_undecodable_line(path: Path, encoding: str) -> int | None:
    with path.open("rb") as handle:
        for line_number, line in enumerate(handle, start=1):
            try:
                line.decode(encoding)
            except UnicodeDecodeError:
                return line_number
    return None


def _line_of(message: str) -> int | None:
    match = re.search(r"[Ll]ine:? (\d+)", message)
    return int(match.group(1)) if match else None


def _describe(con: duckdb.DuckDBPyConnection, sql: str) -> list[str]:
    return [row[0] for row in con.execute(f"DESCRIBE {sql}").fetchall()]


def _as_text(headers: list[str], source: str) -> str:
    cols = ", ".join(f"CAST({quote_ident(h)} AS VARCHAR) AS {quote_ident(h)}" for h in headers)
    return f"SELECT {cols} FROM {source}"


def _csv_header(path: Path, encoding: str, delimiter: str) -> list[str]:
    with path.open("rb") as handle:
        first_line = handle.readline()  # decode only the header: errors below it are DuckDB's
    try:
        text = first_line.decode("utf-8-sig" if encoding == "utf-8" else encoding)
        header = next(csv.reader([text.rstrip("\r\n")], delimiter=delimiter), None)
    except (UnicodeDecodeError, csv.Error) as exc:
        raise IngestError(path, f"unreadable header: {exc}", row=0) from exc
    if not header or not any(h.strip() for h in header):
        raise IngestError(path, "no header row", row=0)
    return header


def transcode_to_utf8(path: Path, encoding: str, target: Path) -> Path:
    """Stream a GB18030/GBK file into a UTF-8 copy, in bounded memory (~0.9 s per 100 MB).

    DuckDB's ``encodings`` extension (1.5.5) mis-decodes multi-byte characters that straddle
    its read buffers ("Invalid unicode ... not gb18030 encoded" hundreds of thousands of rows
    into valid files), so Chinese legacy encodings are converted here instead."""
    decoder = codecs.getincrementaldecoder(encoding)()
    target.parent.mkdir(parents=True, exist_ok=True)
    with path.open("rb") as source, target.open("wb") as out:
        try:
            while chunk := source.read(_SNIFF_CHUNK):
                out.write(decoder.decode(chunk).encode("utf-8"))
            out.write(decoder.decode(b"", final=True).encode("utf-8"))
        except UnicodeDecodeError as exc:
            raise find_undecodable_row(path) or IngestError(path, str(exc)) from exc
    return target


def not_utf8(error: duckdb.Error) -> bool:
    """Whether DuckDB refused a CSV read as UTF-8 for its bytes."""
    return "not utf-8 encoded" in str(error)


def _header_encoding(path: Path) -> str:
    """UTF-8 when the header row decodes as UTF-8, else GB18030. The rows below are checked
    by DuckDB as it reads them (a Python pass over the whole file cost 7% of an ingest);
    a file refused there is read again as GB18030 (``stage``)."""
    with path.open("rb") as handle:
        first_line = handle.readline()
    try:
        first_line.decode("utf-8")
    except UnicodeDecodeError:
        return "gb18030"
    return "utf-8"


def read_csv(
    con: duckdb.DuckDBPyConnection, path: Path, scratch: Path, encoding: str | None = None
) -> RawSource:
    """UTF-8 (with or without BOM), else GB18030 (which covers GBK and GB2312, as Chinese
    government exports often are); ``encoding`` overrides the guess from the header."""
    encoding = encoding or _header_encoding(path)
    # Tab-separated exports come as .tsv or .txt.
    delimiter = "\t" if path.suffix.lower() in (".tsv", ".txt") else ","
    headers = _csv_header(path, encoding, delimiter)
    readable = path
    if encoding != "utf-8":
        readable = transcode_to_utf8(path, encoding, scratch / f"{path.stem}.utf8{path.suffix}")
    # No sniffing: the sniffer guesses wrong on exactly the broken files we must report
    # precisely, and every column is text anyway.
    columns = "{" + ", ".join(f"{sql_literal(h)}: 'VARCHAR'" for h in headers) + "}"
    source = (
        f"read_csv({sql_literal(str(readable))}, auto_detect = false, header = true, "
        f"columns = {columns}, delim = {sql_literal(delimiter)}, quote = '\"', escape = '\"', "
        f"strict_mode = true, null_padding = false)"
    )
    return RawSource(_as_text(headers, source), headers, encoding)


def read_xlsx(con: duckdb.DuckDBPyConnection, path: Path, scratch: Path) -> RawSource:
    load_extension(con, "excel")
    source = f"read_xlsx({sql_literal(str(path))}, header = true, all_varchar = true)"
    headers = _describe(con, f"SELECT * FROM {source}")
    return RawSource(_as_text(headers, source), headers)


def read_jsonl(con: duckdb.DuckDBPyConnection, path: Path, scratch: Path) -> RawSource:
    fmt = "newline_delimited" if path.suffix.lower() in (".jsonl", ".ndjson") else "auto"
    probe = f"read_json({sql_literal(str(path))}, format = '{fmt}', records = true)"
    headers = _describe(con, f"SELECT * FROM {probe}")
    # Re-read with every key as text so identifiers keep their leading zeros.
    columns = "{" + ", ".join(f"{sql_literal(h)}: 'VARCHAR'" for h in headers) + "}"
    source = (
        f"read_json({sql_literal(str(path))}, format = '{fmt}', records = true, "
        f"columns = {columns})"
    )
    return RawSource(_as_text(headers, source), headers)


def read_parquet(con: duckdb.DuckDBPyConnection, path: Path, scratch: Path) -> RawSource:
    source = f"read_parquet({sql_literal(str(path))})"
    headers = _describe(con, f"SELECT * FROM {source}")
    return RawSource(_as_text(headers, source), headers)


def read_geojson(
    con: duckdb.DuckDBPyConnection, path: Path, geometry_header: str | None
) -> RawSource:
    """Feature properties become columns; each feature's geometry becomes GeoJSON text."""
    try:
        document = json.loads(path.read_text(encoding="utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise IngestError(path, f"not a readable GeoJSON document: {exc}") from exc
    features = document.get("features") if isinstance(document, dict) else None
    if not isinstance(features, list):
        raise IngestError(path, "not a GeoJSON FeatureCollection (no 'features' list)")
    headers: list[str] = []
    for feature in features:
        for key in feature.get("properties") or {}:
            if key not in headers:
                headers.append(key)
    columns: dict[str, list[str | None]] = {h: [] for h in headers}
    geometries: list[str | None] = []
    for feature in features:
        props = feature.get("properties") or {}
        for header in headers:
            value = props.get(header)
            columns[header].append(None if value is None else str(value))
        geometry = feature.get("geometry")
        geometries.append(None if geometry is None else json.dumps(geometry, ensure_ascii=False))
    if geometry_header:
        headers.append(geometry_header)
        columns[geometry_header] = geometries
    table = pa.table({h: pa.array(columns[h], type=pa.string()) for h in headers})
    name = f"geojson_{abs(hash(str(path)))}"
    con.register(name, table)
    return RawSource(_as_text(headers, name), headers)


# (connection, file, scratch folder for temporary copies) -> raw text query
Reader = Callable[[duckdb.DuckDBPyConnection, Path, Path], RawSource]
READERS: dict[str, Reader] = {
    ".csv": read_csv,
    ".txt": read_csv,
    ".tsv": read_csv,
    ".xlsx": read_xlsx,
    ".jsonl": read_jsonl,
    ".ndjson": read_jsonl,
    ".json": read_jsonl,
    ".parquet": read_parquet,
}
FORMAT_OF_SUFFIX = {
    ".csv": "csv",
    ".txt": "csv",
    ".tsv": "csv",
    ".xlsx": "xlsx",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "json",
    ".parquet": "parquet",
    ".geojson": "geojson",
}


def open_source(
    con: duckdb.DuckDBPyConnection,
    path: Path,
    scratch: Path,
    geometry_header: str | None = None,
    encoding: str | None = None,
) -> RawSource:
    """The raw-text query of a delivered file, or an :class:`IngestError` saying why not.
    ``encoding``: a CSV's, when known (else guessed, see :func:`read_csv`)."""
    suffix = path.suffix.lower()
    if suffix not in FORMAT_OF_SUFFIX:
        raise IngestError(path, f"unsupported file type {suffix or '(none)'}")
    if not path.exists():
        raise IngestError(path, "file not found")
    if path.stat().st_size == 0:
        raise IngestError(path, "the file is empty")
    try:
        if suffix == ".geojson":
            return read_geojson(con, path, geometry_header)
        if encoding is not None and FORMAT_OF_SUFFIX[suffix] == "csv":
            return read_csv(con, path, scratch, encoding)
        return READERS[suffix](con, path, scratch)
    except duckdb.Error as exc:
        raise IngestError(path, error_summary(str(exc)), row=error_row(str(exc))) from exc


# DuckDB's explanations of a refused CSV row: lines that say what is wrong, never quote it.
_EXPLANATION = re.compile(
    r"(Expected Number of Columns|Value with unterminated quote|Invalid unicode|"
    r"Maximum line size)",
    re.IGNORECASE,
)


def error_summary(message: str) -> str:
    """DuckDB's first line on a file ("CSV Error on Line: 7") and its explanation, if it gives
    a known one. Nothing else: DuckDB quotes the refused row, and the reason goes to the run
    record, the audit log and notifications, which hold no row values (personal data)."""
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    if not lines:
        return "unreadable"
    explained = [line for line in lines[1:] if _EXPLANATION.match(line)]
    return " ".join([lines[0][:200], *explained[:1]])


def error_row(message: str) -> int | None:
    """DuckDB counts lines including the header; we report data rows (header = row 0)."""
    line = _line_of(message)
    return None if line is None else max(line - 1, 0)
