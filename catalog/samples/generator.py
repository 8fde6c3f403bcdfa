"""Synthetic department drops for the base datasets: realistic, consistent, deterministic.

:func:`generate` writes one drop per dataset in the format its department really sends
(GBK CSV, UTF-8 CSV with BOM, GeoJSON, Excel, JSONL) plus ``manifest.json``, with a
controlled share of injected defects. All personal data is invented: names are drawn from
common surnames and given-name characters; identity numbers and credit codes are built from
real region codes and carry valid check characters unless a defect says otherwise.

Column order and headers come from the contracts. The only per-dataset knowledge here is how
to draw the value of each data item (the ``*_VALUES`` mappings, keyed by item name), how the
datasets refer to each other, and the file format. Defects are aimed at items by their
contract metadata (format, type, required, key, agrees_with), so they follow the contracts.

Population rows are generated in chunks of numpy string arrays, so memory does not grow with
the row count; identity numbers are unique by construction (see :func:`_resident_ids`).
"""

from __future__ import annotations

import json
import math
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache, reduce
from pathlib import Path

import numpy as np
from stdnum.cn import ric as stdnum_ric
from stdnum.cn import uscc as stdnum_uscc

from catalog.contracts import Contract, DataItem, load_contracts
from catalog.regions import regions
from catalog.samples.arrays import S
from catalog.samples.arrays import join as _join
from catalog.samples.arrays import strs as _strs
from catalog.samples.vocabulary import (
    BIRTH_COHORTS,
    CAPITAL,
    COMPOUND_SURNAMES,
    CREDIT_REASONS,
    ENTITY_TYPES,
    ETHNICITIES,
    FARMS,
    FEMALE_CHARS,
    FUND,
    INDUSTRIES,
    LICENCE_TYPES,
    LICENCES_FOR_COMPANIES,
    LICENCES_FOR_PERSONS,
    MALE_CHARS,
    NEW_STYLE_CODES,
    ORG_ALPHABET,
    ORG_WEIGHTS,
    PHONE_PREFIXES,
    ROADS,
    SCOPE_TAIL,
    SHOPS,
    SURNAMES,
    TOWNS,
    TRADE_CHARS,
    VILLAGES,
)
from catalog.samples.writers import CsvWriter, JsonlWriter, Writer, XlsxWriter
from catalog.settings import Settings

REFERENCE_DAY = np.datetime64("2025-06-30", "D")
"""Extraction date of every drop: all dates lie before it. Fixed so output never depends on
the clock."""
HOME_CITY = "3301"
"""Hangzhou, the city of the contracts' resource codes (``.../330100-...``)."""

POPULATION_CHUNK = 100_000
TABLE_CHUNK = 20_000
PERSON_POOL = 100_000
"""Residents kept (at most) to serve as legal representatives, licence holders and credit
subjects: a bounded sample, so memory stays flat however many rows are generated."""
COMPANY_POOL = 50_000

FAILING_DEFECTS = (
    "bad_check_char",
    "sex_mismatch",
    "birth_mismatch",
    "unknown_region",
    "empty_required",
    "duplicate_key",
)
"""Defects a validator must reject."""
NORMALISABLE_DEFECTS = ("full_width", "lower_x", "mixed_dates")
"""Defects that pass once values are normalised."""
DEFECT_KINDS = FAILING_DEFECTS + NORMALISABLE_DEFECTS
MAX_DEFECT_RATE = 1 / (len(DEFECT_KINDS) + 1)
"""Defects never share a row, and each duplicate needs a clean original: 10 shares at most."""

DATASETS = ("population", "legal_persons", "geography", "licences", "credit_records")

ID_FORMATS = ("resident_id", "uscc", "subject_id")
SEX_LABELS = ("女", "男")  # index 1 = male: odd 17th digit (GB 11643)

Progress = Callable[[str, int, int], None]


# --------------------------------------------------------------------------- report


@dataclass(frozen=True)
class DatasetSample:
    """What was written for one dataset: files (relative to the output folder, POSIX style),
    data rows and injected defects per kind."""

    files: tuple[str, ...]
    rows: int
    defects: dict[str, int]

    def to_dict(self) -> dict[str, object]:
        return {"files": list(self.files), "rows": self.rows, "defects": dict(self.defects)}


@dataclass(frozen=True)
class SampleReport:
    """Result of :func:`generate`; ``manifest.json`` holds :meth:`to_dict`."""

    seed: int
    rows: int
    defect_rate: float
    datasets: dict[str, DatasetSample]

    def to_dict(self) -> dict[str, object]:
        return {
            "seed": self.seed,
            "rows": self.rows,
            "defect_rate": self.defect_rate,
            "datasets": {name: sample.to_dict() for name, sample in self.datasets.items()},
        }


# --------------------------------------------------------------------------- small helpers


def _rng(*key: int) -> np.random.Generator:
    return np.random.default_rng([int(k) for k in key])


def _name_key(name: str) -> int:
    return zlib.crc32(name.encode("utf-8"))


def _weighted(
    rng: np.random.Generator, values: Sequence[str], weights: Mapping[str, float], n: int
) -> np.ndarray:
    """Indices into ``values`` drawn with ``weights`` (values not listed get a little weight)."""
    w = np.array([weights.get(v, 0.01) for v in values], dtype=float)
    return rng.choice(len(values), size=n, p=w / w.sum())


def _allowed_choice(
    rng: np.random.Generator, item: DataItem, weights: Mapping[str, float], n: int
) -> np.ndarray:
    """Values of the item's ``allowed`` list, with realistic weights."""
    values = item.allowed or []
    return _strs(values)[_weighted(rng, values, weights, n)]


def _iso(days: np.ndarray) -> np.ndarray:
    return np.datetime_as_string(days.astype("datetime64[D]")).astype(S)


def _days_between(rng: np.random.Generator, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """A day in [low, high] per row (high is clipped up to low)."""
    span = np.maximum((high - low).astype(np.int64), 0)
    return low + (rng.random(len(low)) * (span + 1)).astype(np.int64).astype("timedelta64[D]")


def _add_years(days: np.ndarray, years: np.ndarray) -> np.ndarray:
    """Last day of a validity of ``years`` years starting on ``days``."""
    return days + np.round(years * 365.25).astype(np.int64).astype("timedelta64[D]") - 1


SCRAMBLE_ROUNDS = ((7_368_787, 1_234_567), (3_367_949, 2_718_281), (5_201_317, 9_876_543))
"""Affine maps whose multipliers are coprime with 10 and 31, so each is a bijection."""


def _scrambled(index: np.ndarray, base: int, width: int) -> np.ndarray:
    """A bijection of [0, base**width): distinct indices give distinct serials, and
    consecutive indices look unrelated (rounds of an affine map and digit reversal)."""
    modulus = base**width
    x = np.asarray(index, dtype=np.int64)
    for multiplier, offset in SCRAMBLE_ROUNDS:
        x = (x * multiplier + offset) % modulus
        x = sum((x // base**p % base) * base ** (width - 1 - p) for p in range(width))
    return x


def _quota(rate: float, start: int, end: int) -> int:
    """Defects for rows [start, end): rounding the running total keeps the sum exact."""
    return math.floor(rate * end + 0.5) - math.floor(rate * start + 0.5)


NUMBERS = _strs(str(i) for i in range(10_000))
SEQUENCES = _strs(f"{i:03d}" for i in range(1000))
FULL_WIDTH = str.maketrans(
    {
        c: chr(ord(c) + 0xFEE0)
        for c in "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
    }
)

# --------------------------------------------------------------------------- places


@dataclass(frozen=True)
class _Places:
    """County-level divisions of the GB/T 2260 table as parallel arrays."""

    codes: np.ndarray
    city_codes: np.ndarray  # code of the county's city, "330100"
    prefixes: np.ndarray  # full written form, "浙江省杭州市西湖区"
    cities: np.ndarray  # city name, "杭州市"
    counties: np.ndarray  # name as an authority uses it: "杭州市西湖区", "建德市"
    digit_sums: np.ndarray  # GB 11643 weighted sum of the six code digits
    home: np.ndarray  # indices of the home city's counties
    province: np.ndarray  # other counties of the home province
    elsewhere: np.ndarray  # mainland counties outside the province


ID_WEIGHTS = np.array([7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2])
ID_CHECKS = _strs("10X98765432")  # check character by weighted sum mod 11


@cache
def _places() -> _Places:
    table = regions()
    rows = sorted(
        (r for r in table.values() if r.level == "county" and r.code[:2] not in ("71", "81", "82")),
        key=lambda r: r.code,
    )
    prefixes, cities, counties = [], [], []
    for region in rows:
        parent = table.get(region.parent_code or "")
        province = table[region.code[:2] + "0000"]
        city = parent if parent and parent.level == "city" else None
        city_name = city.name if city else region.name
        names = [province.name, city_name, region.name]
        prefixes.append("".join(dict.fromkeys(names)))
        cities.append(city_name)
        district = region.name.endswith("区") and city is not None
        counties.append(city_name + region.name if district else region.name)
    codes = [r.code for r in rows]
    digits = np.array([[int(c) for c in code] for code in codes])
    home_province = HOME_CITY[:2]
    return _Places(
        codes=_strs(codes),
        city_codes=_strs(c[:4] + "00" for c in codes),
        prefixes=_strs(prefixes),
        cities=_strs(cities),
        counties=_strs(counties),
        digit_sums=digits @ ID_WEIGHTS[:6],
        home=np.array([i for i, c in enumerate(codes) if c.startswith(HOME_CITY)]),
        province=np.array(
            [i for i, c in enumerate(codes) if c[:2] == home_province and c[:4] != HOME_CITY]
        ),
        elsewhere=np.array([i for i, c in enumerate(codes) if c[:2] != home_province]),
    )


@cache
def _unknown_region_codes() -> np.ndarray:
    """Six-digit codes of the home province missing from the table (many are retired codes
    that department systems still hold, such as 330103 下城区)."""
    known = regions()
    province = HOME_CITY[:2]
    candidates = (
        f"{province}{city:02d}{county:02d}" for city in range(1, 12) for county in range(1, 100)
    )
    return _strs(c for c in candidates if c not in known)


def _regions_from(rng: np.random.Generator, n: int, shares: Sequence[float]) -> np.ndarray:
    """County indices: home city, rest of province, elsewhere, in the given shares."""
    places = _places()
    groups = (places.home, places.province, places.elsewhere)
    which = rng.choice(len(groups), size=n, p=np.asarray(shares) / sum(shares))
    out = np.empty(n, dtype=np.int64)
    for g, pool in enumerate(groups):
        mask = which == g
        out[mask] = pool[rng.integers(0, len(pool), mask.sum())]
    return out


def _home_county(rng: np.random.Generator, region: np.ndarray) -> np.ndarray:
    """The county itself if in the home city, otherwise a random home-city county."""
    places = _places()
    inside = np.isin(region, places.home)
    return np.where(inside, region, places.home[rng.integers(0, len(places.home), len(region))])


# --------------------------------------------------------------------------- batches


@dataclass
class _Batch:
    """One chunk of one dataset: shared latent draws plus a random stream per purpose."""

    key: tuple[int, ...]  # (seed, dataset, chunk)
    chunk: int
    chunks: int
    start: int
    n: int
    latent: dict[str, np.ndarray] = field(default_factory=dict)

    def rng(self, purpose: str) -> np.random.Generator:
        # One stream per data item: adding an item to a contract leaves other columns alone.
        return _rng(*self.key, _name_key(purpose))

    def __getitem__(self, name: str) -> np.ndarray:
        return self.latent[name]


@dataclass
class _Pool:
    """A bounded sample of clean rows of one dataset, for other datasets to refer to."""

    what: str
    capacity: int
    columns: dict[str, list[np.ndarray]] = field(default_factory=dict)

    def add(self, rng: np.random.Generator, chunks: int, rows: dict[str, np.ndarray]) -> None:
        size = len(next(iter(rows.values())))
        take = min(size, math.ceil(self.capacity / chunks))
        picked = np.sort(rng.choice(size, size=take, replace=False))
        for name, values in rows.items():
            self.columns.setdefault(name, []).append(values[picked])

    def __len__(self) -> int:
        parts = next(iter(self.columns.values()), [])
        return sum(len(p) for p in parts)

    def draw(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """Indices of ``n`` rows drawn with replacement (one person may run several firms)."""
        if not len(self):
            raise ValueError(f"no clean {self.what} to refer to: use more rows or fewer defects")
        return rng.integers(0, len(self), n)

    def __getitem__(self, name: str) -> np.ndarray:
        parts = self.columns[name]
        if len(parts) > 1:  # concatenate once, on first read
            self.columns[name] = parts = [np.concatenate(parts)]
        return parts[0]


@dataclass
class _Context:
    keys: dict[str, str] = field(default_factory=dict)
    """The item each pooled register is referred to by (:func:`pool_keys`)."""
    people: _Pool = field(default_factory=lambda: _Pool("adult residents", PERSON_POOL))
    companies: _Pool = field(default_factory=lambda: _Pool("active legal persons", COMPANY_POOL))


ValueGen = Callable[[_Batch, DataItem], np.ndarray]


# --------------------------------------------------------------------------- population


def _birth_days(rng: np.random.Generator, n: int) -> np.ndarray:
    years = np.arange(BIRTH_COHORTS[0][0], BIRTH_COHORTS[-1][0] + 1)
    weights = np.interp(years, *zip(*BIRTH_COHORTS, strict=True))
    year = years[rng.choice(len(years), size=n, p=weights / weights.sum())]
    first = (year - 1970).astype("datetime64[Y]").astype("datetime64[D]")
    return first + rng.integers(0, 365, n).astype("timedelta64[D]")


def _rank_within(keys: np.ndarray) -> np.ndarray:
    """Position of each row among the earlier rows with the same key."""
    order = np.argsort(keys, kind="stable")
    ordered = keys[order]
    starts = np.r_[True, ordered[1:] != ordered[:-1]]
    first = np.maximum.accumulate(np.where(starts, np.arange(len(keys)), 0))
    rank = np.empty(len(keys), dtype=np.int64)
    rank[order] = np.arange(len(keys)) - first
    return rank


SEQUENCE_SLOTS = 499  # prime; sequence numbers per sex in one (region, birth date) cell
EPOCH = np.datetime64("1900-01-01", "D")


def _resident_ids(
    batch: _Batch, region: np.ndarray, birth: np.ndarray, male: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """18-character identity numbers (GB 11643), unique across all chunks without remembering
    earlier ones: each chunk owns its own block of ranks in every (region, birth date, sex)
    cell, and a per-cell permutation of the sequence slots turns (chunk, rank) into the
    sequence number, so numbers never collide yet look random. Rows of an overfull cell move
    their birth date. Returns the numbers and the (possibly moved) birth dates."""
    rng = batch.rng("resident_ids")
    capacity = SEQUENCE_SLOTS // batch.chunks
    birth = birth.copy()
    while True:
        cell = (region * 100_000 + (birth - EPOCH).astype(np.int64)) * 2 + male
        rank = _rank_within(cell)
        full = rank >= capacity
        if not full.any():
            break
        birth[full] -= rng.integers(1, 366, full.sum()).astype("timedelta64[D]")
    slot = (batch.chunk * capacity + rank) * 211 + cell * 40_503
    sequence = 2 * (slot % SEQUENCE_SLOTS) + np.where(male, 1, 2)  # odd for men, even for women
    month = birth.astype("datetime64[M]")
    ymd_value = (
        (birth.astype("datetime64[Y]").astype(np.int64) + 1970) * 10_000
        + (month.astype(np.int64) % 12 + 1) * 100
        + (birth - month).astype(np.int64)
        + 1
    )
    digits = np.stack([ymd_value // 10**p % 10 for p in range(7, -1, -1)])
    ymd = np.strings.replace(_iso(birth), "-", "")
    sums = (
        _places().digit_sums[region]
        + ID_WEIGHTS[6:14] @ digits
        + ID_WEIGHTS[14:] @ np.stack([sequence // 100, sequence // 10 % 10, sequence % 10])
    )
    ids = _join(_places().codes[region], ymd, SEQUENCES[sequence], ID_CHECKS[sums % 11])
    return ids, birth


def _draw_people(batch: _Batch, ctx: _Context, contract: Contract) -> dict[str, np.ndarray]:
    rng = batch.rng("people")
    male = (rng.random(batch.n) < 0.51).astype(np.int64)
    home = _regions_from(rng, batch.n, (0.5, 0.35, 0.15))
    # Most residents were registered where they live; the others elsewhere (id prefix).
    elsewhere = _regions_from(rng, batch.n, (0.2, 0.4, 0.4))
    born = np.where(rng.random(batch.n) < 0.85, home, elsewhere)
    ids, birth = _resident_ids(batch, born, _birth_days(rng, batch.n), male)
    return {"male": male, "home": home, "birth": birth, "id_number": ids}


def _person_names(rng: np.random.Generator, male: np.ndarray) -> np.ndarray:
    n = len(male)
    ranks = np.arange(len(SURNAMES))
    weights = np.r_[1 / (ranks + 4), np.full(len(COMPOUND_SURNAMES), 0.002)]
    surnames = _strs([*SURNAMES, *COMPOUND_SURNAMES])
    surname = surnames[rng.choice(len(surnames), size=n, p=weights / weights.sum())]
    pools = (FEMALE_CHARS, MALE_CHARS)
    first = np.where(
        male,
        pools[1][rng.integers(0, len(pools[1]), n)],
        pools[0][rng.integers(0, len(pools[0]), n)],
    )
    second = np.where(
        male,
        pools[1][rng.integers(0, len(pools[1]), n)],
        pools[0][rng.integers(0, len(pools[0]), n)],
    )
    two_chars = rng.random(n) < 0.72
    return _join(surname, first, np.where(two_chars, second, ""))


def _addresses(rng: np.random.Generator, region: np.ndarray) -> np.ndarray:
    n = len(region)
    street = _join(ROADS[rng.integers(0, len(ROADS), n)], NUMBERS[rng.integers(1, 800, n)], "号")
    room = rng.integers(1, 31, n) * 100 + rng.integers(1, 5, n)
    flat = _join(NUMBERS[rng.integers(1, 40, n)], "幢", NUMBERS[room], "室")
    urban = _join(street, np.where(rng.random(n) < 0.6, flat, ""))
    village = _join(
        TOWNS[rng.integers(0, len(TOWNS), n)], VILLAGES[rng.integers(0, len(VILLAGES), n)]
    )
    rural = _join(village, NUMBERS[rng.integers(1, 300, n)], "号")
    return _join(_places().prefixes[region], np.where(rng.random(n) < 0.7, urban, rural))


def _phones(rng: np.random.Generator, n: int, missing: float = 0.05) -> np.ndarray:
    numbers = _join(
        PHONE_PREFIXES[rng.integers(0, len(PHONE_PREFIXES), n)],
        np.strings.zfill(rng.integers(0, 10**8, n).astype(S), 8),
    )
    return np.where(rng.random(n) < missing, "", numbers)


def _resident_status(rng: np.random.Generator, item: DataItem, birth: np.ndarray) -> np.ndarray:
    status = _allowed_choice(rng, item, {"正常": 0.95, "迁出": 0.03, "死亡": 0.02}, len(birth))
    age = (REFERENCE_DAY - birth).astype(np.int64) / 365.25
    # Deaths belong to the old: the young ones drawn as dead are living after all.
    return np.where((status == "死亡") & (age < 55), (item.allowed or [""])[0], status)


def _timestamps(rng: np.random.Generator, after: np.ndarray) -> np.ndarray:
    start = np.maximum(after, np.datetime64("2018-01-01", "D")).astype("datetime64[s]")
    span = (REFERENCE_DAY.astype("datetime64[s]") - start).astype(np.int64)
    moment = start + (rng.random(len(after)) * span).astype(np.int64).astype("timedelta64[s]")
    return np.strings.replace(np.datetime_as_string(moment).astype(S), "T", " ")


def _ethnicities(rng: np.random.Generator, n: int) -> np.ndarray:
    values = list(ETHNICITIES)
    return _strs(values)[_weighted(rng, values, ETHNICITIES, n)]


POPULATION_VALUES: dict[str, ValueGen] = {
    "id_number": lambda b, item: b["id_number"],
    "name": lambda b, item: _person_names(b.rng(item.name), b["male"]),
    "sex": lambda b, item: _strs(SEX_LABELS)[b["male"]],
    "birth_date": lambda b, item: _iso(b["birth"]),
    "ethnicity": lambda b, item: _ethnicities(b.rng(item.name), b.n),
    "region_code": lambda b, item: _places().codes[b["home"]],
    "address": lambda b, item: _addresses(b.rng(item.name), b["home"]),
    "phone": lambda b, item: _phones(b.rng(item.name), b.n),
    "status": lambda b, item: _resident_status(b.rng(item.name), item, b["birth"]),
    "updated_at": lambda b, item: _timestamps(b.rng(item.name), b["birth"]),
}


def _collect_people(
    batch: _Batch, cols: dict[str, np.ndarray], clean: np.ndarray, ctx: _Context
) -> None:
    """Keep living adults of clean rows as the people other registers refer to."""
    adult = batch["birth"] <= REFERENCE_DAY - np.timedelta64(365 * 20, "D")
    keep = np.flatnonzero(clean & adult & (cols["status"] == "正常"))
    rows = {
        "id": cols[ctx.keys["population"]][keep],
        "name": cols["name"][keep],
        "birth": batch["birth"][keep],
        "region": batch["home"][keep],
    }
    ctx.people.add(batch.rng("pool"), batch.chunks, rows)


# --------------------------------------------------------------------------- legal persons


def _org_codes(index: np.ndarray, new_style: np.ndarray) -> list[str]:
    """Nine-character organisation codes (GB 11714) with check char, unique per index: eight
    digits before the 2015 reform, "MA" and six characters after it."""
    digits = _scrambled(index, 10, 8).tolist()
    letters = _scrambled(index, 31, 6).tolist()
    codes = []
    for old, new, modern in zip(digits, letters, new_style.tolist(), strict=True):
        if modern:
            body = "MA" + "".join(ORG_ALPHABET[new // 31**p % 31] for p in range(5, -1, -1))
        else:
            body = f"{old:08d}"
        check = 11 - sum(int(c, 36) * w for c, w in zip(body, ORG_WEIGHTS, strict=True)) % 11
        codes.append(body + {10: "X", 11: "0"}.get(check, str(check)))
    return codes


def _credit_codes(
    type_digits: Sequence[str], registrars: Sequence[str], orgs: Sequence[str]
) -> list[str]:
    """Unified social credit codes: 9 (market regulation), entity type, registering region,
    organisation code, check character (GB 32100)."""
    partial = ["9" + t + r + o for t, r, o in zip(type_digits, registrars, orgs, strict=True)]
    return [p + stdnum_uscc.calc_check_digit(p) for p in partial]


def _company_name(kind: str, city: str, county: str, trade: str, line: str, rep: str) -> str:
    short_city = city.removesuffix("市")
    if kind == "个体工商户":
        return f"{county}{rep}{line}"
    if kind == "农民专业合作社":
        return f"{county}{trade}{line}专业合作社"
    if kind == "股份有限公司":
        return f"浙江{trade}{line}股份有限公司"
    if kind == "合伙企业":
        return f"{short_city}{trade}{line}合伙企业（有限合伙）"
    if kind == "个人独资企业":
        return f"{short_city}{trade}{line}商行"
    return f"{short_city}{trade}{line}有限公司"


def _business_lines(rng: np.random.Generator, kinds: Sequence[str]) -> tuple[list[str], list[str]]:
    """Per entity: the trade word in its name and its registered business scope."""
    lines, scopes = [], []
    for kind, u in zip(kinds, rng.random(len(kinds)).tolist(), strict=True):
        table = {"个体工商户": SHOPS, "农民专业合作社": FARMS, "合伙企业": (FUND,)}.get(
            kind, INDUSTRIES
        )
        line, scope = table[int(u * len(table))]
        lines.append(line)
        scopes.append(scope + SCOPE_TAIL)
    return lines, scopes


def _established(rng: np.random.Generator, rep_birth: np.ndarray) -> np.ndarray:
    """After the representative came of age; skewed to recent years, as registers are."""
    low = np.maximum(rep_birth + np.timedelta64(6575, "D"), np.datetime64("1985-01-01", "D"))
    span = np.maximum((REFERENCE_DAY - 1 - low).astype(np.int64), 0)
    return low + (np.sqrt(rng.random(len(low))) * span).astype(np.int64).astype("timedelta64[D]")


def _draw_companies(batch: _Batch, ctx: _Context, contract: Contract) -> dict[str, np.ndarray]:
    rng = batch.rng("companies")
    n, people, places = batch.n, ctx.people, _places()
    allowed = contract.item("entity_type").allowed or list(ENTITY_TYPES)
    kind = _strs(allowed)[_weighted(rng, allowed, {k: v[0] for k, v in ENTITY_TYPES.items()}, n)]
    rep = people.draw(rng, n)
    region = _regions_from(rng, n, (0.88, 0.12, 0.0))
    established = _established(rng, people["birth"][rep])
    lines, scopes = _business_lines(rng, kind.tolist())
    # The city bureau registers part of the entities, the county bureaus the rest.
    registrar = np.where(rng.random(n) < 0.4, places.city_codes[region], places.codes[region])
    types = [ENTITY_TYPES.get(k, (0.0, "1"))[1] for k in kind.tolist()]
    orgs = _org_codes(batch.start + np.arange(n), established >= NEW_STYLE_CODES)
    return {
        "uscc": _strs(_credit_codes(types, registrar.tolist(), orgs)),
        "kind": kind,
        "rep_name": people["name"][rep],
        "rep_id": people["id"][rep],
        "established": established,
        "region": region,
        "line": _strs(lines),
        "scope": _strs(scopes),
    }


def _company_names(b: _Batch, item: DataItem) -> np.ndarray:
    rng, places = b.rng(item.name), _places()
    trade = _join(*(TRADE_CHARS[rng.integers(0, len(TRADE_CHARS), b.n)] for _ in range(2)))
    columns = (
        b["kind"],
        places.cities[b["region"]],
        places.counties[b["region"]],
        trade,
        b["line"],
        b["rep_name"],
    )
    return _strs(_company_name(*row) for row in zip(*(c.tolist() for c in columns), strict=True))


def _capitals(rng: np.random.Generator, kinds: np.ndarray) -> np.ndarray:
    picks = rng.random(len(kinds)).tolist()
    options = [CAPITAL.get(k, ("100",)) for k in kinds.tolist()]
    return _strs(o[int(u * len(o))] for o, u in zip(options, picks, strict=True))


LEGAL_PERSON_VALUES: dict[str, ValueGen] = {
    "uscc": lambda b, item: b["uscc"],
    "name": _company_names,
    "entity_type": lambda b, item: b["kind"],
    "legal_rep_name": lambda b, item: b["rep_name"],
    "legal_rep_id": lambda b, item: b["rep_id"],
    "registered_capital": lambda b, item: _capitals(b.rng(item.name), b["kind"]),
    "established_date": lambda b, item: _iso(b["established"]),
    "region_code": lambda b, item: _places().codes[b["region"]],
    "address": lambda b, item: _addresses(b.rng(item.name), b["region"]),
    "business_scope": lambda b, item: b["scope"],
    "status": lambda b, item: _allowed_choice(
        b.rng(item.name), item, {"存续": 0.86, "注销": 0.08, "吊销": 0.04, "迁出": 0.02}, b.n
    ),
}


def _collect_companies(
    batch: _Batch, cols: dict[str, np.ndarray], clean: np.ndarray, ctx: _Context
) -> None:
    """Keep active entities of clean rows as licence holders and credit subjects."""
    keep = np.flatnonzero(clean & (cols["status"] == "存续"))
    rows = {
        "id": cols[ctx.keys["legal_persons"]][keep],
        "name": cols["name"][keep],
        "since": batch["established"][keep],
        "region": batch["region"][keep],
        "firm": batch["kind"][keep] != "个体工商户",  # sole traders license like persons
    }
    ctx.companies.add(batch.rng("pool"), batch.chunks, rows)


# --------------------------------------------------------------------------- licences & credit


def _subjects(
    rng: np.random.Generator, ctx: _Context, n: int, company_share: float
) -> dict[str, np.ndarray]:
    """Companies (from the legal persons) or adults (from the population) a record is about."""
    companies, people = ctx.companies, ctx.people
    is_company = rng.random(n) < company_share
    pick_c, pick_p = companies.draw(rng, n), people.draw(rng, n)

    def either(company: np.ndarray, person: np.ndarray) -> np.ndarray:
        return np.where(is_company, company[pick_c], person[pick_p])

    adult_since = people["birth"] + np.timedelta64(6575, "D")  # 18 years
    return {
        "is_company": is_company,
        "firm": is_company & companies["firm"][pick_c],
        "id": either(companies["id"], people["id"]),
        "name": either(companies["name"], people["name"]),
        "since": either(companies["since"], adult_since),
        "region": either(companies["region"], people["region"]),
    }


def _authority(county: np.ndarray, level: Sequence[str], template: Sequence[str]) -> list[str]:
    """Name of a city or county office of the home city, e.g. 杭州市西湖区市场监督管理局."""
    places = _places()
    return [
        (str(places.cities[c]) if lvl == "city" else str(places.counties[c])) + suffix
        for c, lvl, suffix in zip(county.tolist(), level, template, strict=True)
    ]


def _draw_licences(batch: _Batch, ctx: _Context, contract: Contract) -> dict[str, np.ndarray]:
    rng = batch.rng("licences")
    n = batch.n
    holder = _subjects(rng, ctx, n, 0.8)
    allowed = contract.item("licence_type").allowed or list(LICENCE_TYPES)
    by_company = _weighted(rng, allowed, LICENCES_FOR_COMPANIES, n)
    by_person = _weighted(rng, allowed, LICENCES_FOR_PERSONS, n)
    kind = np.asarray(allowed, dtype=object)[
        np.where(holder["firm"], by_company, by_person)
    ].tolist()
    spec = [LICENCE_TYPES.get(k, ("XK", 3, "city", "行政审批局")) for k in kind]
    low = np.maximum(holder["since"], REFERENCE_DAY - np.timedelta64(6 * 365, "D"))
    issued = _days_between(rng, low, np.full(n, REFERENCE_DAY - 1))
    until = _add_years(issued, np.array([s[1] for s in spec]))
    expired = until < REFERENCE_DAY
    revoked = rng.random(n) < np.where(expired, 0.05, 0.07)
    year = issued.astype("datetime64[Y]").astype(np.int64) + 1970
    serial = _scrambled(batch.start + np.arange(n), 10, 8)
    numbers = [
        f"{s[0]}{y}-{x:08d}" for s, y, x in zip(spec, year.tolist(), serial.tolist(), strict=True)
    ]
    office = _home_county(rng, holder["region"])
    return {
        "licence_no": _strs(numbers),
        "kind": _strs(kind),
        "holder_id": holder["id"],
        "holder_name": holder["name"],
        "department": _strs(_authority(office, [s[2] for s in spec], [s[3] for s in spec])),
        "issued": issued,
        "until": until,
        "state": np.where(revoked, "撤销", np.where(expired, "过期", "有效")).astype(S),
    }


LICENCE_VALUES: dict[str, ValueGen] = {
    "licence_no": lambda b, item: b["licence_no"],
    "licence_type": lambda b, item: b["kind"],
    "holder_id": lambda b, item: b["holder_id"],
    "holder_name": lambda b, item: b["holder_name"],
    "issuing_department": lambda b, item: b["department"],
    "issue_date": lambda b, item: _iso(b["issued"]),
    "valid_until": lambda b, item: _iso(b["until"]),
    "status": lambda b, item: b["state"],
}


def _draw_credit(batch: _Batch, ctx: _Context, contract: Contract) -> dict[str, np.ndarray]:
    rng = batch.rng("credit")
    n = batch.n
    subject = _subjects(rng, ctx, n, 0.65)
    allowed = contract.item("list_type").allowed or ["红名单", "黑名单"]
    lists = np.asarray(allowed, dtype=object)[
        _weighted(rng, allowed, {"红名单": 0.35, "黑名单": 0.65}, n)
    ]
    office = _home_county(rng, subject["region"])
    places = _places()
    reasons, departments, years = [], [], []
    for list_type, company, u, county in zip(
        lists, subject["is_company"], rng.random(n), office.tolist(), strict=True
    ):
        kind = "company" if company else "person"
        options = [r for r in CREDIT_REASONS if r[0] == list_type and r[1] == kind] or list(
            CREDIT_REASONS
        )
        _, _, reason, department, span = options[int(u * len(options))]
        reasons.append(reason)
        departments.append(
            department.format(city=places.cities[county], county=places.counties[county])
        )
        years.append(span)
    low = np.maximum(subject["since"], REFERENCE_DAY - np.timedelta64(8 * 365, "D"))
    decided = _days_between(rng, low, np.full(n, REFERENCE_DAY - 1))
    span = np.array(years)
    until = np.where(span > 0, _iso(_add_years(decided, np.maximum(span, 1))), "")
    serial = _scrambled(batch.start + np.arange(n), 10, 10)
    return {
        "record_id": _join("XY", np.strings.zfill(serial.astype(S), 10)),
        "subject_id": subject["id"],
        "subject_name": subject["name"],
        "list": _strs(lists.tolist()),
        "reason": _strs(reasons),
        "department": _strs(departments),
        "decided": decided,
        "until": until.astype(S),
    }


CREDIT_VALUES: dict[str, ValueGen] = {
    "record_id": lambda b, item: b["record_id"],
    "subject_id": lambda b, item: b["subject_id"],
    "subject_name": lambda b, item: b["subject_name"],
    "list_type": lambda b, item: b["list"],
    "reason": lambda b, item: b["reason"],
    "deciding_department": lambda b, item: b["department"],
    "decision_date": lambda b, item: _iso(b["decided"]),
    "valid_until": lambda b, item: b["until"],
}


# --------------------------------------------------------------------------- defects


@dataclass(frozen=True)
class _Roles:
    """Which items each defect kind aims at, read from the contract's item metadata."""

    key: tuple[str, ...]
    ids: tuple[str, ...]  # identity numbers and credit codes
    check: str | None  # the id whose check character bad_check_char spoils
    full_width: tuple[str, ...]  # ids and phone numbers
    sex: str | None
    birth: str | None
    region: str | None
    dates: tuple[str, ...]
    timestamps: tuple[str, ...]
    blankable: tuple[str, ...]  # required items outside the key
    status: str | None  # what a late correction changes
    allowed: dict[str, tuple[str, ...]]
    formats: dict[str, str]

    def kinds(self) -> tuple[str, ...]:
        present = {
            "bad_check_char": self.check,
            "sex_mismatch": self.sex,
            "birth_mismatch": self.birth,
            "unknown_region": self.region,
            "empty_required": self.blankable,
            "duplicate_key": self.key,
            "full_width": self.full_width,
            "lower_x": self.ids,
            "mixed_dates": self.dates,
        }
        return tuple(kind for kind in DEFECT_KINDS if present[kind])


def _roles(contract: Contract) -> _Roles:
    items = contract.items
    ids = tuple(i.name for i in items if i.format in ID_FORMATS)
    required_ids = [n for n in ids if contract.item(n).required]

    def agreeing(part: str) -> str | None:
        return next((i.name for i in items if i.agrees_with and i.agrees_with.part == part), None)

    changeable = [
        i.name for i in items if i.allowed and not i.agrees_with and i.name not in contract.key
    ]
    return _Roles(
        key=tuple(contract.key),
        ids=ids,
        check=(required_ids or list(ids) or [None])[0],
        full_width=ids + tuple(i.name for i in items if i.format == "phone"),
        sex=agreeing("sex"),
        birth=agreeing("birth_date"),
        region=next((i.name for i in items if i.format == "region_code"), None),
        dates=tuple(i.name for i in items if i.type == "date"),
        timestamps=tuple(i.name for i in items if i.type == "timestamp"),
        blankable=tuple(i.name for i in items if i.required and i.name not in contract.key),
        status=changeable[-1] if changeable else None,
        allowed={i.name: tuple(i.allowed) for i in items if i.allowed},
        formats={i.name: i.format for i in items if i.format},
    )


@dataclass(frozen=True)
class _Plan:
    """Rows of one chunk picked for each defect kind (disjoint), and duplicate originals."""

    rows: dict[str, np.ndarray]
    sources: np.ndarray

    def touched(self, n: int) -> np.ndarray:
        mask = np.zeros(n, dtype=bool)
        for picked in (*self.rows.values(), self.sources):
            mask[picked] = True
        return mask


def _sample(rng: np.random.Generator, mask: np.ndarray, k: int) -> np.ndarray:
    candidates = np.flatnonzero(mask)
    return np.sort(rng.choice(candidates, size=min(k, len(candidates)), replace=False))


def _eligible(cols: dict[str, np.ndarray], roles: _Roles, n: int) -> dict[str, np.ndarray]:
    """Rows where a defect kind can show at all (an X to lower, a value to rewrite)."""

    def any_of(names: Iterable[str], test: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
        return reduce(np.logical_or, (test(cols[name]) for name in names), np.zeros(n, dtype=bool))

    return {
        "lower_x": any_of(roles.ids, lambda c: np.strings.endswith(c, "X")),
        "full_width": any_of(roles.full_width, lambda c: c != ""),
        "mixed_dates": any_of(roles.dates, lambda c: c != ""),
    }


def _plan(
    rng: np.random.Generator, n: int, quotas: dict[str, int], eligible: dict[str, np.ndarray]
) -> _Plan:
    free = np.ones(n, dtype=bool)
    rows: dict[str, np.ndarray] = {}
    sources = np.zeros(0, dtype=np.int64)
    # The kinds possible on the fewest rows choose first, so others cannot use those up.
    for kind in sorted(quotas, key=lambda k: int(eligible[k].sum()) if k in eligible else n):
        mask = free & eligible.get(kind, True)
        if kind == "duplicate_key":
            # Pairs of neighbouring picks: the earlier row is the original, the later its copy.
            pairs = _sample(rng, mask, 2 * quotas[kind])
            pairs = pairs[: len(pairs) // 2 * 2]
            sources, rows[kind] = pairs[0::2], pairs[1::2]
            free[pairs] = False
        else:
            rows[kind] = _sample(rng, mask, quotas[kind])
            free[rows[kind]] = False
    return _Plan(rows=rows, sources=sources)


def _other_value(
    rng: np.random.Generator, current: Sequence[str], allowed: Sequence[str]
) -> list[str]:
    out = []
    for value, u in zip(current, rng.random(len(current)), strict=True):
        others = [a for a in allowed if a != value] or list(allowed)
        out.append(others[int(u * len(others))])
    return out


def _pick_item(
    rng: np.random.Generator,
    cols: dict[str, np.ndarray],
    names: Sequence[str],
    row: int,
    test: Callable[[str], bool],
) -> str:
    """One of ``names`` whose value in ``row`` passes ``test`` (the plan made sure one does)."""
    fitting = [name for name in names if test(str(cols[name][row]))]
    return fitting[int(rng.integers(0, len(fitting)))]


def _id_valid(value: str, fmt: str | None) -> bool:
    """Whether a validator would accept the identifier under the item's format."""
    resident = value[:17].isdigit() and stdnum_ric.calc_check_digit(value) == value[-1]
    if fmt == "resident_id":
        return resident
    return stdnum_uscc.is_valid(value) or (fmt == "subject_id" and resident)


def _bad_check_char(
    rng: np.random.Generator, cols: dict[str, np.ndarray], roles: _Roles, rows: np.ndarray
) -> None:
    name = str(roles.check)
    fmt = roles.formats[name]
    values = cols[name][rows].tolist()
    spoiled = []
    orders = rng.permuted(np.tile(np.arange(11), (len(values), 1)), axis=1)
    for value, order in zip(values, orders.tolist(), strict=True):
        # A wrong check char must not by chance make a valid code of the other kind.
        wrong = ("0123456789X"[i] for i in order)
        spoiled.append(next(value[:-1] + c for c in wrong if not _id_valid(value[:-1] + c, fmt)))
    cols[name][rows] = spoiled


def _sex_mismatch(
    rng: np.random.Generator, cols: dict[str, np.ndarray], roles: _Roles, rows: np.ndarray
) -> None:
    col = cols[str(roles.sex)]
    col[rows] = _other_value(rng, col[rows].tolist(), roles.allowed[str(roles.sex)])


def _birth_mismatch(
    rng: np.random.Generator, cols: dict[str, np.ndarray], roles: _Roles, rows: np.ndarray
) -> None:
    col = cols[str(roles.birth)]
    days = col[rows].astype("datetime64[D]")
    shift = rng.integers(1, 3650, len(rows)).astype("timedelta64[D]")
    moved = np.where(days + shift < REFERENCE_DAY, days + shift, days - shift)
    col[rows] = _iso(moved)


def _unknown_region(
    rng: np.random.Generator, cols: dict[str, np.ndarray], roles: _Roles, rows: np.ndarray
) -> None:
    unknown = _unknown_region_codes()
    cols[str(roles.region)][rows] = unknown[rng.integers(0, len(unknown), len(rows))]


def _empty_required(
    rng: np.random.Generator, cols: dict[str, np.ndarray], roles: _Roles, rows: np.ndarray
) -> None:
    which = rng.integers(0, len(roles.blankable), len(rows))
    for i, name in enumerate(roles.blankable):
        cols[name][rows[which == i]] = ""


def _full_width(
    rng: np.random.Generator, cols: dict[str, np.ndarray], roles: _Roles, rows: np.ndarray
) -> None:
    for row in rows.tolist():
        name = _pick_item(rng, cols, roles.full_width, row, lambda v: v != "")
        cols[name][row] = str(cols[name][row]).translate(FULL_WIDTH)


def _lower_x(
    rng: np.random.Generator, cols: dict[str, np.ndarray], roles: _Roles, rows: np.ndarray
) -> None:
    for row in rows.tolist():
        name = _pick_item(rng, cols, roles.ids, row, lambda v: v.endswith("X"))
        cols[name][row] = str(cols[name][row])[:-1] + "x"


def _date_variant(value: str, style: int) -> str:
    y, m, d = (int(p) for p in value.split("-"))
    return (f"{y}/{m}/{d}", f"{y:04d}{m:02d}{d:02d}", f"{y}年{m}月{d}日")[style]


def _mixed_dates(
    rng: np.random.Generator, cols: dict[str, np.ndarray], roles: _Roles, rows: np.ndarray
) -> None:
    for row, style in zip(rows.tolist(), rng.integers(0, 3, len(rows)).tolist(), strict=True):
        name = _pick_item(rng, cols, roles.dates, row, lambda v: v != "")
        cols[name][row] = _date_variant(str(cols[name][row]), style)


def _later(stamps: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    moments = np.strings.replace(stamps, " ", "T").astype("datetime64[s]")
    bumped = moments + rng.integers(3600, 90 * 86400, len(stamps)).astype("timedelta64[s]")
    latest = REFERENCE_DAY.astype("datetime64[s]") - 1
    return np.strings.replace(np.datetime_as_string(np.minimum(bumped, latest)).astype(S), "T", " ")


def _duplicates(
    rng: np.random.Generator, cols: dict[str, np.ndarray], roles: _Roles, plan: _Plan
) -> None:
    """Copy originals onto later rows; half the copies are late corrections (another status,
    a later timestamp) rather than exact repeats."""
    sources, targets = plan.sources, plan.rows["duplicate_key"]
    for col in cols.values():
        col[targets] = col[sources]
    corrected = targets[rng.random(len(targets)) < 0.5]
    if roles.status:
        col = cols[roles.status]
        col[corrected] = _other_value(rng, col[corrected].tolist(), roles.allowed[roles.status])
    for name in roles.timestamps:
        live = corrected[cols[name][corrected] != ""]
        cols[name][live] = _later(cols[name][live], rng)


DefectFn = Callable[[np.random.Generator, dict[str, np.ndarray], _Roles, np.ndarray], None]
DEFECTS: dict[str, DefectFn] = {
    "bad_check_char": _bad_check_char,
    "sex_mismatch": _sex_mismatch,
    "birth_mismatch": _birth_mismatch,
    "unknown_region": _unknown_region,
    "empty_required": _empty_required,
    "full_width": _full_width,
    "lower_x": _lower_x,
    "mixed_dates": _mixed_dates,
}


def _inject(batch: _Batch, cols: dict[str, np.ndarray], roles: _Roles, rate: float) -> _Plan:
    kinds = roles.kinds()
    quotas = {kind: _quota(rate, batch.start, batch.start + batch.n) for kind in kinds}
    plan = _plan(batch.rng("defects"), batch.n, quotas, _eligible(cols, roles, batch.n))
    for kind, rows in plan.rows.items():
        rng = batch.rng(f"defect:{kind}")
        if kind == "duplicate_key":
            _duplicates(rng, cols, roles, plan)
        elif len(rows):
            DEFECTS[kind](rng, cols, roles, rows)
    return plan


# --------------------------------------------------------------------------- datasets


@dataclass(frozen=True)
class _Spec:
    """How one tabular dataset is sized, drawn, written and referred to."""

    file: str
    count: Callable[[int], int]
    chunk: int
    draw: Callable[[_Batch, _Context, Contract], dict[str, np.ndarray]]
    values: Mapping[str, ValueGen]
    writer: Callable[[Path, Contract], Writer]
    collect: Callable[[_Batch, dict[str, np.ndarray], np.ndarray, _Context], None] | None = None


SPECS: dict[str, _Spec] = {
    "population": _Spec(
        file="population.csv",
        count=lambda rows: rows,
        chunk=POPULATION_CHUNK,
        draw=_draw_people,
        values=POPULATION_VALUES,
        writer=lambda path, contract: CsvWriter(path, contract, "gbk", bom=False),
        collect=_collect_people,
    ),
    "legal_persons": _Spec(
        file="legal_persons.csv",
        count=lambda rows: max(rows // 10, 50),
        chunk=TABLE_CHUNK,
        draw=_draw_companies,
        values=LEGAL_PERSON_VALUES,
        writer=lambda path, contract: CsvWriter(path, contract, "utf-8", bom=True),
        collect=_collect_companies,
    ),
    "licences": _Spec(
        file="licences.xlsx",
        count=lambda rows: max(rows // 10, 50),
        chunk=TABLE_CHUNK,
        draw=_draw_licences,
        values=LICENCE_VALUES,
        writer=XlsxWriter,
    ),
    "credit_records": _Spec(
        file="credit_records.jsonl",
        count=lambda rows: max(rows // 20, 30),
        chunk=TABLE_CHUNK,
        draw=_draw_credit,
        values=CREDIT_VALUES,
        writer=JsonlWriter,
    ),
}
GEOGRAPHY_FILE = "geography.geojson"
POOLS = {"population": "people", "legal_persons": "companies"}
"""Registers whose clean rows other datasets draw their people and companies from."""


def refers_to(contracts: Mapping[str, Contract]) -> dict[str, tuple[str, ...]]:
    """Which registers each dataset's records are drawn from: the targets of its contract's
    declared references that keep a pool (the same declarations the reference checks use)."""
    return {
        name: tuple(sorted({r.dataset for r in c.references if r.dataset in POOLS}))
        for name, c in contracts.items()
    }


def pool_keys(contracts: Mapping[str, Contract]) -> dict[str, str]:
    """The item each pooled register is referred to by (population → id_number), from the
    references that target it; one register must be referred to by one item only."""
    keys: dict[str, set[str]] = {}
    for contract in contracts.values():
        for ref in contract.references:
            if ref.dataset in POOLS:
                keys.setdefault(ref.dataset, set()).add(ref.target_items[0])
    for dataset, items in keys.items():
        if len(items) > 1:
            raise ValueError(f"{dataset} is referred to by several items: {sorted(items)}")
    return {dataset: next(iter(items)) for dataset, items in keys.items()}


def _columns(
    batch: _Batch, contract: Contract, values: Mapping[str, ValueGen]
) -> dict[str, np.ndarray]:
    """A column per data item, in contract order; optional items without a generator stay
    empty, required ones are an error (the contract grew and this module did not)."""
    cols = {}
    for item in contract.items:
        generate_values = values.get(item.name)
        if generate_values is None:
            if item.required:
                raise ValueError(
                    f"{contract.dataset}: no sample values for required item {item.name!r}"
                )
            cols[item.name] = np.full(batch.n, "", dtype=S)
            continue
        col = np.asarray(generate_values(batch, item)).astype(S)
        if item.allowed:
            stray = set(np.unique(col).tolist()) - set(item.allowed) - {""}
            if stray:
                raise ValueError(
                    f"{contract.dataset}.{item.name}: values {sorted(stray)} not allowed"
                )
        cols[item.name] = col  # astype copied it: defects never touch the latent arrays
    return cols


@dataclass(frozen=True)
class _Run:
    out_dir: Path
    rows: int
    seed: int
    rate: float
    progress: Progress | None
    ctx: _Context = field(default_factory=_Context)

    def advance(self, name: str, done: int, total: int) -> None:
        if self.progress:
            self.progress(name, done, total)


class _NullWriter:
    """Stands in for a dataset generated only because a requested one refers to it."""

    def write(self, cols: list[np.ndarray]) -> None:
        pass

    def close(self) -> None:
        pass


def _write_table(name: str, contract: Contract, run: _Run, write: bool) -> DatasetSample:
    spec = SPECS[name]
    roles = _roles(contract)
    total = spec.count(run.rows)
    chunks = math.ceil(total / spec.chunk)
    writer: Writer = _NullWriter()
    if write:
        (run.out_dir / name).mkdir(parents=True, exist_ok=True)
        writer = spec.writer(run.out_dir / name / spec.file, contract)
    counts = dict.fromkeys(roles.kinds(), 0)
    for chunk in range(chunks):
        start = chunk * spec.chunk
        size = min(spec.chunk, total - start)
        batch = _Batch((run.seed, _name_key(name), chunk), chunk, chunks, start, size)
        batch.latent = spec.draw(batch, run.ctx, contract)
        cols = _columns(batch, contract, spec.values)
        plan = _inject(batch, cols, roles, run.rate)
        if spec.collect:
            spec.collect(batch, cols, ~plan.touched(batch.n), run.ctx)
        writer.write([cols[item.name] for item in contract.items])
        for kind, picked in plan.rows.items():
            counts[kind] += len(picked)
        run.advance(name, start + batch.n, total)
    writer.close()
    return DatasetSample(files=(f"{name}/{spec.file}",), rows=total, defects=counts)


def _square(lon: float, lat: float, half: float) -> dict[str, object]:
    ring = [
        (lon - half, lat - half),
        (lon + half, lat - half),
        (lon + half, lat + half),
        (lon - half, lat + half),
    ]
    coords = [[round(x, 6), round(y, 6)] for x, y in [*ring, ring[0]]]  # counter-clockwise
    return {"type": "Polygon", "coordinates": [coords]}


GEOGRAPHY_HALF_SIZE = {"province": 1.0, "city": 0.15, "county": 0.025}
"""Half the side, in degrees, of the square standing in for a division's boundary."""


def _write_geography(contract: Contract, run: _Run) -> DatasetSample:
    """Every division of the home province; geography is the reference table, so it gets no
    defects."""
    divisions = sorted(
        (r for r in regions().values() if r.code[:2] == HOME_CITY[:2]), key=lambda r: r.code
    )
    geometry_field = contract.source.geometry_field
    features = []
    for region in divisions:
        values = {
            "region_code": region.code,
            "name": region.name,
            "level": region.level,
            "parent_code": region.parent_code,
            "centroid_lon": region.longitude,
            "centroid_lat": region.latitude,
        }
        properties = {
            i.label: values.get(i.name) for i in contract.items if i.name != geometry_field
        }
        geometry = None
        if region.longitude is not None and region.latitude is not None:
            half = GEOGRAPHY_HALF_SIZE.get(region.level, 0.025)
            geometry = _square(region.longitude, region.latitude, half)
        features.append({"type": "Feature", "properties": properties, "geometry": geometry})
    (run.out_dir / "geography").mkdir(parents=True, exist_ok=True)
    body = ",\n".join(json.dumps(f, ensure_ascii=False) for f in features)
    text = f'{{"type": "FeatureCollection", "features": [\n{body}\n]}}\n'
    (run.out_dir / "geography" / GEOGRAPHY_FILE).write_text(text, encoding="utf-8")
    run.advance("geography", len(features), len(features))
    return DatasetSample(files=(f"geography/{GEOGRAPHY_FILE}",), rows=len(features), defects={})


def _needed(
    datasets: Iterable[str] | None, contracts: Mapping[str, Contract]
) -> tuple[set[str], set[str]]:
    """The datasets to write, and those to generate (adding the ones they refer to)."""
    wanted = set(DATASETS if datasets is None else datasets)
    unknown = wanted - set(DATASETS)
    if unknown:
        raise ValueError(f"unknown datasets {sorted(unknown)}; choose from {', '.join(DATASETS)}")
    refs = refers_to(contracts)
    return wanted, wanted | {ref for name in wanted for ref in refs.get(name, ())}


def generate(
    out_dir: Path,
    rows: int,
    seed: int = 0,
    defect_rate: float = 0.02,
    progress: Progress | None = None,
    *,
    datasets: Iterable[str] | None = None,
) -> SampleReport:
    """Write synthetic drops of the base datasets into ``out_dir/<dataset>/`` plus
    ``out_dir/manifest.json``; same arguments, same bytes.

    ``rows`` population rows; legal persons and licences ``max(rows // 10, 50)``, credit
    records ``max(rows // 20, 30)``; geography all divisions of Zhejiang. Each applicable
    defect kind hits ``round(defect_rate * n)`` rows of a dataset of ``n`` rows (``lower_x``
    fewer if too few numbers end in X); a row carries at most one defect.
    ``progress(dataset, done, total)`` is called after every chunk. ``datasets`` limits what
    is written (default: all five); datasets they refer to are still generated, unwritten,
    so every file is the same as in a full run.
    """
    if rows < 1:
        raise ValueError("rows must be at least 1")
    if not 0 <= defect_rate <= MAX_DEFECT_RATE:
        raise ValueError(f"defect_rate must lie in [0, {MAX_DEFECT_RATE:.2f}]")
    if math.ceil(rows / POPULATION_CHUNK) > SEQUENCE_SLOTS:
        raise ValueError(f"at most {SEQUENCE_SLOTS * POPULATION_CHUNK} population rows")
    contracts = load_contracts(Settings().schemas_dir)
    wanted, needed = _needed(datasets, contracts)
    out_dir.mkdir(parents=True, exist_ok=True)
    run = _Run(out_dir, rows, seed, defect_rate, progress, _Context(pool_keys(contracts)))
    samples: dict[str, DatasetSample] = {}
    for name in (n for n in DATASETS if n in needed):
        if name == "geography":
            samples[name] = _write_geography(contracts[name], run)
        else:
            samples[name] = _write_table(name, contracts[name], run, write=name in wanted)
    written = {name: sample for name, sample in samples.items() if name in wanted}
    report = SampleReport(seed=seed, rows=rows, defect_rate=defect_rate, datasets=written)
    manifest = json.dumps(report.to_dict(), ensure_ascii=False, indent=2, sort_keys=True)
    (out_dir / "manifest.json").write_text(manifest + "\n", encoding="utf-8")
    return report
