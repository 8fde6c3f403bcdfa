"""CKAN's action API over the catalog (``catalog.exchange.ckan``), at ``/api/3/action/`` and
``/api/action/``: GET with query parameters or POST with a JSON body, CKAN's envelope
(``help``, ``success``, ``result``) and its error objects. Catalog metadata is public;
``datastore_search`` reads rows through the rows API's own functions (its token check,
scope, masks, page and audit entry: ``api/routes/sharing/reads.py``), with the token in
CKAN's ``Authorization`` header.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC
from functools import cached_property
from typing import Any
from urllib.parse import parse_qsl, urlencode

from fastapi import APIRouter, HTTPException, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from api.auth import Caller, token_credentials
from api.deps import state_of
from api.params import MAX_OFFSET, takes_item_filters
from api.routes.sharing.reads import caller_scope, read_page
from api.state import AppState
from catalog.contracts import Contract
from catalog.discovery.search import FACETS, facet_value, search
from catalog.exchange import ckan
from catalog.sharing.access import READER_ROLES, AccessDenied, Scope
from catalog.sharing.audit import AuditUnavailable
from catalog.sharing.principal import Principal
from catalog.sharing.views import RowView, parse_filters, parse_sort
from catalog.store.versions import Version
from catalog.text import InputError

router = APIRouter(tags=["ckan"])


class CkanAnswer(BaseModel):
    """CKAN's envelope: ``result`` on success, ``error`` (``__type`` and the details) not."""

    help: str
    success: bool
    result: Any = None
    error: dict[str, Any] | None = None


_ANSWERS = {
    200: {"model": CkanAnswer, "description": "CKAN's envelope with the action's result"},
    400: {"model": CkanAnswer, "description": "Unknown action, or a body not a JSON object"},
    403: {
        "model": CkanAnswer,
        "description": "datastore_search without a valid token, or without access to the "
        "rows (the rows API's reason)",
    },
    404: {"model": CkanAnswer, "description": "No such package, organization or resource"},
    409: {"model": CkanAnswer, "description": "A parameter is not valid; the error names it"},
    503: {
        "model": CkanAnswer,
        "description": "datastore_search: the audit log could not be written; no rows",
    },
}
PREFIXES = ("/api/3/action", "/api/action")
CKAN_VERSION = "2.10.0"  # the API version whose shapes these answers follow
# Each action's parameters as CKAN documents them, including those CKAN clients send and
# this catalog has nothing to do with (``include_private``: nothing is private here); any
# other one is refused with its name, as on every route.
_SHOW = ("id", "include_datasets", "include_users", "include_password_hash")
PARAMETERS: dict[str, tuple[str, ...]] = {
    "package_list": ("limit", "offset", "include_private", "include_drafts", "include_deleted"),
    "package_show": (
        *_SHOW,
        "name_or_id",
        "use_default_schema",
        "include_tracking",
        "include_plugin_data",
    ),
    "package_search": (
        "q",
        "fq",
        "rows",
        "start",
        "sort",
        "facet",
        "facet.field",
        "facet.limit",
        "facet.mincount",
        "include_private",
        "include_drafts",
        "include_deleted",
        "fl",
        "callback",
    ),
    "organization_list": ("all_fields", "limit", "offset", "sort"),
    "organization_show": (*_SHOW, "include_dataset_count", "include_extras", "include_groups"),
    "group_list": ("all_fields", "limit", "offset", "sort"),
    "group_show": (*_SHOW, "include_dataset_count", "include_extras", "include_groups"),
    "help_show": ("name",),
    "tag_list": ("query", "all_fields"),
    "status_show": (),
    # CKAN 2.10's schema; ``id`` is its older name of ``resource_id``.
    "datastore_search": (
        "resource_id",
        "id",
        "filters",
        "q",
        "full_text",
        "plain",
        "distinct",
        "language",
        "limit",
        "offset",
        "fields",
        "sort",
        "include_total",
        "total_estimation_threshold",
        "records_format",
    ),
}
_SEARCH_FACETS = tuple(ckan.FQ_FIELDS)


class _Refused(Exception):
    def __init__(self, status: int, error: dict) -> None:
        self.status, self.error = status, error


def _validation(field: str, message: str) -> _Refused:
    return _Refused(409, {"__type": "Validation Error", field: [ckan.echo(message, 500)]})


def _denied(message: str) -> _Refused:
    return _Refused(403, {"__type": "Authorization Error", "message": message})


def _not_found(message: str = "Not found") -> _Refused:
    return _Refused(404, {"__type": "Not Found Error", "message": message})


def _int(params: dict, name: str, default: int, low: int, high: int, cap: bool = False) -> int:
    """A whole number (as CKAN's natural number validator: no booleans, no fractions),
    within [low, high]; beyond ``high`` cut to it where ``cap`` (CKAN caps ``rows``)."""
    value = params.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise _validation(name, "Invalid integer")
    try:
        number = int(value)
    except (ValueError, OverflowError):
        raise _validation(name, "Invalid integer") from None
    if cap and number > high:
        return high
    if not low <= number <= high:
        raise _validation(name, f"Must be between {low} and {high}")
    return number


def _flag(params: dict, name: str) -> bool:
    return str(params.get(name, "false")).lower() in ("true", "1", "yes")


_BOOLEANS = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}


def _boolean(params: dict, name: str, default: bool) -> bool:
    """A boolean, or its text in a query string; anything else a Validation Error."""
    value = params.get(name, default)
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in _BOOLEANS:
        return _BOOLEANS[value.lower()]
    raise _validation(name, "Must be a boolean (true or false)")


_UNSAFE = re.compile("[\x00\ud800-\udfff]")  # NUL, lone surrogates (not encodable)


def _text(params: dict, name: str) -> str | None:
    value = params.get(name)
    if value is not None and not isinstance(value, str):
        raise _validation(name, "Must be a string")
    if value is not None and (len(value) > 1000 or _UNSAFE.search(value)):
        raise _validation(name, "Must be at most 1,000 characters of text")
    return value


class _Catalog:
    """What the actions read, once per call: contracts, latest versions, freshness, and each
    package built at most once."""

    def __init__(self, request: Request, state: AppState) -> None:
        self.request = request
        self.state = state
        self.base = (state.settings.public_url or str(request.base_url)).rstrip("/")
        self.versions = state.versions().by_dataset
        self._packages: dict[str, dict] = {}

    @cached_property
    def freshness(self) -> dict[str, str]:
        """Each dataset's freshness, worked out only by the actions that show it."""
        return {
            name: self.state.freshness(c, self.latest(name)).status
            for name, c in self.state.contracts.items()
        }

    def latest(self, dataset: str) -> Version | None:
        return (self.versions.get(dataset) or [None])[0]

    def package(self, contract: Contract) -> dict:
        name = contract.dataset
        if name not in self._packages:
            self._packages[name] = ckan.package(
                contract, self.versions.get(name, []), self.base, self.freshness[name]
            )
        return self._packages[name]

    def contract(self, params: dict, field: str = "id") -> Contract:
        name = _text(params, field)
        if not name:
            raise _validation(field, "Missing value")
        found = self.state.contracts.get(name)
        if found is None:
            raise _not_found()
        return found

    def facet(self, contract: Contract, facet: str) -> str:
        dataset = contract.dataset
        return facet_value(contract, facet, self.latest(dataset), self.freshness[dataset])


def _page(names: list, params: dict) -> list:
    limit = _int(params, "limit", 1000, 0, 1000)
    offset = _int(params, "offset", 0, 0, 10**6)
    return names[offset : offset + limit]


def package_list(catalog: _Catalog, params: dict) -> list:
    return _page(sorted(catalog.state.contracts), params)


def package_show(catalog: _Catalog, params: dict) -> dict:
    """One package (``id``, or ``name_or_id`` as older clients send)."""
    if "id" not in params and "name_or_id" in params:
        params = {**params, "id": params["name_or_id"]}
    return catalog.package(catalog.contract(params))


def _facet_fields(params: dict) -> list[str]:
    raw = params.get("facet.field")
    if raw is None:
        return []
    try:
        fields = json.loads(raw) if isinstance(raw, str) else raw
    except (ValueError, RecursionError):
        raise _validation("facet.field", "Must be a JSON list of field names") from None
    if not isinstance(fields, list) or not all(
        isinstance(f, str) and f in _SEARCH_FACETS for f in fields
    ):
        raise _validation("facet.field", f"Fields to count: {list(_SEARCH_FACETS)}")
    return fields


def package_search(catalog: _Catalog, params: dict) -> dict:
    q = _text(params, "q")
    q = None if q in (None, "", "*:*") else q
    try:
        now = catalog.state.now().astimezone(UTC).replace(tzinfo=None)
        terms, ranges = ckan.split_ranges(_text(params, "fq"), now)
        filters = ckan.parse_fq(terms)
        order = ckan.parse_sort(_text(params, "sort"))
    except ckan.CkanInputError as error:
        raise _Refused(
            400, {"__type": "Search Query Error", "message": f"{error.field}: {error}"}
        ) from None
    tag_filter = filters.pop("tags", None)
    rows = _int(params, "rows", 10, 0, 1000, cap=True)
    start = _int(params, "start", 0, 0, 10**6)
    fields = _facet_fields(params)
    contracts = {
        name: c
        for name, c in catalog.state.contracts.items()
        if (tag_filter is None or tag_filter in c.catalog.keywords)
        and all(r.holds(catalog.package(c)[r.field]) for r in ranges)
    }
    key = None
    if order is not None:
        field = order[0]

        def key(contract: Contract) -> tuple:
            if field in ("id", "name"):
                return (contract.dataset,)
            if field == "title_string":
                return (contract.catalog.name,)
            return (catalog.package(contract)[field] or "",)  # metadata_modified, _created

    found = search(
        catalog.state.search_index(),
        contracts,
        q,
        filters,
        FACETS,
        catalog.facet,
        key,
        10**6,
        0,
    )
    names = found.datasets
    if order is not None and order[1]:
        names = list(reversed(names))
    chosen = [catalog.package(catalog.state.contracts[n]) for n in names[start : start + rows]]
    return {
        "count": found.total,
        "results": chosen,
        "sort": ", ".join(f"{f} {'desc' if d else 'asc'}" for f, d in [order])
        if order
        else "score desc, metadata_modified desc",
        "facets": {f: _counts(catalog, names, f) for f in fields},
        "search_facets": {
            f: {
                "title": f,
                "items": sorted(
                    (
                        {"name": k, "display_name": _display(catalog, f, k), "count": v}
                        for k, v in _counts(catalog, names, f).items()
                    ),
                    key=lambda item: (-item["count"], item["name"]),
                ),
            }
            for f in fields
        },
    }


def _display(catalog: _Catalog, field: str, value: str) -> str:
    """A facet value as CKAN shows it: an organization's or group's title."""
    if field == "organization":
        found = _organizations(catalog).get(value)
        return found[0].catalog.provider.name if found else value
    if field == "groups":
        return ckan.GROUP_TITLES.get(value, value)
    return value


def _counts(catalog: _Catalog, names: list[str], field: str) -> dict[str, int]:
    counts: Counter[str] = Counter()
    for name in names:
        package = catalog.package(catalog.state.contracts[name])
        if field == "organization":
            counts[package["organization"]["name"]] += 1
        elif field == "groups":
            counts.update(g["name"] for g in package["groups"])
        elif field == "tags":
            counts.update(t["name"] for t in package["tags"])
        else:
            counts[catalog.facet(catalog.state.contracts[name], ckan.FQ_FIELDS[field])] += 1
    return dict(counts)


def _organizations(catalog: _Catalog) -> dict[str, tuple[Contract, int]]:
    found: dict[str, tuple[Contract, int]] = {}
    for contract in catalog.state.contracts.values():
        name = ckan.organization_name(contract)
        found[name] = (contract, found.get(name, (contract, 0))[1] + 1)
    return found


def organization_list(catalog: _Catalog, params: dict) -> list:
    found = _organizations(catalog)
    if _flag(params, "all_fields"):
        return _page([ckan.organization(c, n) for _, (c, n) in sorted(found.items())], params)
    return _page(sorted(found), params)


def organization_show(catalog: _Catalog, params: dict) -> dict:
    name = _text(params, "id")
    found = _organizations(catalog).get((name or "").lower())
    if not name or found is None:
        raise _not_found()
    contract, count = found
    result = ckan.organization(contract, count)
    if _flag(params, "include_datasets"):
        result["packages"] = [
            catalog.package(c)
            for c in catalog.state.contracts.values()
            if ckan.organization_name(c) == result["name"]
        ]
    return result


def group_list(catalog: _Catalog, params: dict) -> list:
    counts = Counter(c.catalog.classification for c in catalog.state.contracts.values())
    if _flag(params, "all_fields"):
        return _page([ckan.group(code, n) for code, n in sorted(counts.items())], params)
    return _page(sorted(counts), params)


def group_show(catalog: _Catalog, params: dict) -> dict:
    code = _text(params, "id")
    count = sum(1 for c in catalog.state.contracts.values() if c.catalog.classification == code)
    if code not in ckan.GROUP_TITLES or not count:
        raise _not_found()
    result = ckan.group(code, count)
    if _flag(params, "include_datasets"):
        result["packages"] = [
            catalog.package(c)
            for c in catalog.state.contracts.values()
            if c.catalog.classification == code
        ]
    return result


def help_show(catalog: _Catalog, params: dict) -> str:
    """What an action does (the ``help`` link of every answer points here)."""
    name = _text(params, "name")
    if name not in ACTIONS:
        raise _not_found()
    return (ACTIONS[name].__doc__ or name).strip()


def tag_list(catalog: _Catalog, params: dict) -> list:
    query = (_text(params, "query") or "").lower()
    tags = sorted(
        {
            w
            for c in catalog.state.contracts.values()
            for w in c.catalog.keywords
            if query in w.lower()
        }
    )
    if _flag(params, "all_fields"):
        return [{"id": t, "name": t, "display_name": t, "vocabulary_id": None} for t in tags]
    return tags


def status_show(catalog: _Catalog, params: dict) -> dict:
    settings = catalog.state.settings
    return {
        "ckan_version": CKAN_VERSION,
        "site_title": "govshare",
        "site_description": f"{settings.office_name} — {settings.office_name_en}",
        "site_url": catalog.base,
        "locale_default": "zh_Hans_CN",
        "extensions": ["govshare"],
    }


# --- datastore_search: the rows API through CKAN ----------------------------------------

_reader = Caller(*READER_ROLES)  # the rows API's token and role check


@dataclass(frozen=True)
class _Records:
    """A result whose ``records`` are the JSON array DuckDB wrote for the page, spliced in
    unparsed as on the rows API (decimals stay exact)."""

    result: dict
    records: str


@dataclass(frozen=True)
class _Query:
    """datastore_search's parameters that need no scope, checked."""

    limit: int
    offset: int
    include_total: bool
    fields: list[str] | None
    filters: list[tuple[str, str]]
    sort: str | None


def _principal(request: Request) -> Principal:
    """The caller of CKAN's ``Authorization`` header, with the rows API's check (an unknown,
    expired or revoked token, a role that reads no rows): CKAN's 403 otherwise."""
    credentials = token_credentials(request)
    if credentials is None:
        raise _denied("datastore_search needs an API token in the Authorization header")
    try:
        return _reader(request, credentials)
    except HTTPException as refused:
        raise _denied(str(refused.detail)) from None


def _resource(catalog: _Catalog, params: dict) -> Contract:
    field = "resource_id" if "resource_id" in params or "id" not in params else "id"
    given = _text(params, field)
    if not given:
        raise _validation("resource_id", "Missing value")
    name = ckan.resource_dataset(given, catalog.state.contracts)
    if name is None:
        raise _not_found(f'Resource "{ckan.echo(given)}" was not found.')
    return catalog.state.contracts[name]


def _refuse_unsupported(params: dict) -> None:
    """What this DataStore does not do is refused by name, never ignored (decision 56)."""
    for name in ("q", "full_text"):
        if params.get(name) not in (None, ""):
            raise _validation(name, "Full text search is not supported: use filters")
    if _boolean(params, "distinct", False):
        raise _validation("distinct", "Not supported: records are whole rows")
    _boolean(params, "plain", True)  # of full text search: checked, nothing to do
    _text(params, "language")
    chosen = params.get("records_format", "objects")
    if chosen not in ckan.RECORDS_FORMATS:
        raise _validation("records_format", f"Value must be one of {list(ckan.RECORDS_FORMATS)}")
    if chosen != "objects":
        raise _validation("records_format", f"{chosen} is not supported: objects only")
    if params.get("total_estimation_threshold") is not None:
        _int(params, "total_estimation_threshold", 0, 0, MAX_OFFSET)  # totals are exact


def _query(params: dict, page_max: int) -> _Query:
    _refuse_unsupported(params)
    try:
        fields = params.get("fields")
        filters = params.get("filters")
        return _Query(
            # CKAN's rows_max cut, at the rows API's page size.
            limit=_int(params, "limit", 100, 0, page_max, cap=True),
            offset=_int(params, "offset", 0, 0, MAX_OFFSET),
            include_total=_boolean(params, "include_total", True),
            fields=ckan.datastore_field_names(fields) if fields not in (None, "") else None,
            filters=ckan.datastore_filters(filters) if filters not in (None, "") else [],
            sort=ckan.datastore_sort(params["sort"]) if params.get("sort") is not None else None,
        )
    except ckan.CkanInputError as error:
        raise _validation(error.field, str(error)) from None


def _view(contract: Contract, scope: Scope, query: _Query) -> tuple[RowView, tuple[str, ...]]:
    """The rows API's view (sort, filters) and the record's items, checked against the
    scope by the rows API's own rules: only items shown in clear are sorted or filtered on."""
    try:
        ckan.check_fields(contract, [name for name, _ in query.filters], "filters")
        sorted_by = [part.removeprefix("-") for part in (query.sort or "").split(",") if part]
        ckan.check_fields(contract, sorted_by, "sort")
        ckan.check_fields(contract, query.fields or [], "fields")
    except ckan.CkanInputError as error:
        raise _validation(error.field, str(error)) from None
    shown = tuple(name for name in contract.item_names if name in scope.items)
    outside = [name for name in query.fields or [] if name not in scope.items]
    if outside:
        raise _validation("fields", f'field "{outside[0]}" is not in your scope')
    try:
        sort = parse_sort(contract, scope, query.sort)
    except InputError as error:
        raise _validation("sort", str(error)) from None
    try:
        filters = parse_filters(contract, scope, query.filters)
    except InputError as error:
        raise _validation("filters", str(error)) from None
    return RowView(sort, filters), tuple(query.fields) if query.fields else shown


def _links(request: Request, offset: int, limit: int) -> dict[str, str]:
    """CKAN's ``_links``: this call from the start, and the next page (``offset``)."""
    path = request.url.path
    kept = [(k, v) for k, v in request.query_params.multi_items() if k != "offset"]
    start = f"{path}?{urlencode(kept)}" if kept else path
    return {"start": start, "next": f"{path}?{urlencode([*kept, ('offset', offset + limit)])}"}


def datastore_search(catalog: _Catalog, params: dict) -> _Records:
    """Rows of a dataset's rows API resource (``resource_id``: ``<dataset>-api`` or the
    dataset's name), exactly as ``GET /datasets/{dataset}/rows`` serves them to the caller
    (API token in the Authorization header; the grant's items, masks and row filter; every
    call audited): ``filters`` (item: value or list of values), ``fields``, ``sort``
    ("item asc, other desc"), ``limit`` (at most the rows API's page), ``offset``,
    ``include_total``. Records as objects; no full text search (``q``), no ``distinct``."""
    request, state = catalog.request, catalog.state
    principal = _principal(request)
    contract = _resource(catalog, params)
    query = _query(params, state.settings.page_size_max)
    try:
        scope = caller_scope(request, contract, principal, "api", None)  # audits a refusal
        view, columns = _view(contract, scope, query)
        chosen, page = read_page(
            state, principal, contract, scope, view, version=None, limit=query.limit,
            offset=query.offset, columns=columns,
            detail={"keyset": False, "via": "ckan.datastore_search",
                    **({"sort": query.sort} if view.sort else {})},
        )  # fmt: skip
    except AccessDenied as error:
        raise _denied(str(error)) from None
    except HTTPException as error:  # nothing published yet
        raise _not_found(str(error.detail)) from None
    except AuditUnavailable as error:
        raise _Refused(503, {"__type": "Internal Error", "message": str(error)}) from None
    result: dict[str, Any] = {
        "include_total": query.include_total,
        "resource_id": ckan.api_resource_id(contract.dataset),
        "fields": ckan.datastore_fields(contract, scope, columns),
        "records_format": "objects",
        "limit": query.limit,
        "offset": query.offset,
        "_links": _links(request, query.offset, query.limit),
        "version": chosen.version,  # govshare's: the dataset version the page was read from
    }
    if view.filters:
        result["filters"] = {
            f.item: f.values[0] if f.op == "eq" else f.values for f in view.filters
        }
    if view.sort:
        result["sort"] = ", ".join(
            f"{k.item} {'desc' if k.descending else 'asc'}" for k in view.sort
        )
    if query.include_total:
        result.update(total=page.total, total_was_estimated=False)
    return _Records(result, page.rows)


ACTIONS: dict[str, Callable[[_Catalog, dict], object]] = {
    "package_list": package_list,
    "package_show": package_show,
    "package_search": package_search,
    "organization_list": organization_list,
    "organization_show": organization_show,
    "group_list": group_list,
    "group_show": group_show,
    "help_show": help_show,
    "tag_list": tag_list,
    "status_show": status_show,
    "datastore_search": datastore_search,
}


def _action_parameters(request: Request) -> list[str]:
    return list(PARAMETERS.get(request.path_params.get("action", ""), ()))


def _help(request: Request, action: str) -> str:
    return f"{str(request.base_url).rstrip('/')}/api/3/action/help_show?name={action}"


def _envelope(request: Request, action: str, body: dict, status: int = 200) -> JSONResponse:
    return JSONResponse({"help": _help(request, action), **body}, status_code=status)


def _with_records(request: Request, action: str, answer: _Records) -> Response:
    """The envelope with the records spliced in last, as DuckDB wrote them."""
    body = {"help": _help(request, action), "success": True, "result": answer.result}
    text = json.dumps(body, ensure_ascii=False)  # ends with the result's "}" and the body's
    return Response(
        text[:-2] + ', "records": ' + answer.records + "}}", media_type="application/json"
    )


def _media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


def _form(raw: bytes) -> dict[str, str]:
    """A form-encoded body as CKAN reads one: each field a string (the last of repeats)."""
    try:
        return dict(
            parse_qsl(
                raw.decode("utf-8"), keep_blank_values=True, strict_parsing=True, errors="strict"
            )
        )
    except (UnicodeDecodeError, ValueError):
        raise _Refused(
            400, {"__type": "Bad request", "message": "Body is not a UTF-8 form (field=value&…)"}
        ) from None


async def _arguments(request: Request) -> dict:
    if request.method == "GET":
        return dict(request.query_params)
    raw = await request.body()
    if not raw.strip():
        return dict(request.query_params)
    if _media_type(request) == "application/x-www-form-urlencoded":
        body: object = _form(raw)  # CKAN takes HTML forms too (its request.form)
    else:
        try:
            body = json.loads(raw)
        except (ValueError, RecursionError):
            raise _Refused(400, {"__type": "JSON Error", "message": "Body is not JSON"}) from None
    if not isinstance(body, dict):
        raise _Refused(400, {"__type": "Bad request", "message": "Body must be a JSON object"})
    unknown = sorted(set(body) - set(PARAMETERS[request.path_params["action"]]))
    if unknown:
        shown = _UNSAFE.sub("\ufffd", unknown[0][:100])
        raise _validation(shown, "Unknown parameter")
    return {**dict(request.query_params), **body}


@takes_item_filters(_action_parameters)
async def ckan_action(request: Request, action: str) -> JSONResponse:
    if action not in ACTIONS:
        error = {"__type": "Bad request", "message": f"Action name not known: {action}"}
        return _envelope(request, action, {"success": False, "error": error}, 400)
    try:
        params = await _arguments(request)
        state = state_of(request)

        def run() -> object:  # the lake's versions and the search index: not on the loop
            return ACTIONS[action](_Catalog(request, state), params)

        result = await run_in_threadpool(run)
    except _Refused as refused:
        body = {"success": False, "error": refused.error}
        return _envelope(request, action, body, refused.status)
    if isinstance(result, _Records):
        return _with_records(request, action, result)
    return _envelope(request, action, {"success": True, "result": result})


for _prefix in PREFIXES:
    router.add_api_route(
        f"{_prefix}/{{action}}",
        ckan_action,
        methods=["GET", "POST"],
        summary="CKAN action API (catalog metadata; rows by datastore_search with a token)",
        description="CKAN's actions over the catalog: " + ", ".join(ACTIONS) + ". GET with "
        "query parameters or POST with a JSON body; CKAN's envelope and error objects. "
        "Metadata is public; `datastore_search` reads rows as `GET /datasets/{dataset}/rows` "
        "does (roles provider, consumer, analyst; grants, masks, audit), with the token in "
        "`Authorization` (bare, as CKAN clients send it, or after `Bearer`).",
        include_in_schema=_prefix == PREFIXES[0],
        response_model=None,
        responses=_ANSWERS,
    )
