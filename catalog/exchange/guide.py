"""The catalog in the layout of the catalog compilation guide (GB/T 21063, 政务信息资源目录
编制指南): the table offices exchange, as CSV (UTF-8 with a byte-order mark, so Excel on a
Chinese Windows opens it) and xlsx.

One row per information item, the resource's fields repeated on each row (a program reads
it without merged cells), columns in the guide's order and under its names. Built from the
same records as the DCAT-AP export: the contracts' catalog metadata and the published
versions.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable

from openpyxl import Workbook
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
from openpyxl.styles import Font

from catalog.contracts import CatalogMeta, Contract, DataItem, classification_item
from catalog.exchange import dcat
from catalog.sharing.requests import local_day
from catalog.store.versions import Version

HEADERS = (
    "信息资源分类",
    "信息资源名称",
    "信息资源代码",
    "信息资源提供方",
    "信息资源提供方代码",
    "信息资源摘要",
    "信息资源格式",
    "信息项名称",
    "数据类型",
    "数据长度",
    "信息项描述",
    "共享类型",
    "共享条件",
    "共享方式",
    "是否向社会开放",
    "开放条件",
    "更新周期",
    "发布日期",
    "关联资源代码",
)
_FORMULA = re.compile("^[=+\\-@\t\r\n＝＋－＠]")
# The Chinese labels of the catalog codes, as the DCAT export gives them.
CLASSIFICATION = {code: zh for code, (zh, _) in dcat.CLASSIFICATION.items()}
SHARING = {code: zh for code, (zh, _) in dcat.SHARING.items()}
# The guide's 共享方式: every method goes through the sharing platform; its type after it.
METHOD = {"api": "接口", "bulk_download": "文件", "verification": "接口（核验）"}
CYCLE = {
    "real_time": "实时",
    "daily": "每日",
    "weekly": "每周",
    "monthly": "每月",
    "quarterly": "每季度",
    "yearly": "每年",
}
# The guide's data types (with their letter codes) for the contracts' item types.
DATA_TYPE = {
    "string": "字符型C",
    "integer": "整型I",
    "decimal": "数值型N",
    "date": "日期型D",
    "timestamp": "日期时间型T",
    "boolean": "逻辑型L",
    "geojson": "备注型M",
}


def guide_rows(
    contracts: Iterable[Contract], versions: dict[str, list[Version]], timezone: str
) -> list[list[str]]:
    """The table's rows (without the header): every information item of every contract."""
    chosen = list(contracts)
    codes = {c.dataset: c.catalog.resource_code for c in chosen}
    rows = []
    for contract in chosen:
        resource = _resource(contract, versions.get(contract.dataset, []), timezone, codes)
        rows += [_item_row(resource, item) for item in contract.items]
    return rows


def _classification(meta: CatalogMeta) -> str:
    """The guide's 类 and, for base and theme resources, its 项 (基础信息资源/人口)."""
    item = classification_item(meta.classification, meta.classification_code)
    kind = CLASSIFICATION[meta.classification]
    return f"{kind}/{item}" if item else kind


def _resource(
    contract: Contract, versions: list[Version], timezone: str, codes: dict[str, str]
) -> dict[str, str]:
    meta = contract.catalog
    sharing = meta.sharing
    parts = [(sharing.conditions or "").rstrip("。；; ")]
    parts.append(f"依据：{sharing.legal_basis}" if sharing.legal_basis else "")
    conditions = "；".join(part for part in parts if part)
    published = versions[0].published_at if versions else None
    return {
        "信息资源分类": _classification(meta),
        "信息资源名称": meta.name,
        "信息资源代码": meta.resource_code,
        "信息资源提供方": meta.provider.name,
        "信息资源提供方代码": meta.provider.code,
        "信息资源摘要": meta.summary,
        "信息资源格式": _format(contract),
        "共享类型": SHARING[sharing.type],
        "共享条件": conditions,
        "共享方式": "共享平台方式：" + "、".join(METHOD[m] for m in sharing.method),
        "是否向社会开放": "是" if meta.open.open else "否",
        "开放条件": meta.open.conditions or "",
        "更新周期": CYCLE[meta.update_cycle],
        "发布日期": local_day(published, timezone).isoformat() if published else "",
        # Related datasets by resource code; a name no contract has is kept as written.
        "关联资源代码": "、".join(codes.get(name, name) for name in meta.related),
    }


def _format(contract: Contract) -> str:
    """Database-type resource; how it is handed over (the sharing methods' formats)."""
    ways = ["接口：JSON"] if "api" in contract.catalog.sharing.method else []
    if "bulk_download" in contract.catalog.sharing.method:
        files = ["CSV", "XLSX", "Parquet"]
        if any(item.type == "geojson" for item in contract.items):
            files.append("GeoJSON")
        ways.append("文件：" + "、".join(files))
    return "数据库" + (f"（{'；'.join(ways)}）" if ways else "")


def _item_row(resource: dict[str, str], item: DataItem) -> list[str]:
    values = {
        **resource,
        "信息项名称": item.label,
        "数据类型": DATA_TYPE[item.type],
        "数据长度": str(item.length) if item.length else "",
        "信息项描述": item.description,
    }
    return [values[header] for header in HEADERS]


def guide_csv(rows: list[list[str]]) -> bytes:
    """UTF-8 with a byte-order mark: Excel on a Chinese Windows reads it as UTF-8. A cell
    that a spreadsheet would run as a formula gets a leading ``'`` (OWASP, CSV injection)."""
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\r\n")
    writer.writerow(HEADERS)
    writer.writerows([[_neutral(cell) for cell in row] for row in rows])
    return "\ufeff".encode() + text.getvalue().encode("utf-8")


def _neutral(cell: str) -> str:
    return "'" + cell if _FORMULA.match(cell) else cell


def guide_xlsx(rows: list[list[str]]) -> bytes:
    book = Workbook()
    sheet = book.active
    sheet.title = "政务信息资源目录"
    sheet.append(list(HEADERS))
    for cell in sheet[1]:
        cell.font = Font(bold=True)
    for row in rows:  # characters a sheet cannot hold (control characters) are left out
        sheet.append([ILLEGAL_CHARACTERS_RE.sub("", cell) for cell in row])
    for line in sheet.iter_rows(min_row=2):
        for cell in line:
            cell.data_type = "s"  # text as written: a value starting with "=" is no formula
    sheet.freeze_panes = "A2"
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()
