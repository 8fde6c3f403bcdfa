"""Writers of the synthetic drops, one per format a department really sends: CSV (GBK or
UTF-8 with BOM, CRLF line ends), Excel workbooks with fixed timestamps (so output never
depends on the clock) and JSON Lines."""

from __future__ import annotations

import codecs
import json
import os
import shutil
from datetime import date, datetime
from functools import reduce
from pathlib import Path
from typing import Protocol
from zipfile import ZIP_DEFLATED, ZipFile, ZipInfo

import numpy as np
from openpyxl import Workbook
from openpyxl.writer.excel import ExcelWriter

from catalog.contracts import Contract, DataItem
from catalog.samples.arrays import join, strs

XLSX_TIME = datetime(2025, 6, 30, 8, 0, 0)
"""Creation and modification time written into workbooks (and their zip entries)."""
XLSX_SHEET_ROWS = 1_048_575
"""Data rows that fit on one worksheet below the header; more spill onto further sheets."""


def headers(contract: Contract) -> list[str]:
    """Column headers as a department export would have them: the labels, except that every
    other item with alternative headers uses its first alternative (exercises mapping)."""
    headers, alternated = [], 0
    for item in contract.items:
        use_alternative = bool(item.headers) and alternated % 2 == 0
        alternated += bool(item.headers)
        headers.append(item.headers[0] if use_alternative else item.label)
    return headers


class Writer(Protocol):
    def write(self, cols: list[np.ndarray]) -> None: ...

    def close(self) -> None: ...


def _csv_quoted(col: np.ndarray) -> np.ndarray:
    special = reduce(np.logical_or, (np.strings.find(col, c) >= 0 for c in ',"\r\n'))
    col = col.copy()
    col[special] = join('"', np.strings.replace(col[special], '"', '""'), '"')
    return col


def _csv_lines(cols: list[np.ndarray]) -> str:
    """CSV text of a chunk with CRLF line ends; values are quoted only where needed."""
    rows = len(cols[0])

    def lines(columns: list[np.ndarray]) -> str:
        parts = [np.strings.add(c, ",") for c in columns[:-1]] + [
            np.strings.add(columns[-1], "\r\n")
        ]
        return "".join(join(*parts).tolist())

    text = lines(cols)
    # Counting separators over the whole chunk is far cheaper than searching every column.
    plain = (
        text.count(",") == rows * (len(cols) - 1)
        and text.count("\n") == text.count("\r") == rows
        and '"' not in text
    )
    return text if plain else lines([_csv_quoted(c) for c in cols])


class CsvWriter:
    """CSV with CRLF line ends, built a chunk at a time from numpy string arrays."""

    def __init__(self, path: Path, contract: Contract, encoding: str, bom: bool) -> None:
        self._encoding = encoding
        self._handle = path.open("wb")
        if bom:
            self._handle.write(codecs.BOM_UTF8)
        self.write([strs([h]) for h in headers(contract)])

    def write(self, cols: list[np.ndarray]) -> None:
        self._handle.write(_csv_lines(cols).encode(self._encoding))

    def close(self) -> None:
        self._handle.close()


class _FixedTimeZip(ZipFile):
    """Zip archive whose entries all carry the same timestamp, so workbooks are repeatable."""

    _stamp = XLSX_TIME.timetuple()[:6]

    def _info(self, name: str) -> ZipInfo:
        info = ZipInfo(name, date_time=self._stamp)
        info.compress_type = ZIP_DEFLATED
        info.external_attr = 0o600 << 16
        return info

    def writestr(
        self,
        zinfo_or_arcname: str | ZipInfo,
        data: str | bytes,
        compress_type: int | None = None,
        compresslevel: int | None = None,
    ) -> None:
        name = zinfo_or_arcname
        super().writestr(self._info(name.filename if isinstance(name, ZipInfo) else name), data)

    def write(
        self,
        filename: str | os.PathLike[str],
        arcname: str | os.PathLike[str] | None = None,
        compress_type: int | None = None,
        compresslevel: int | None = None,
    ) -> None:
        # openpyxl streams each worksheet from a temporary file through here.
        with (
            open(filename, "rb") as source,
            self.open(self._info(str(arcname or filename)), "w") as target,
        ):
            shutil.copyfileobj(source, target, 1 << 20)


class XlsxWriter:
    """One worksheet (more only past Excel's row limit); dates as real date cells unless a
    defect rewrote them, ids and codes as text."""

    def __init__(self, path: Path, contract: Contract) -> None:
        self._path, self._contract = path, contract
        self._book = Workbook(write_only=True)
        self.headers = headers(contract)
        self._dates = [item.type == "date" for item in contract.items]
        self._sheet_rows = XLSX_SHEET_ROWS
        self._sheets = 0

    def _next_sheet(self) -> None:
        self._sheets += 1
        title = self._contract.catalog.name + (str(self._sheets) if self._sheets > 1 else "")
        self._sheet = self._book.create_sheet(title[:31])
        self._sheet.append(self.headers)
        self._sheet_rows = 0

    def write(self, cols: list[np.ndarray]) -> None:
        for row in zip(*(c.tolist() for c in cols), strict=True):
            if self._sheet_rows == XLSX_SHEET_ROWS:
                self._next_sheet()
            self._sheet.append(
                [_cell(v, is_date) for v, is_date in zip(row, self._dates, strict=True)]
            )
            self._sheet_rows += 1

    def close(self) -> None:
        if not self._sheets:
            self._next_sheet()
        props = self._book.properties
        props.creator = props.lastModifiedBy = self._contract.catalog.provider.name
        props.created = props.modified = XLSX_TIME
        ExcelWriter(
            self._book, _FixedTimeZip(self._path, "w", ZIP_DEFLATED, allowZip64=True)
        ).save()


def _cell(value: str, is_date: bool) -> str | date | None:
    if value == "":
        return None
    if is_date and len(value) == 10 and value[4] == "-":
        return date.fromisoformat(value)
    return value


class JsonlWriter:
    """One JSON object per line keyed by the Chinese labels; missing optional values are
    null, blanked required ones an empty string (as exporting systems do)."""

    def __init__(self, path: Path, contract: Contract) -> None:
        self._handle = path.open("w", encoding="utf-8", newline="\n")
        self._items = contract.items

    def write(self, cols: list[np.ndarray]) -> None:
        lines = []
        for row in zip(*(c.tolist() for c in cols), strict=True):
            record = {
                item.label: _json_value(item, v) for item, v in zip(self._items, row, strict=True)
            }
            lines.append(json.dumps(record, ensure_ascii=False) + "\n")
        self._handle.write("".join(lines))

    def close(self) -> None:
        self._handle.close()


def _json_value(item: DataItem, value: str) -> str | int | float | None:
    if value == "":
        return "" if item.required else None
    if item.type in ("integer", "decimal"):
        try:
            return int(value) if item.type == "integer" else float(value)
        except ValueError:
            return value
    return value
