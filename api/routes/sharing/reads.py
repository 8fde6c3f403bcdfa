"""Rows and exports of published datasets, within the caller's scope, every call audited.

The scope (items, items in clear, row filter) comes from ``catalog.sharing.access``; the query
applies it inside DuckDB; the audit entry is written before anything leaves, and a failed
audit write refuses the call (503). Exports come as CSV, CSV for Excel (byte-order mark,
Chinese labels), xlsx, Parquet or GeoJSON (``catalog.sharing.reads.EXPORT_FORMATS``).
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Annotated
from urllib.parse import quote, urlencode
from zoneinfo import ZoneInfo

from fastapi import APIRouter, HTTPException, Query, Request, Response
from fastapi.responses import FileResponse
from starlette.background import BackgroundTask

from api.auth import Reader, access_generation
from api.deps import ContractDep, CursorDep, StateDep, state_of
from api.params import (
    MAX_ID,
    FromNumber,
    GrantId,
    Offset,
    ToNumber,
    VersionNumber,
    takes_item_filters,
    undeclared_query,
)
from api.routes.releases import version_pair
from api.state import AppState
from catalog.contracts import Contract
from catalog.sharing.access import (
    AccessDenied,
    DataPath,
    GrantView,
    Scope,
    read_scope,
    revocation_notice,
    unconditional_views,
)
from catalog.sharing.audit import AuditEvent, record, record_refusal
from catalog.sharing.masking import department_disclosures
from catalog.sharing.principal import Principal
from catalog.sharing.reads import (
    EXPORT_FORMATS,
    Cursor,
    ExportFormat,
    Page,
    check_export_format,
    decode_cursor,
    encode_cursor,
    export_file,
    next_cursor,
    rows_json,
    scope_changes,
)
from catalog.sharing.requests import row_grants
from catalog.sharing.views import RowView, parse_filters, parse_sort
from catalog.store.changes import build_changes, schema_changes
from catalog.store.versions import Version
from catalog.text import InputError

router = APIRouter(prefix="/datasets", tags=["datasets"])
_MEDIA: dict[str, str] = {
    "csv": "text/csv; charset=utf-8",
    "csv_excel": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "parquet": "application/vnd.apache.parquet",
    "geojson": "application/geo+json",
    "datapackage": "application/zip",
}
_SUFFIX = {
    "csv_excel": "csv",
    "datapackage": "zip",
}  # file name suffix where it is not the format's name
_FORMAT_HELP = "File format: " + "; ".join(f"`{k}`: {v}" for k, v in EXPORT_FORMATS.items())


def caller_scope(
    request: Request, contract: Contract, principal: Principal, path: DataPath, grant: int | None
) -> Scope:
    """The caller's scope, or 403 (audited) with the reason. The masks are chosen on what
    the department can see of the dataset: its grants ever held and the unconditional view."""
    state = state_of(request)
    department, dataset, now = principal.department_id, contract.dataset, state.now()
    try:
        held = state.access.get(
            ("grants", department, dataset),
            partial(row_grants, department_id=department, dataset=dataset),
            access_generation(request),
        )
        grants = held.in_force(now)
        if grant is not None:
            grants = [g for g in grants if g.id == grant]
        revoked: list[GrantView] = []
        if not grants and (grant is not None or contract.catalog.sharing.type != "unconditional"):
            # A refusal for want of a grant says so if the grant was revoked.
            revoked = [
                _local(state, g) for g in held.revoked(now) if grant is None or g.id == grant
            ]
        views = held.ever() + unconditional_views(state.contracts)
        known = department_disclosures(state.contracts, dataset, views)
        if grant is not None and not grants:
            if revoked:
                raise AccessDenied(revocation_notice(dataset, revoked[0]))
            raise AccessDenied(f"grant {grant} is not in force for your department")
        return read_scope(
            contract,
            principal,
            path,
            grants,
            grant_named=grant is not None,
            known=known,
            revoked=revoked,
        )
    except AccessDenied as exc:
        action = "read" if path == "api" else "export"
        record_refusal(
            state.store,
            AuditEvent(
                action=action,
                result="denied",
                actor=principal,
                dataset=contract.dataset,
                detail={"reason": str(exc)},
            ),
            state.now(),
        )
        raise


def _local(state: AppState, view: GrantView) -> GrantView:
    """The view with its revocation time in the office's time zone (as callers read it)."""
    if view.revoked_at is None:
        return view
    return replace(view, revoked_at=view.revoked_at.astimezone(ZoneInfo(state.settings.timezone)))


def _walk(
    contract: Contract, scope: Scope, view: RowView, after: str, version: int | None, offset: int
) -> Cursor:
    """The cursor a keyset page continues from; a 422 naming the parameter that contradicts
    it (a walk stays on its cursor's version, order and filters, and starts where the cursor
    says)."""
    walk = decode_cursor(contract, scope, after, view)
    if version is not None and version != walk.version:
        raise InputError(
            f"the cursor walks version {walk.version}, not version {version}",
            ("query", "version"),
        )
    if offset:
        raise InputError("a keyset page starts after its cursor: no offset", ("query", "offset"))
    return walk


def _next_url(
    contract: Contract, cursor: str | None, limit: int, grant: int | None, view: RowView
) -> str | None:
    if cursor is None:
        return None
    query = [("after", cursor), ("limit", str(limit)), *view.query()]
    if grant:
        query.append(("grant", str(grant)))
    return f"/datasets/{quote(contract.dataset)}/rows?{urlencode(query)}"


def dataset_version(state: AppState, contract: Contract, number: int | None) -> Version:
    versions = state.versions()
    chosen = (
        versions.get(contract.dataset, number)
        if number is not None
        else versions.latest(contract.dataset)
    )
    if chosen is None:
        raise HTTPException(404, f"{contract.dataset} has no published version {number or ''}")
    return chosen


def audit_read(
    state: AppState,
    principal: Principal,
    action: str,
    contract: Contract,
    version: Version,
    scope: Scope,
    rows: int,
    detail: dict,
) -> None:
    record(
        state.store,
        AuditEvent(
            action=action,
            result="ok",
            actor=principal,
            dataset=contract.dataset,
            version=version.version,
            items=list(scope.items),
            row_count=rows,
            purpose=scope.purpose,
            detail={
                "basis": scope.basis,
                "grant_id": scope.grant_id,
                "unmasked": sorted(scope.unmasked),
                "pseudonymised": sorted(scope.pseudonymised),
                "redacted": sorted(scope.redacted),
                **detail,
            },
        ),
        state.now(),
    )


def read_page(
    state: AppState,
    principal: Principal,
    contract: Contract,
    scope: Scope,
    view: RowView,
    *,
    version: int | None,
    limit: int,
    offset: int,
    walk: Cursor | None = None,
    columns: tuple[str, ...] | None = None,
    detail: dict,
) -> tuple[Version, Page]:
    """A page of the scope's rows in the view, audited as a read before it is returned (a
    failed entry refuses it): the rows API and CKAN's ``datastore_search`` both read here.
    ``columns``: the scope's items each record holds (all of them by default)."""
    chosen = dataset_version(state, contract, version)
    key = state.pseudonyms.key_for(scope.pseudonym_context)
    # The lake cursor is taken here, not as a dependency: a sync dependency that yields
    # costs two more hops to the thread pool.
    with state.reader() as cursor:
        page = rows_json(
            cursor, contract, chosen, scope, limit=limit, offset=offset, pseudonym_key=key,
            after=walk.after if walk else None, hint=walk.hint if walk else None, view=view,
            copies=state.copies, columns=columns,
        )  # fmt: skip
    filters = {"filters": [f.model_dump() for f in view.filters]} if view.filters else {}
    detail = {"offset": offset, "limit": limit, **detail, **filters}
    audit_read(state, principal, "read", contract, chosen, scope, page.served, detail)
    return chosen, page


def _dataset_items(request: Request) -> list[str]:
    contract = state_of(request).contracts.get(request.path_params.get("dataset", ""))
    return contract.item_names if contract else []


@router.get(
    "/{dataset}/rows",
    summary="A page of rows of a dataset (latest version or a given one)",
    description="Rows in key order (or in the order `sort` names), paged by `offset` or by "
    "cursor (`after`, the `next` of the page before). Any other query parameter named after "
    "a data item is an equality filter (`?region_code=330102`; given twice, either value), "
    "ANDed with the grant's row filter. Sorts and filters take only items your scope shows "
    "in clear.",
    responses={
        200: {"description": "Envelope with the version and the page of rows"},
        403: {"description": "No access: not shared, no grant, or not by API"},
        404: {"description": "Unknown dataset or version, or nothing published yet"},
        503: {"description": "The audit log could not be written; nothing is returned"},
    },
)
@takes_item_filters(_dataset_items)
def get_rows(
    request: Request,
    principal: Reader,
    contract: ContractDep,
    state: StateDep,
    version: VersionNumber = None,
    limit: int = Query(100, ge=1, le=MAX_ID),
    offset: Offset = 0,
    after: Annotated[
        str | None,
        Query(
            max_length=1000,
            description="Keyset paging: the `next` of the page before (it names its version, "
            "so a walk never mixes versions); not with `offset`",
        ),
    ] = None,
    grant: GrantId = None,
    sort: Annotated[
        str | None,
        Query(
            max_length=200,
            description="Items to order by, comma-separated, `-` in front for descending "
            "(`-birth_date,name`); ties in key order",
        ),
    ] = None,
) -> Response:
    scope = caller_scope(request, contract, principal, "api", grant)
    view = RowView(
        parse_sort(contract, scope, sort), parse_filters(contract, scope, undeclared_query(request))
    )
    limit = min(limit, state.settings.page_size_max)
    walk = None
    if after is not None:
        walk = _walk(contract, scope, view, after, version, offset)
        version = walk.version
        offset = walk.position or 0
    chosen, page = read_page(
        state, principal, contract, scope, view, version=version, limit=limit, offset=offset,
        walk=walk, detail={"keyset": after is not None, **({"sort": sort} if view.sort else {})},
    )  # fmt: skip
    following = next_cursor(contract, scope, chosen.version, page, offset, limit, view)
    token = encode_cursor(following) if following else None
    envelope = json.dumps(
        {
            "dataset": contract.dataset,
            "version": chosen.version,
            "total": page.total,
            "offset": offset,
            "limit": limit,
            "next": token,
            "next_url": _next_url(contract, token, limit, grant, view),
            "items": list(scope.items),
            "unmasked": sorted(scope.unmasked),
            "pseudonymised": sorted(scope.pseudonymised),
            "redacted": sorted(scope.redacted),
        },
        ensure_ascii=False,
    )
    rows = page.rows
    # Splice DuckDB's JSON array in without parsing it again.
    return Response(envelope[:-1] + ', "rows": ' + rows + "}", media_type="application/json")


@router.get(
    "/{dataset}/export",
    summary="The whole dataset version as a file: CSV, CSV for Excel, xlsx, Parquet or GeoJSON "
    "(bulk download)",
    response_class=FileResponse,
    responses={
        200: {
            "description": "The file, as an attachment",
            "content": {
                media.split(";")[0]: {"schema": {"type": "string", "format": "binary"}}
                for media in _MEDIA.values()
            },
        },
        403: {"description": "No access: not shared, no grant, or no bulk download"},
        404: {"description": "Unknown dataset or version, or nothing published yet"},
        503: {"description": "The audit log could not be written; nothing is returned"},
    },
)
def export_rows(
    request: Request,
    principal: Reader,
    contract: ContractDep,
    state: StateDep,
    cursor: CursorDep,
    format: Annotated[ExportFormat, Query(description=_FORMAT_HELP)] = "csv",
    version: VersionNumber = None,
    grant: GrantId = None,
) -> FileResponse:
    check_export_format(contract, format)  # before the scope: the same for every caller
    scope = caller_scope(request, contract, principal, "bulk_download", grant)
    chosen = dataset_version(state, contract, version)
    folder = _export_folder(state)
    path = folder / f"{contract.dataset}-v{chosen.version}.{_SUFFIX.get(format, format)}"
    try:
        key = state.pseudonyms.key_for(scope.pseudonym_context)
        rows = export_file(cursor, contract, chosen, scope, path, format, pseudonym_key=key)
        audit_read(state, principal, "export", contract, chosen, scope, rows, {"format": format})
    except BaseException:
        _remove(folder)
        raise
    return FileResponse(
        path,
        media_type=_MEDIA[format],
        filename=path.name,
        background=BackgroundTask(_remove, folder),
    )


def _export_folder(state: AppState) -> Path:
    root = state.settings.folder("tmp")
    root.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix="export-", dir=root))


def _remove(folder: Path) -> None:
    for child in folder.iterdir():
        child.unlink()
    folder.rmdir()


@router.get(
    "/{dataset}/changes",
    summary="Rows added, deleted and changed between two versions, as your scope shows them",
    description="The diff of your own rows: a row your scope shows in `to` only is added (it "
    "may have moved into your row filter), in `from` only deleted, in both with a shown value "
    "that differs changed, naming those items; a change of an item outside your grant or "
    "hidden by its mask is no change. Counts, and up to `limit` rows of each kind masked as "
    "in your rows. `to`: the latest version if absent; `from`: the version before `to`. "
    "Audited as a read.",
    responses={
        200: {"description": "Counts, schema diff and the sample"},
        403: {"description": "No access: not shared, no grant, or not by API"},
        404: {"description": "Unknown dataset or version"},
        503: {"description": "The audit log could not be written; nothing is returned"},
    },
)
def get_changes(
    request: Request,
    principal: Reader,
    contract: ContractDep,
    state: StateDep,
    from_: FromNumber = None,
    to: ToNumber = None,
    limit: int = Query(10, ge=1, le=100),
    grant: GrantId = None,
) -> dict:
    scope = caller_scope(request, contract, principal, "api", grant)
    older, newer = version_pair(state, contract, from_, to)
    key = state.pseudonyms.key_for(scope.pseudonym_context)
    with state.reader() as cursor:
        build_changes(cursor, contract, older, newer)
        found = scope_changes(cursor, contract, older, newer, scope, key, limit)
        schema = schema_changes(cursor, older, newer)
    served = sum(len(rows) for rows in found.sample.values())
    detail = {"changes_from": older.version if older else None, "limit": limit}
    audit_read(state, principal, "read", contract, newer, scope, served, detail)
    return {
        "dataset": contract.dataset,
        "from_version": older.version if older else None,
        "to_version": newer.version,
        "rows": found.counts,
        "items_changed": found.items_changed,
        "schema": schema,
        "items": list(scope.items),
        "unmasked": sorted(scope.unmasked),
        "pseudonymised": sorted(scope.pseudonymised),
        "redacted": sorted(scope.redacted),
        "sample": found.sample,
    }
