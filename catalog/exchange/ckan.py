"""The catalog as CKAN sees a portal: packages, organizations, groups and tags, for CKAN's
action API (``api/routes/ckan.py``), so that a CKAN client or harvester works unchanged.

A dataset is a package (name and id: the dataset's name), its provider an organization
(name: the department's unified social credit code, lower-cased as CKAN names are), its
classification a group, its keywords tags; the catalog fields CKAN has no place for are
extras. Its resources are the ways it is handed over: the rows API, and the bulk download
formats where the contract allows them. Search reuses the catalog search
(``catalog.discovery.search``); ``fq`` takes ``field:value`` terms on the facets.
"""

from __future__ import annotations

import re
import shlex
from datetime import UTC, datetime

from catalog.contracts import Contract
from catalog.discovery.search import quality_band
from catalog.exchange.guide import CLASSIFICATION
from catalog.store.versions import Version

GROUP_TITLES = CLASSIFICATION
# fq fields and the facet of the catalog search each one filters.
FQ_FIELDS = {
    "organization": "provider",
    "groups": "classification",
    "tags": "tags",
    "sharing_type": "sharing_type",
    "open": "open",
    "update_cycle": "update_cycle",
    "quality_band": "quality_band",
    "freshness": "freshness",
}
SORTS = {"score", "id", "name", "title_string", "metadata_modified", "metadata_created"}
_TERM = re.compile(r"^\+?([a-z_]+):(.+)$")


class CkanInputError(ValueError):
    """A parameter CKAN would refuse; ``field`` names it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def organization_name(contract: Contract) -> str:
    return contract.catalog.provider.code.lower()


def organization(contract: Contract, package_count: int | None = None) -> dict:
    provider = contract.catalog.provider
    found = {
        "id": organization_name(contract),
        "name": organization_name(contract),
        "title": provider.name,
        "display_name": provider.name,
        "description": provider.name_en,
        "type": "organization",
        "is_organization": True,
        "state": "active",
        "approval_status": "approved",
    }
    if package_count is not None:
        found["package_count"] = package_count
    return found


def group(code: str, package_count: int | None = None) -> dict:
    found = {
        "id": code,
        "name": code,
        "title": GROUP_TITLES[code],
        "display_name": GROUP_TITLES[code],
        "type": "group",
        "is_organization": False,
        "state": "active",
    }
    if package_count is not None:
        found["package_count"] = package_count
    return found


def _ckan_time(moment: datetime | None) -> str | None:
    """CKAN's timestamps: naive UTC, microseconds."""
    if moment is None:
        return None
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds")


def _resources(contract: Contract, base: str, modified: str | None) -> list[dict]:
    name = contract.dataset
    found = []
    if "api" in contract.catalog.sharing.method:
        found.append(
            {
                "id": f"{name}-api",
                "name": "数据接口 / Rows API",
                "url": f"{base}/datasets/{name}/rows",
                "format": "JSON",
                "mimetype": "application/json",
                "description": "Pages of rows within a granted scope (token and grant).",
            }
        )
    if "bulk_download" in contract.catalog.sharing.method:
        formats = ["CSV", "XLSX", "Parquet"]
        if any(item.type == "geojson" for item in contract.items):
            formats.append("GeoJSON")
        for fmt in formats:
            found.append(
                {
                    "id": f"{name}-{fmt.lower()}",
                    "name": f"{fmt} export",
                    "url": f"{base}/datasets/{name}/export?format={fmt.lower()}",
                    "format": fmt,
                    "description": "The whole version within a granted scope.",
                }
            )
    for position, resource in enumerate(found):
        resource.update(package_id=name, position=position, state="active", last_modified=modified)
    return found


def package(contract: Contract, versions: list[Version], base: str, freshness: str) -> dict:
    """The CKAN package of a dataset; ``versions`` newest first."""
    meta = contract.catalog
    latest = versions[0] if versions else None
    modified = _ckan_time(latest.published_at if latest else None)
    resources = _resources(contract, base, modified)
    tags = [{"name": word, "display_name": word, "state": "active"} for word in meta.keywords]
    extras = {
        "resource_code": meta.resource_code,
        "title_en": meta.name_en,
        "notes_en": meta.summary_en,
        "sharing_type": meta.sharing.type,
        "sharing_conditions": meta.sharing.conditions or "",
        "sharing_methods": ",".join(meta.sharing.method),
        "legal_basis": meta.sharing.legal_basis or "",
        "open": "true" if meta.open.open else "false",
        "open_conditions": meta.open.conditions or "",
        "update_cycle": meta.update_cycle,
        "quality_band": quality_band(latest.quality.get("quarantine_rate") if latest else None),
        "freshness": freshness,
        "row_count": str(latest.row_count) if latest else "",
        "related": ",".join(meta.related),
    }
    return {
        "id": contract.dataset,
        "name": contract.dataset,
        "title": meta.name,
        "notes": meta.summary,
        "type": "dataset",
        "state": "active",
        "private": False,
        "version": str(latest.version) if latest else None,
        "metadata_created": _ckan_time(versions[-1].published_at if versions else None),
        "metadata_modified": modified,
        "url": f"{base}/catalog/{contract.dataset}",
        "license_id": None,
        "owner_org": organization_name(contract),
        "organization": organization(contract),
        "groups": [group(meta.classification)],
        "tags": tags,
        "num_tags": len(tags),
        "resources": resources,
        "num_resources": len(resources),
        "extras": [{"key": key, "value": value} for key, value in extras.items()],
    }


def parse_fq(fq: str | None) -> dict[str, str]:
    """``field:value`` terms (Solr's syntax as CKAN clients write it: ``+`` in front,
    values in quotes) on the facets; anything else is refused with the field named."""
    filters: dict[str, str] = {}
    try:
        terms = shlex.split(fq or "")
    except ValueError as error:
        raise CkanInputError("fq", f"cannot parse fq: {error}") from error
    for term in terms:
        match = _TERM.match(term)
        if match is None or match.group(1) not in FQ_FIELDS:
            raise CkanInputError(
                "fq",
                f"unsupported fq term {term!r}; use field:value with one of {sorted(FQ_FIELDS)}",
            )
        value = match.group(2).strip('"')
        # An organization's name is its department's code in lower case (CKAN's names are);
        # the provider facet is the code itself.
        filters[FQ_FIELDS[match.group(1)]] = (
            value.upper() if match.group(1) == "organization" else value
        )
    return filters


def parse_sort(sort: str | None) -> tuple[str, bool] | None:
    """CKAN's ``sort`` (``score desc, metadata_modified desc`` by default): the first field
    decides (score: relevance)."""
    if not sort or not sort.strip():
        return None
    clauses = [clause.split() for clause in sort.split(",")]
    for clause in clauses:  # every clause valid; the first decides
        if not clause or clause[0] not in SORTS or len(clause) > 2:
            raise CkanInputError("sort", f"cannot sort so; fields: {sorted(SORTS)}")
        if len(clause) == 2 and clause[1] not in ("asc", "desc"):
            raise CkanInputError("sort", "each field is followed by asc or desc")
    first = clauses[0]
    if first[0] == "score":
        return None
    return first[0], len(first) > 1 and first[1] == "desc"
