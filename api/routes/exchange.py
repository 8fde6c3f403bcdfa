"""The catalog in exchange formats: DCAT-AP 3 (``catalog.exchange.dcat``), JSON-LD and Turtle
at stable URLs and on ``/catalog`` for a client that asks for them (``Accept``); the catalog
compilation guide's table (``catalog.exchange.guide``) as CSV and xlsx."""

from __future__ import annotations

from collections.abc import Iterable

from fastapi import APIRouter, Request, Response
from starlette.concurrency import run_in_threadpool

from api.deps import StateDep, current_versions
from api.state import AppState
from catalog.contracts import Contract
from catalog.exchange.dcat import JSONLD_CONTEXT, Publisher, catalog_graph
from catalog.exchange.guide import guide_csv, guide_rows, guide_xlsx

router = APIRouter(tags=["catalog"])
RDF_MEDIA = {"json-ld": "application/ld+json", "turtle": "text/turtle"}
VARY_ACCEPT = {"Vary": "Accept"}  # /catalog answers JSON or RDF by the Accept header
_DESCRIPTION = (
    "The catalog in DCAT-AP 3: every dataset with its versions (DCAT 3 version properties and "
    "a dataset series), sharing type and conditions, update cycle (EU frequency vocabulary) "
    "and classification (SKOS). Public: catalog metadata only."
)


_JSON_RANGES = ("application/json", "application/*", "*/*")


def _weights(accept: str) -> dict[str, float]:
    """Each media range of an ``Accept`` header with its weight (RFC 9110 §12.5.1); a
    malformed weight counts as 0."""
    weights: dict[str, float] = {}
    for part in accept.split(","):
        media, *params = (piece.strip() for piece in part.split(";"))
        weight = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    weight = min(max(float(value), 0.0), 1.0)
                except ValueError:
                    weight = 0.0
        if media:
            weights[media.lower()] = max(weight, weights.get(media.lower(), 0.0))
    return weights


def _weight(weights: dict[str, float], media: str) -> float:
    """The weight of ``media``: that of the most specific range matching it."""
    kind = media.split("/")[0]
    for candidate in (media, f"{kind}/*", "*/*"):
        if candidate in weights:
            return weights[candidate]
    return 0.0


def rdf_format(accept: str) -> str | None:
    """The RDF format an ``Accept`` header prefers to JSON (a higher weight; JSON on a
    tie, and with no header), if any."""
    if not accept.strip():
        return None
    weights = _weights(accept)
    json_weight = _weight(weights, "application/json")
    best, chosen = json_weight, None
    for name, media in RDF_MEDIA.items():
        weight = _weight(weights, media)
        if weight > best and media in weights:  # named, not only through a wildcard
            best, chosen = weight, name
    return chosen


async def rdf_response(
    request: Request, state: AppState, contracts: Iterable[Contract], fmt: str
) -> Response:
    versions = (await current_versions(state)).by_dataset
    settings = state.settings
    # IRIs should not change: GOVSHARE_PUBLIC_URL; without it, the address the caller used.
    base = settings.public_url or str(request.base_url)
    publisher = Publisher(settings.office_name, settings.office_name_en)
    chosen = list(contracts)

    def serialise() -> str:  # ~10 ms of CPU: not on the event loop
        graph = catalog_graph(base, publisher, chosen, versions)
        if fmt == "json-ld":  # compact: one object, "@context" and "@graph", prefixed names
            return graph.serialize(format=fmt, context=JSONLD_CONTEXT, auto_compact=True)
        return graph.serialize(format=fmt)

    return Response(
        await run_in_threadpool(serialise), media_type=RDF_MEDIA[fmt], headers=VARY_ACCEPT
    )


@router.get(
    "/catalog.jsonld",
    summary="The catalog as DCAT-AP 3 JSON-LD",
    description=_DESCRIPTION,
    response_class=Response,
    responses={200: {"content": {RDF_MEDIA["json-ld"]: {"schema": {"type": "object"}}}}},
)
async def catalog_jsonld(request: Request, state: StateDep) -> Response:
    return await rdf_response(request, state, state.contracts.values(), "json-ld")


@router.get(
    "/catalog.ttl",
    summary="The catalog as DCAT-AP 3 Turtle",
    description=_DESCRIPTION,
    response_class=Response,
    responses={200: {"content": {RDF_MEDIA["turtle"]: {"schema": {"type": "string"}}}}},
)
async def catalog_turtle(request: Request, state: StateDep) -> Response:
    return await rdf_response(request, state, state.contracts.values(), "turtle")


_GUIDE = (
    "The catalog in the layout of the catalog compilation guide (GB/T 21063): one row per "
    "information item, the resource's fields (classification, name, code, provider and its "
    "code, summary, format, sharing type, conditions and methods, open attribute, update "
    "cycle, publish date, related resource codes) on each row, Chinese column names."
)
_XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


async def _guide(state: AppState, write, media: str, suffix: str) -> Response:
    versions = (await current_versions(state)).by_dataset
    rows = guide_rows(state.contracts.values(), versions, state.settings.timezone)
    body = await run_in_threadpool(write, rows)
    disposition = f'attachment; filename="catalog.{suffix}"'
    return Response(body, media_type=media, headers={"Content-Disposition": disposition})


@router.get(
    "/catalog.csv",
    summary="The catalog as the compilation guide's table, CSV for Excel (UTF-8 with BOM)",
    description=_GUIDE,
    response_class=Response,
    responses={200: {"content": {"text/csv": {"schema": {"type": "string"}}}}},
)
async def catalog_csv(state: StateDep) -> Response:
    return await _guide(state, guide_csv, "text/csv; charset=utf-8", "csv")


@router.get(
    "/catalog.xlsx",
    summary="The catalog as the compilation guide's table, xlsx",
    description=_GUIDE,
    response_class=Response,
    responses={200: {"content": {_XLSX: {"schema": {"type": "string", "format": "binary"}}}}},
)
async def catalog_xlsx(state: StateDep) -> Response:
    return await _guide(state, guide_xlsx, _XLSX, "xlsx")
