"""The catalog as DCAT-AP 3 (``catalog.exchange.dcat``): JSON-LD and Turtle at stable URLs,
and on ``/catalog`` for a client that asks for them (``Accept``)."""

from __future__ import annotations

from collections.abc import Iterable

from fastapi import APIRouter, Response
from starlette.concurrency import run_in_threadpool

from api.deps import StateDep, current_versions
from api.state import AppState
from catalog.contracts import Contract
from catalog.exchange.dcat import JSONLD_CONTEXT, Publisher, catalog_graph

router = APIRouter(tags=["catalog"])
RDF_MEDIA = {"json-ld": "application/ld+json", "turtle": "text/turtle"}
_DESCRIPTION = (
    "The catalog in DCAT-AP 3: every dataset with its versions (DCAT 3 version properties and "
    "a dataset series), sharing type and conditions, update cycle (EU frequency vocabulary) "
    "and classification (SKOS). Public: catalog metadata only."
)


def rdf_format(accept: str) -> str | None:
    """The RDF format an ``Accept`` header asks for before JSON, if any."""
    for part in accept.split(","):
        media = part.split(";")[0].strip().lower()
        if media in ("application/json", "*/*", "application/*"):
            return None
        for name, rdf_media in RDF_MEDIA.items():
            if media == rdf_media:
                return name
    return None


async def rdf_response(state: AppState, contracts: Iterable[Contract], fmt: str) -> Response:
    versions = (await current_versions(state)).by_dataset
    settings = state.settings
    base = settings.public_url or f"http://{settings.api_host}:{settings.api_port}"
    publisher = Publisher(settings.office_name, settings.office_name_en)
    chosen = list(contracts)

    def serialise() -> str:  # ~10 ms of CPU: not on the event loop
        graph = catalog_graph(base, publisher, chosen, versions)
        if fmt == "json-ld":  # compact: one object, "@context" and "@graph", prefixed names
            return graph.serialize(format=fmt, context=JSONLD_CONTEXT, auto_compact=True)
        return graph.serialize(format=fmt)

    return Response(await run_in_threadpool(serialise), media_type=RDF_MEDIA[fmt])


@router.get(
    "/catalog.jsonld",
    summary="The catalog as DCAT-AP 3 JSON-LD",
    description=_DESCRIPTION,
    response_class=Response,
    responses={200: {"content": {RDF_MEDIA["json-ld"]: {"schema": {"type": "object"}}}}},
)
async def catalog_jsonld(state: StateDep) -> Response:
    return await rdf_response(state, state.contracts.values(), "json-ld")


@router.get(
    "/catalog.ttl",
    summary="The catalog as DCAT-AP 3 Turtle",
    description=_DESCRIPTION,
    response_class=Response,
    responses={200: {"content": {RDF_MEDIA["turtle"]: {"schema": {"type": "string"}}}}},
)
async def catalog_turtle(state: StateDep) -> Response:
    return await rdf_response(state, state.contracts.values(), "turtle")
