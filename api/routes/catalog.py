"""The catalog of shared government information resources."""

from __future__ import annotations

import math
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Query, Request, Response

from api.deps import ContractDep, StateDep, current_versions
from api.models import (
    CatalogEntry,
    CatalogSummary,
    DataItemPublic,
    FreshnessState,
    SearchHit,
    SearchPage,
    VersionPublic,
)
from api.params import PathId, QueryText
from api.routes.exchange import RDF_MEDIA, VARY_ACCEPT, rdf_format, rdf_response
from catalog.contracts import Contract
from catalog.discovery.search import FACETS, facet_value, search
from catalog.text import Line

router = APIRouter(prefix="/catalog", tags=["catalog"])


def _matches_text(contract: Contract, q: str) -> bool:
    meta = contract.catalog
    haystack = " ".join(
        [
            meta.name,
            meta.name_en,
            meta.summary,
            meta.summary_en,
            meta.provider.name,
            meta.provider.name_en,
            *meta.keywords,
            *(i.label for i in contract.items),
        ]
    ).lower()
    return all(word in haystack for word in q.lower().split())


@router.get(
    "",
    response_model=list[CatalogSummary],
    summary="List catalog entries",
    description="JSON by default; DCAT-AP 3 as JSON-LD or Turtle for a client whose `Accept` "
    "asks for `application/ld+json` or `text/turtle` (the same as `/catalog.jsonld` and "
    "`/catalog.ttl`, limited to the entries the filters select).",
    responses={
        200: {
            "content": {
                RDF_MEDIA["json-ld"]: {"schema": {"type": "object"}},
                RDF_MEDIA["turtle"]: {"schema": {"type": "string"}},
            }
        }
    },
)
async def list_catalog(
    request: Request,
    response: Response,
    state: StateDep,
    q: Annotated[
        Line | None, Query(description="Words to find in names, summaries, keywords")
    ] = None,
    provider_code: QueryText = None,
    classification: Literal["base", "theme", "department"] | None = None,
    sharing_type: Literal["unconditional", "conditional", "not_shared"] | None = None,
    open: bool | None = None,
    update_cycle: QueryText = None,
) -> list[CatalogSummary] | Response:
    chosen = [
        contract
        for contract in state.contracts.values()
        if _selected(contract, q, provider_code, classification, sharing_type, open, update_cycle)
    ]
    if fmt := rdf_format(request.headers.get("accept", "")):
        return await rdf_response(request, state, chosen, fmt)
    response.headers.update(VARY_ACCEPT)
    latest = (await current_versions(state)).latest_all()
    entries = []
    for contract in chosen:
        version = latest.get(contract.dataset)
        entries.append(CatalogSummary.of(contract, version, state.freshness(contract, version)))
    return entries


def _selected(
    contract: Contract,
    q: str | None,
    provider_code: str | None,
    classification: str | None,
    sharing_type: str | None,
    open: bool | None,
    update_cycle: str | None,
) -> bool:
    meta = contract.catalog
    return not (
        (q and not _matches_text(contract, q))
        or (provider_code and meta.provider.code != provider_code)
        or (classification and meta.classification != classification)
        or (sharing_type and meta.sharing.type != sharing_type)
        or (open is not None and meta.open.open != open)
        or (update_cycle and meta.update_cycle != update_cycle)
    )


SEARCH_SORTS = {
    "name": lambda c, _: c.catalog.name,
    "code": lambda c, _: c.catalog.resource_code,
    "updated": lambda c, latest: (
        -(latest[c.dataset].published_at.timestamp()) if c.dataset in latest else math.inf
    ),
}


@router.get(
    "/search",
    response_model=SearchPage,
    summary="Search the catalog (Chinese and English), ranked, with facets",
    description="Words of names, summaries, keywords, providers and data items; Chinese is "
    "segmented (人口, 身份证), English stemmed (licences finds licence). Facets: provider "
    "(department code), classification, sharing_type, open, update_cycle, quality_band, "
    "freshness; each facet's counts are over the datasets the query and the other facets "
    "select. Sorted by relevance (with a query) or by `sort`.",
)
def search_catalog(
    state: StateDep,
    q: Annotated[Line | None, Query(description="Words to find")] = None,
    provider: QueryText = None,
    classification: Literal["base", "theme", "department"] | None = None,
    sharing_type: Literal["unconditional", "conditional", "not_shared"] | None = None,
    open: Literal["true", "false"] | None = None,
    update_cycle: Literal["real_time", "daily", "weekly", "monthly", "quarterly", "yearly"]
    | None = None,
    quality_band: Literal["A", "B", "C", "D", "none"] | None = None,
    freshness: Literal["fresh", "stale", "never_published"] | None = None,
    sort: Literal["relevance", "name", "code", "updated"] = "relevance",
    limit: int = Query(20, ge=1, le=100),
    offset: Annotated[int, Query(ge=0, le=10_000)] = 0,
) -> SearchPage:
    latest = state.versions().latest_all()
    fresh = {c.dataset: state.freshness(c, latest.get(c.dataset)) for c in state.contracts.values()}

    def facet_of(contract: Contract, name: str) -> str:
        status = fresh[contract.dataset].status
        return facet_value(contract, name, latest.get(contract.dataset), status)

    chosen = {
        "provider": provider,
        "classification": classification,
        "sharing_type": sharing_type,
        "open": open,
        "update_cycle": update_cycle,
        "quality_band": quality_band,
        "freshness": freshness,
    }
    order = None if sort == "relevance" else SEARCH_SORTS[sort]
    found = search(
        state.search_index(),
        state.contracts,
        q,
        {name: value for name, value in chosen.items() if value is not None},
        FACETS,
        facet_of,
        (lambda c: order(c, latest)) if order else None,
        limit,
        offset,
    )
    results = []
    for name in found.datasets:
        contract, version = state.contracts[name], latest.get(name)
        summary = CatalogSummary.of(contract, version, fresh[name])
        results.append(
            SearchHit(
                **summary.model_dump(),
                score=round(found.scores[name], 4) if name in found.scores else None,
                quality_band=facet_of(contract, "quality_band"),
            )
        )
    return SearchPage(
        total=found.total, limit=limit, offset=offset, results=results, facets=found.facets
    )


@router.get("/{dataset}", response_model=CatalogEntry, summary="One catalog entry")
def get_entry(contract: ContractDep, state: StateDep) -> CatalogEntry:
    versions = state.versions().of(contract.dataset)
    latest = versions[0] if versions else None
    return CatalogEntry(
        dataset=contract.dataset,
        title=contract.title,
        catalog=contract.catalog,
        key=contract.key,
        items=[DataItemPublic.of(item) for item in contract.items],
        verification=contract.verification,
        versions=[VersionPublic.of(v) for v in versions],
        freshness=FreshnessState.of(state.freshness(contract, latest)),
    )


@router.get(
    "/{dataset}/versions/{number}", response_model=VersionPublic, summary="One dataset version"
)
def get_entry_version(contract: ContractDep, number: PathId, state: StateDep) -> VersionPublic:
    version = state.versions().get(contract.dataset, number)
    if version is None:
        raise HTTPException(404, f"{contract.dataset} has no version {number}")
    return VersionPublic.of(version)
