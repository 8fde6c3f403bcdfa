"""Catalog search: Chinese and English words over names, summaries, keywords, providers and
information items, ranked by BM25, with facets.

Chinese has no spaces, so its text is segmented with jieba (search mode: a long word and
the words inside it, 人口基础信息 → 人口 / 基础 / 信息); English words are stemmed with
Snowball (licences → licenc). A field's words count by the field's weight (a word of the
name counts more than one of the summary). A few synonyms of the office's vocabulary map
everyday words to the ones the catalog uses (执照 → 证照, license → licence). Facet counts
are those of the datasets the query and the other facets' filters select (choosing a
department does not hide the other departments' counts).
"""

from __future__ import annotations

import logging
import math
import re
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import cache

import jieba
import snowballstemmer

from catalog.contracts import Contract
from catalog.store.versions import Version

jieba.setLogLevel(logging.WARNING)  # it logs its dictionary load at INFO

# Field weights: how much a word found there counts.
WEIGHTS = {"name": 3.0, "keywords": 2.5, "items": 1.5, "provider": 1.0, "summary": 1.0}
# Words of everyday speech and the catalog's own for the same thing (both sides as tokens).
SYNONYMS = {
    "执照": "证照",
    "许可证": "证照",
    "身份证号": "身份证",
    "身份证号码": "身份证",
    "户口": "户籍",
    "地图": "地理",
    "licens": "licenc",
    "map": "geographi",
    "enterpris": "compani",
}
QUALITY_BANDS = ((0.001, "A"), (0.01, "B"), (0.05, "C"))  # share of rows quarantined, at most
FACETS = (
    "provider",
    "classification",
    "sharing_type",
    "open",
    "update_cycle",
    "quality_band",
    "freshness",
)
# Han characters (the main blocks and extension A, compatibility ideographs, extensions B+).
_HAN = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f"
_WORDS = re.compile(f"[{_HAN}]+|[A-Za-z0-9]+")
_CJK = re.compile(f"[{_HAN}]")
# English words too common to tell datasets apart (and Solr's operators, typed as words).
STOPWORDS = {"a", "an", "and", "by", "for", "in", "of", "on", "or", "not", "the", "to", "with"}
_K1, _B = 1.2, 0.75  # BM25's usual constants


@cache
def _stemmer():
    return snowballstemmer.stemmer("english")


def tokens(text: str, precise: bool = False) -> list[str]:
    """The search words of a text: Chinese segmented (search mode: a long word and the words
    inside it; ``precise``: the long word only), English lower-cased and stemmed, common
    English words left out. Full-width letters count as the letters they are (NFKC)."""
    out: list[str] = []
    for piece in _WORDS.findall(unicodedata.normalize("NFKC", text)):
        if _CJK.match(piece):
            cut = jieba.lcut(piece) if precise else jieba.lcut_for_search(piece)
            out += [word for word in cut if word.strip()]
        elif piece.lower() not in STOPWORDS:
            out.append(_stemmer().stemWord(piece.lower()))
    return [SYNONYMS.get(word, word) for word in out]


def _fields(contract: Contract) -> dict[str, str]:
    meta = contract.catalog
    return {
        "name": f"{meta.name} {meta.name_en}",
        "keywords": " ".join(meta.keywords),
        "items": " ".join(f"{item.label} {item.name.replace('_', ' ')}" for item in contract.items),
        "provider": f"{meta.provider.name} {meta.provider.name_en}",
        "summary": f"{meta.summary} {meta.summary_en}",
    }


@dataclass(frozen=True)
class _Document:
    dataset: str
    weights: dict[str, float]  # token → weighted count
    length: float


class SearchIndex:
    """The catalog's words, per dataset (built once per set of contracts)."""

    def __init__(self, contracts: Iterable[Contract]) -> None:
        self.documents: list[_Document] = []
        for contract in contracts:
            weights: Counter[str] = Counter()
            for name, text in _fields(contract).items():
                for word in tokens(text):
                    weights[word] += WEIGHTS[name]
            self.documents.append(_Document(contract.dataset, dict(weights), sum(weights.values())))
        count = len(self.documents) or 1
        self._average = sum(d.length for d in self.documents) / count
        frequency = Counter(word for d in self.documents for word in d.weights)
        self._idf = {
            word: math.log(1 + (count - n + 0.5) / (n + 0.5)) for word, n in frequency.items()
        }

    def query_words(self, query: str) -> list[str]:
        """The query's words: segmented precisely (身份证号 stays one word, not 身份 and 证号,
        which other datasets have), and a word the catalog does not have replaced by the
        words inside it (营业执照 → 营业, 执照 → 证照)."""
        words: list[str] = []
        for word in tokens(query, precise=True):
            known = word in self._idf or not _CJK.match(word)
            words += [word] if known else tokens(word)
        return list(dict.fromkeys(words))

    def scores(self, query: str) -> dict[str, float]:
        """BM25 score of every dataset with at least one of the query's words (each word
        counted once)."""
        words = self.query_words(query)
        found: dict[str, float] = {}
        for document in self.documents:
            score = 0.0
            norm = _K1 * (1 - _B + _B * document.length / (self._average or 1))
            for word in words:
                tf = document.weights.get(word, 0.0)
                if tf:
                    score += self._idf[word] * tf * (_K1 + 1) / (tf + norm)
            if score > 0:
                found[document.dataset] = score
        return found


@dataclass
class SearchResult:
    datasets: list[str]  # the page, in order
    total: int
    scores: dict[str, float]
    facets: dict[str, dict[str, int]] = field(default_factory=dict)


def quality_band(quarantine_rate: float | None) -> str:
    """A published version's band by the share of its delivery's rows quarantined: A (at
    most 0.1%), B (1%), C (5%), D (more); ``none`` before the first publish."""
    if quarantine_rate is None:
        return "none"
    return next((band for limit, band in QUALITY_BANDS if quarantine_rate <= limit), "D")


def facet_value(contract: Contract, facet: str, latest: Version | None, freshness: str) -> str:
    """A dataset's value of a facet (:data:`FACETS`): the provider's code, the catalog
    codes, the latest version's quality band, the freshness status given."""
    meta = contract.catalog
    if facet == "provider":
        return meta.provider.code
    if facet == "open":
        return "true" if meta.open.open else "false"
    if facet == "quality_band":
        return quality_band(latest.quality.get("quarantine_rate") if latest else None)
    if facet == "freshness":
        return freshness
    return {
        "classification": meta.classification,
        "sharing_type": meta.sharing.type,
        "update_cycle": meta.update_cycle,
    }[facet]


def search(
    index: SearchIndex,
    contracts: dict[str, Contract],
    query: str | None,
    filters: dict[str, str],
    facets: tuple[str, ...],
    facet_of: Callable[[Contract, str], str],
    sort_key: Callable[[Contract], object] | None,
    limit: int,
    offset: int,
) -> SearchResult:
    """The page of datasets matching ``query`` (all, without one) and every facet filter
    (facet name → value, as ``facet_of`` gives a contract's), by relevance (score, then
    name) or by ``sort_key``, and the counts of each of ``facets``."""
    # A query with no words to search (punctuation, emoji) finds nothing, not everything.
    scores = index.scores(query) if query and query.strip() else None
    matched = [c for c in contracts.values() if scores is None or c.dataset in scores]

    def passes(contract: Contract, skip: str | None = None) -> bool:
        return all(facet_of(contract, f) == v for f, v in filters.items() if f != skip)

    selected = [c for c in matched if passes(c)]
    if sort_key is None and scores is not None:
        selected.sort(key=lambda c: (-scores[c.dataset], c.catalog.name))
    else:
        selected.sort(key=sort_key or (lambda c: c.catalog.resource_code))
    counts = {
        name: dict(Counter(facet_of(c, name) for c in matched if passes(c, skip=name)))
        for name in facets
    }
    page = [c.dataset for c in selected[offset : offset + limit]]
    return SearchResult(page, len(selected), scores or {}, counts)
