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

import codecs
import json
import math
import os
import shutil
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import cache, reduce
from pathlib import Path
from typing import Protocol
from zipfile import ZIP_DEFLATED, ZipFile, ZipInfo

import numpy as np
from openpyxl import Workbook
from openpyxl.writer.excel import ExcelWriter
from stdnum.cn import ric as stdnum_ric
from stdnum.cn import uscc as stdnum_uscc

from catalog.contracts import Contract, DataItem, load_contracts
from catalog.regions import regions
from catalog.settings import Settings

S = np.dtypes.StringDType()

REFERENCE_DAY = np.datetime64("2025-06-30", "D")
"""Extraction date of every drop: all dates lie before it. Fixed so output never depends on
the clock."""
HOME_CITY = "3301"
"""Hangzhou, the city of the contracts' resource codes (``.../330100-...``)."""
XLSX_TIME = datetime(2025, 6, 30, 8, 0, 0)
"""Creation and modification time written into workbooks (and their zip entries)."""

POPULATION_CHUNK = 100_000
TABLE_CHUNK = 20_000
PERSON_POOL = 100_000
"""Residents kept (at most) to serve as legal representatives, licence holders and credit
subjects: a bounded sample, so memory stays flat however many rows are generated."""
COMPANY_POOL = 50_000
XLSX_SHEET_ROWS = 1_048_575
"""Data rows that fit on one worksheet below the header; more spill onto further sheets."""

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


def _strs(values: Iterable[str]) -> np.ndarray:
    return np.array(list(values), dtype=S)


def _words(text: str) -> np.ndarray:
    return _strs(text.split())


def _unique_chars(text: str) -> np.ndarray:
    return _strs(dict.fromkeys(text.replace(" ", "")))


def _join(*parts: np.ndarray | str) -> np.ndarray:
    """Element-wise concatenation, pairing neighbours: fewer copies than a left fold."""
    level = list(parts)
    while len(level) > 1:
        pairs = range(0, len(level) - 1, 2)
        level = [np.strings.add(level[i], level[i + 1]) for i in pairs] + level[
            len(level) // 2 * 2 :
        ]
    return np.asarray(level[0])


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


# --------------------------------------------------------------------------- vocabulary

SURNAMES = (
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程"
    "苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝"
    "龚邵万钱严覃武戴莫孔向汤楼应俞裘童"
)
COMPOUND_SURNAMES = ("欧阳", "诸葛", "司马", "上官")
MALE_CHARS = _unique_chars(
    "伟刚勇毅俊峰强军平保东文辉力明永健世广志义兴良海山仁波宁贵福生龙元全国胜学祥才发武新利"
    "清飞彬富顺信子杰涛昌成康星光天达安岩中茂进林有坚和彪博诚先敬震振壮会思群豪心邦承乐绍功"
    "松善厚庆磊民友裕河哲江超浩亮政谦亨奇固之轮翰朗伯宏言若鸣朋斌梁栋维启克伦翔旭鹏泽晨辰士"
    "以建家致树炎德行时泰盛雄琛钧冠策腾楠榕风航弘"
)
FEMALE_CHARS = _unique_chars(
    "秀娟英华慧巧美娜静淑惠珠翠雅芝玉萍红娥玲芬芳燕彩春菊兰凤洁梅琳素云莲真环雪荣爱妹霞香月"
    "莺媛艳瑞凡佳嘉琼勤珍贞莉桂娣叶璐娅琦晶妍茜秋珊莎锦黛青倩婷姣婉娴瑾颖露瑶怡婵雁蓓仪荷丹"
    "蓉眉君琴蕊薇菁梦岚苑婕馨瑗琰韵融园艺咏卿聪澜纯毓悦昭冰爽琬茗羽希宁欣飘育滢馥筠柔竹霭凝"
    "晓欢霄枫芸菲寒伊亚宜可舒影荔思丽"
)
ETHNICITIES = {
    "汉族": 0.965, "畲族": 0.008, "回族": 0.005, "土家族": 0.005, "苗族": 0.005,
    "满族": 0.003, "壮族": 0.003, "布依族": 0.002, "侗族": 0.002, "彝族": 0.002,
}  # fmt: skip
ROADS = _words(
    "解放路 人民路 中山路 建设路 延安路 凤起路 庆春路 文三路 文二路 学院路 "
    "天目山路 莫干山路 环城北路 体育场路 西溪路 秋涛路 江南大道 滨盛路 "
    "钱江路 新华路 东新路 石桥路 古墩路 丰潭路 湖墅南路 市心路 金城路 "
    "迎宾路 振兴路 工业路 城北路 南苑街 文化路 江滨路 望江路 湖滨路"
)
TOWNS = _words(
    "城关镇 新城街道 城东街道 城西街道 临江镇 南山镇 白石镇 清溪镇 石门镇 "
    "双溪乡 横山镇 大源镇 新塘街道 洞桥镇 分水镇 梅城镇 于潜镇 瓶窑镇 "
    "义桥镇 瓜沥镇"
)
VILLAGES = _words(
    "上塘村 下洋村 新桥村 东山村 青山村 大岭村 溪口村 里山村 前庄村 后畈村 "
    "塘坞村 石塔村 杨家村 沈家村 黄泥岭村 枫树湾村 竹林村 松树坞村"
)
PHONE_PREFIXES = _strs(
    [str(p) for p in range(130, 140)]
    + [str(p) for p in (145, 147, 150, 151, 152, 153, 155, 156, 157, 158, 159, 166)]
    + [str(p) for p in (170, 173, 175, 176, 177, 178)]
    + [str(p) for p in range(180, 190)]
    + [str(p) for p in (191, 193, 195, 198, 199)]
)
BIRTH_COHORTS = (
    (1925, 0.4), (1935, 1.5), (1945, 3.0), (1955, 6.0), (1963, 10.0), (1970, 9.0), (1980, 8.0),
    (1988, 10.0), (1995, 7.5), (2005, 6.5), (2012, 7.0), (2016, 7.5), (2020, 4.5), (2024, 3.0),
)  # fmt: skip
"""Relative size of birth cohorts (roughly the shape of China's age pyramid)."""

TRADE_CHARS = _unique_chars(
    "恒达华兴鑫源中天瑞丰成金帆宏远新创博盛泰嘉德和顺安信海卓越明辉凯旭龙腾宇汇通润昌隆佳美"
    "鼎力众诚永康合益广联锦程聚峰东方之星朗晟"
)
ENTITY_TYPES: dict[str, tuple[float, str]] = {
    "有限责任公司": (0.50, "1"),
    "个体工商户": (0.33, "2"),
    "个人独资企业": (0.05, "1"),
    "合伙企业": (0.04, "1"),
    "股份有限公司": (0.03, "1"),
    "农民专业合作社": (0.05, "3"),
}
"""Entity type: weight and registered-entity digit of the credit code (91/92/93)."""
SCOPE_TAIL = "（依法须经批准的项目，经相关部门批准后方可开展经营活动）"
INDUSTRIES = (
    ("科技", "技术服务、技术开发、技术咨询、技术转让、技术推广；软件开发；信息系统集成服务"),
    ("贸易", "日用百货销售；五金产品批发；电子产品销售；服装服饰批发；货物进出口；技术进出口"),
    ("建设工程", "房屋建筑和市政基础设施项目工程总承包；建设工程施工；住宅室内装饰装修"),
    ("餐饮管理", "餐饮管理；餐饮服务；食品销售；外卖递送服务"),
    ("电子商务", "互联网销售（除销售需要许可的商品）；网络技术服务；广告设计、代理"),
    ("机械制造", "通用设备制造（不含特种设备制造）；机械零件、零部件加工；金属制品销售"),
    ("纺织", "面料纺织加工；针纺织品及原料销售；服饰制造"),
    ("食品", "食品生产；食品销售；农副产品销售；食用农产品批发"),
    ("物流", "道路货物运输（不含危险货物）；普通货物仓储服务；国内货物运输代理；装卸搬运"),
    ("医药", "药品零售；医疗器械销售；保健食品销售；卫生用品销售"),
    ("文化传媒", "组织文化艺术交流活动；广告制作；会议及展览服务；影视节目制作"),
    ("环保科技", "环保咨询服务；污水处理及其再生利用；固体废物治理；大气污染治理"),
)
SHOPS = (
    ("小吃店", "小吃服务；食品销售"),
    ("便利店", "食品销售；日用百货销售；烟草制品零售"),
    ("五金店", "五金产品零售；建筑材料销售"),
    ("服装店", "服装服饰零售；鞋帽零售"),
    ("理发店", "理发服务；美容服务"),
    ("水果店", "新鲜水果零售；食用农产品零售"),
    ("汽车修理店", "机动车修理和维护；汽车零配件零售"),
    ("早餐店", "餐饮服务；小餐饮"),
    ("茶叶店", "茶叶零售；食品销售"),
)
FARMS = (
    ("茶叶", "茶叶种植；初级农产品收购；农业技术推广服务"),
    ("蔬菜", "蔬菜种植；农产品的生产、销售、加工、运输、贮藏"),
    ("水果", "水果种植；初级农产品收购"),
    ("苗木", "林木种苗生产；花卉种植；园林绿化工程施工"),
    ("竹笋", "竹笋种植；林产品采集；农副产品销售"),
    ("水产养殖", "水产养殖；水产品零售"),
)
FUND = (
    "投资管理",
    "股权投资；投资管理；资产管理（未经金融等监管部门批准，不得从事向公众融资存款等金融业务）",
)
CAPITAL: dict[str, tuple[str, ...]] = {
    "有限责任公司": ("10", "30", "50", "100", "100", "200", "300", "500", "500", "1000", "5000"),
    "股份有限公司": ("1000", "2000", "5000", "10000", "30000"),
    "个人独资企业": ("1", "3", "5", "10", "20", "50"),
    "合伙企业": ("100", "500", "1000", "3000", "10000"),
    "个体工商户": ("", "", "", "1", "2", "3", "5", "10"),
    "农民专业合作社": ("10", "20", "50", "100", "200"),
}  # fmt: skip
"""Registered capital in 万元 by entity type (sole traders often declare none)."""
ORG_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"  # GB 32100 characters (no I, O, S, V, Z)
ORG_WEIGHTS = (3, 7, 9, 10, 5, 8, 4, 2)  # GB 11714 organisation code
NEW_STYLE_CODES = np.datetime64("2015-10-01")  # "MA…" organisation codes since the reform

LICENCE_TYPES: dict[str, tuple[str, int, str, str]] = {
    "食品经营许可": ("JY", 5, "county", "市场监督管理局"),
    "建筑施工许可": ("JZ", 2, "county", "住房和城乡建设局"),
    "药品经营许可": ("YP", 5, "city", "市场监督管理局"),
    "道路运输经营许可": ("YS", 4, "city", "交通运输局"),
    "排污许可": ("PW", 5, "city", "生态环境局"),
    "卫生许可": ("WS", 4, "county", "卫生健康局"),
}
"""Licence type: number prefix, years of validity, level and name of the issuing office."""
LICENCES_FOR_COMPANIES = {
    "食品经营许可": 0.4,
    "建筑施工许可": 0.08,
    "药品经营许可": 0.08,
    "道路运输经营许可": 0.12,
    "排污许可": 0.1,
    "卫生许可": 0.22,
}
LICENCES_FOR_PERSONS = {"食品经营许可": 0.4, "道路运输经营许可": 0.4, "卫生许可": 0.2}

CREDIT_REASONS: tuple[tuple[str, str, str, str, int], ...] = (
    # list type, subject kind, reason, deciding department, years listed (0: until lifted)
    ("红名单", "company", "纳税信用A级纳税人", "国家税务总局{city}税务局", 2),
    ("红名单", "company", "守合同重信用企业", "{city}市场监督管理局", 3),
    ("红名单", "company", "劳动保障守法诚信示范单位", "{city}人力资源和社会保障局", 3),
    ("红名单", "person", "无偿献血先进个人", "{city}卫生健康委员会", 3),
    ("红名单", "person", "优秀志愿者", "{city}精神文明建设委员会办公室", 2),
    ("黑名单", "company", "重大税收违法失信主体", "国家税务总局{city}税务局", 3),
    ("黑名单", "company", "严重违法失信企业（未依法公示年度报告）", "{city}市场监督管理局", 3),
    ("黑名单", "company", "拖欠农民工工资失信联合惩戒对象", "{city}人力资源和社会保障局", 1),
    ("黑名单", "company", "安全生产严重失信主体", "{city}应急管理局", 1),
    ("黑名单", "company", "失信被执行人", "{city}中级人民法院", 0),
    ("黑名单", "company", "失信被执行人", "{county}人民法院", 0),
    ("黑名单", "person", "失信被执行人", "{county}人民法院", 0),
    ("黑名单", "person", "失信被执行人", "{city}中级人民法院", 0),
    ("黑名单", "person", "交通运输严重失信当事人", "{city}交通运输局", 1),
    ("黑名单", "person", "骗取社会保险待遇", "{city}人力资源和社会保障局", 3),
)


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
        "id": cols["id_number"][keep],
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
        "id": cols["uscc"][keep],
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


# --------------------------------------------------------------------------- writers


def _headers(contract: Contract) -> list[str]:
    """Column headers as a department export would have them: the labels, except that every
    other item with alternative headers uses its first alternative (exercises mapping)."""
    headers, alternated = [], 0
    for item in contract.items:
        use_alternative = bool(item.headers) and alternated % 2 == 0
        alternated += bool(item.headers)
        headers.append(item.headers[0] if use_alternative else item.label)
    return headers


class _Writer(Protocol):
    def write(self, cols: list[np.ndarray]) -> None: ...

    def close(self) -> None: ...


def _csv_quoted(col: np.ndarray) -> np.ndarray:
    special = reduce(np.logical_or, (np.strings.find(col, c) >= 0 for c in ',"\r\n'))
    col = col.copy()
    col[special] = _join('"', np.strings.replace(col[special], '"', '""'), '"')
    return col


def _csv_lines(cols: list[np.ndarray]) -> str:
    """CSV text of a chunk with CRLF line ends; values are quoted only where needed."""
    rows = len(cols[0])

    def lines(columns: list[np.ndarray]) -> str:
        parts = [np.strings.add(c, ",") for c in columns[:-1]] + [
            np.strings.add(columns[-1], "\r\n")
        ]
        return "".join(_join(*parts).tolist())

    text = lines(cols)
    # Counting separators over the whole chunk is far cheaper than searching every column.
    plain = (
        text.count(",") == rows * (len(cols) - 1)
        and text.count("\n") == text.count("\r") == rows
        and '"' not in text
    )
    return text if plain else lines([_csv_quoted(c) for c in cols])


class _CsvWriter:
    """CSV with CRLF line ends, built a chunk at a time from numpy string arrays."""

    def __init__(self, path: Path, contract: Contract, encoding: str, bom: bool) -> None:
        self._encoding = encoding
        self._handle = path.open("wb")
        if bom:
            self._handle.write(codecs.BOM_UTF8)
        self.write([_strs([h]) for h in _headers(contract)])

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


class _XlsxWriter:
    """One worksheet (more only past Excel's row limit); dates as real date cells unless a
    defect rewrote them, ids and codes as text."""

    def __init__(self, path: Path, contract: Contract) -> None:
        self._path, self._contract = path, contract
        self._book = Workbook(write_only=True)
        self._headers = _headers(contract)
        self._dates = [item.type == "date" for item in contract.items]
        self._sheet_rows = XLSX_SHEET_ROWS
        self._sheets = 0

    def _next_sheet(self) -> None:
        self._sheets += 1
        title = self._contract.catalog.name + (str(self._sheets) if self._sheets > 1 else "")
        self._sheet = self._book.create_sheet(title[:31])
        self._sheet.append(self._headers)
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


class _JsonlWriter:
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


# --------------------------------------------------------------------------- datasets


@dataclass(frozen=True)
class _Spec:
    """How one tabular dataset is sized, drawn, written and referred to."""

    file: str
    count: Callable[[int], int]
    chunk: int
    draw: Callable[[_Batch, _Context, Contract], dict[str, np.ndarray]]
    values: Mapping[str, ValueGen]
    writer: Callable[[Path, Contract], _Writer]
    collect: Callable[[_Batch, dict[str, np.ndarray], np.ndarray, _Context], None] | None = None


SPECS: dict[str, _Spec] = {
    "population": _Spec(
        file="population.csv",
        count=lambda rows: rows,
        chunk=POPULATION_CHUNK,
        draw=_draw_people,
        values=POPULATION_VALUES,
        writer=lambda path, contract: _CsvWriter(path, contract, "gbk", bom=False),
        collect=_collect_people,
    ),
    "legal_persons": _Spec(
        file="legal_persons.csv",
        count=lambda rows: max(rows // 10, 50),
        chunk=TABLE_CHUNK,
        draw=_draw_companies,
        values=LEGAL_PERSON_VALUES,
        writer=lambda path, contract: _CsvWriter(path, contract, "utf-8", bom=True),
        collect=_collect_companies,
    ),
    "licences": _Spec(
        file="licences.xlsx",
        count=lambda rows: max(rows // 10, 50),
        chunk=TABLE_CHUNK,
        draw=_draw_licences,
        values=LICENCE_VALUES,
        writer=_XlsxWriter,
    ),
    "credit_records": _Spec(
        file="credit_records.jsonl",
        count=lambda rows: max(rows // 20, 30),
        chunk=TABLE_CHUNK,
        draw=_draw_credit,
        values=CREDIT_VALUES,
        writer=_JsonlWriter,
    ),
}
GEOGRAPHY_FILE = "geography.geojson"
REFERS_TO = {
    "legal_persons": ("population",),
    "licences": ("population", "legal_persons"),
    "credit_records": ("population", "legal_persons"),
}
"""Datasets whose clean rows another one draws its people and companies from."""


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
    writer: _Writer = _NullWriter()
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


def _needed(datasets: Iterable[str] | None) -> tuple[set[str], set[str]]:
    """The datasets to write, and those to generate (adding the ones they refer to)."""
    wanted = set(DATASETS if datasets is None else datasets)
    unknown = wanted - set(DATASETS)
    if unknown:
        raise ValueError(f"unknown datasets {sorted(unknown)}; choose from {', '.join(DATASETS)}")
    return wanted, wanted | {ref for name in wanted for ref in REFERS_TO.get(name, ())}


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
    wanted, needed = _needed(datasets)
    contracts = load_contracts(Settings().schemas_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    run = _Run(out_dir, rows, seed, defect_rate, progress)
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
