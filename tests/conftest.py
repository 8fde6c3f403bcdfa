"""Shared fixtures: a throw-away runtime folder per test, contracts, and tiny deliveries."""

from __future__ import annotations

import csv
import io
import random
from datetime import date, timedelta
from pathlib import Path

import pytest
from stdnum.cn import ric

from catalog.contracts import Contract, load_contracts
from catalog.lake import Lake
from catalog.settings import REPO_ROOT, Settings


@pytest.fixture(scope="session")
def contracts() -> dict[str, Contract]:
    return load_contracts(REPO_ROOT / "schemas")


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(home=tmp_path / "runtime")


@pytest.fixture
def lake(settings: Settings) -> Lake:
    return Lake(settings)


def make_ric(region: str, birth: str, seq: int, male: bool) -> str:
    """A valid resident identity number (stdnum computes the check char over 18 chars).
    ``seq`` 0..499 gives distinct numbers for one region, birth date and sex."""
    sex_digit = (seq // 100 % 5) * 2 + (1 if male else 0)
    body = f"{region}{birth}{seq % 100:02d}{sex_digit}"
    return body + ric.calc_check_digit(body + "0")


def population_rows(n: int, seed: int = 1) -> list[dict[str, str]]:
    """Valid population rows keyed by data item name."""
    rng = random.Random(seed)
    rows = []
    first_day = date(1940, 1, 1) + timedelta(days=rng.randint(0, 20000))
    for i in range(n):
        male = rng.random() < 0.5
        # 500 people a day keeps every identity number distinct.
        birth = (first_day + timedelta(days=i // 500 * 3)).strftime("%Y%m%d")
        rows.append(
            {
                "id_number": make_ric("330106", birth, i % 500, male),
                "name": rng.choice("张王李赵刘陈杨黄") + rng.choice("伟芳娜敏静丽强磊"),
                "sex": "男" if male else "女",
                "birth_date": f"{birth[:4]}-{birth[4:6]}-{birth[6:]}",
                "ethnicity": "汉族",
                "region_code": rng.choice(["330102", "330105", "330106", "330108"]),
                "address": f"杭州市西湖区文三路{i}号",
                "phone": f"13{rng.randint(100000000, 999999999)}",
                "status": "正常",
                "updated_at": "2026-01-02 03:04:05",
            }
        )
    return rows


def write_delivery(
    contract: Contract, rows: list[dict[str, str]], path: Path, encoding: str = "utf-8"
) -> Path:
    """A CSV delivery with the contract's Chinese headers, as a department would send it."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow([item.label for item in contract.items])
    for row in rows:
        writer.writerow([row.get(item.name, "") for item in contract.items])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buffer.getvalue().encode(encoding))
    return path
