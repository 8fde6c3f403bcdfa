"""The catalog as CKAN sees a portal: packages, organizations, groups and tags, for CKAN's
action API (``api/routes/ckan.py``), so that a CKAN client or harvester works unchanged.

A dataset is a package (name and id: the dataset's name), its provider an organization
(name: the department's unified social credit code, lower-cased as CKAN names are), its
classification a group, its keywords tags; the catalog fields CKAN has no place for are
extras. Its resources are the ways it is handed over: the rows API, and the bulk download
formats where the contract allows them. Search reuses the catalog search
(``catalog.discovery.search``); ``fq`` takes ``field:value`` terms on the facets.

The rows API resource is CKAN's DataStore resource of the dataset (``datastore_active``):
``datastore_search`` reads it by its id (``<dataset>-api``) or the dataset's name. This
module turns CKAN's parameters into the rows API's (filters as ``item=value`` pairs, the
sort as its ``sort``) and describes the fields as the caller's scope shows them; the rows,
grants, masks and audit are the rows API's own (``api/routes/ckan.py``).
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Container
from dataclasses import dataclass
from datetime import UTC, datetime

from catalog.contracts import Contract
from catalog.discovery.search import quality_band
from catalog.exchange.guide import CLASSIFICATION
from catalog.sharing.access import Scope
from catalog.sharing.views import how_shown
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
API_RESOURCE = "api"
"""Suffix of the id of a dataset's rows API resource (``population-api``)."""
# The contracts' item types as CKAN's DataStore names its column types (PostgreSQL's).
DATASTORE_TYPES = {
    "string": "text",
    "integer": "int8",
    "decimal": "numeric",
    "date": "date",
    "timestamp": "timestamp",
    "boolean": "bool",
    "geojson": "text",  # GeoJSON as text, as the rows API hands it out
}
RECORDS_FORMATS = ("objects", "lists", "csv", "tsv")
"""``records_format`` values CKAN knows; only ``objects`` is served (decision 56)."""
_ECHO = 100  # characters of a caller's field name repeated in an error
_UNSAFE = re.compile("[\x00-\x1f\x7f\ud800-\udfff]")
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
                "id": api_resource_id(name),
                "name": "数据接口 / Rows API",
                "url": f"{base}/datasets/{name}/rows",
                "format": "JSON",
                "mimetype": "application/json",
                "description": "Pages of rows within a granted scope (token and grant); "
                "also through datastore_search.",
                "datastore_active": True,
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
                    "datastore_active": False,
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


# A Solr range on a package's times, as harvesters send for incremental runs:
# metadata_modified:[2026-01-01T00:00:00Z TO *], braces for an exclusive bound.
_RANGE = re.compile(
    r"\+?(metadata_modified|metadata_created):([\[{])\s*(\S+)\s+TO\s+(\S+?)\s*([\]}])"
)


@dataclass(frozen=True)
class TimeRange:
    field: str
    low: datetime | None
    high: datetime | None
    low_inclusive: bool
    high_inclusive: bool

    def holds(self, value: str | None) -> bool:
        """Whether a package's time (CKAN's naive UTC text) is in the range."""
        if value is None:
            return False
        moment = datetime.fromisoformat(value)
        if self.low is not None and (
            moment < self.low or (moment == self.low and not self.low_inclusive)
        ):
            return False
        return (
            self.high is None or moment < self.high or (moment == self.high and self.high_inclusive)
        )


def _bound(text: str, now: datetime) -> datetime | None:
    """A range bound: ``*`` (open), ``NOW``, or an ISO 8601 time (naive means UTC)."""
    if text == "*":
        return None
    if text == "NOW":
        return now
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise CkanInputError(
            "fq", f"range bound {text[:40]!r} is not *, NOW or an ISO 8601 time"
        ) from None
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment


def split_ranges(fq: str | None, now: datetime) -> tuple[str, list[TimeRange]]:
    """The time ranges of ``fq`` and what is left of it (the facet terms)."""
    ranges = [
        TimeRange(
            m.group(1),
            _bound(m.group(3), now),
            _bound(m.group(4), now),
            m.group(2) == "[",
            m.group(5) == "]",
        )
        for m in _RANGE.finditer(fq or "")
    ]
    return _RANGE.sub(" ", fq or ""), ranges


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


# --- datastore_search ------------------------------------------------------------------


def api_resource_id(dataset: str) -> str:
    """The id of a dataset's rows API resource, the one ``datastore_search`` reads."""
    return f"{dataset}-{API_RESOURCE}"


def resource_dataset(resource_id: str, datasets: Container[str]) -> str | None:
    """The dataset a ``datastore_search`` resource id names: the id of its rows API
    resource, or its name (what CKAN clients that know only the package send); None for
    anything else."""
    if resource_id in datasets:
        return resource_id
    name = resource_id.removesuffix(f"-{API_RESOURCE}")
    return name if name != resource_id and name in datasets else None


def echo(text: str, limit: int = _ECHO) -> str:
    """A caller's text as an error may repeat it: short, and encodable."""
    return _UNSAFE.sub("\ufffd", text[:limit])


def _json(raw: object, field: str) -> object:
    """A parameter that comes as JSON text in a query string (a JSON body holds it as is)."""
    if not isinstance(raw, str):
        return raw
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):
        raise CkanInputError(field, "Could not parse as valid JSON") from None


def datastore_filters(raw: object) -> list[tuple[str, str]]:
    """CKAN's ``filters`` (``{"item": value}``, a list of values for any of them) as the
    rows API's ``item=value`` pairs. Values are text, whole numbers or booleans: the items
    a filter may compare have no other kind."""
    given = _json(raw, "filters")
    if not isinstance(given, dict):
        raise CkanInputError("filters", "Must be a dictionary of field: value or list of values")
    pairs = []
    for name, value in given.items():
        values = value if isinstance(value, list) else [value]
        if not values:
            raise CkanInputError("filters", f'field "{echo(name)}": give at least one value')
        pairs += [(name, _filter_text(name, v)) for v in values]
    return pairs


def _filter_text(name: str, value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | str):
        return str(value)
    raise CkanInputError(
        "filters", f'field "{echo(name)}": values are text, whole numbers or booleans'
    )


def _strings(raw: object, field: str) -> list[str]:
    """A list of strings, or one comma-separated string (CKAN's list_of_strings_or_string)."""
    if isinstance(raw, str):
        return [part.strip() for part in raw.split(",")]
    if isinstance(raw, list) and all(isinstance(part, str) for part in raw):
        return [part.strip() for part in raw]
    raise CkanInputError(field, "Must be a list of strings or a comma-separated string")


def datastore_field_names(raw: object) -> list[str]:
    """CKAN's ``fields``: the items each record holds, in this order."""
    names = _strings(raw, "fields")
    if not all(names):
        raise CkanInputError("fields", "A field name is empty")
    if len(set(names)) != len(names):
        raise CkanInputError("fields", "A field is named twice")
    return names


def datastore_sort(raw: object) -> str | None:
    """CKAN's ``sort`` (``"region_code, birth_date desc"``, or a list of such clauses) as
    the rows API's (``region_code,-birth_date``); None for no sort."""
    clauses = [clause for clause in _strings(raw, "sort") if clause]
    parts = []
    for clause in clauses:
        words = clause.split()
        direction = words[1].lower() if len(words) == 2 else "asc"
        if len(words) > 2 or direction not in ("asc", "desc"):
            raise CkanInputError("sort", f'cannot sort by "{echo(clause)}": field [asc|desc]')
        name = words[0].strip('"')
        parts.append(("-" if direction == "desc" else "") + name)
    return ",".join(parts) or None


def check_fields(contract: Contract, names: list[str], field: str) -> None:
    """CkanInputError naming ``field`` for a name that is not one of the dataset's items
    (CKAN's ``_id`` is not: rows are told apart by the dataset's key)."""
    for name in names:
        if name not in contract.item_names:
            raise CkanInputError(field, f'field "{echo(name)}" not in resource')


def datastore_fields(contract: Contract, scope: Scope, names: tuple[str, ...]) -> list[dict]:
    """CKAN's ``fields`` of a result: each item's DataStore type as the scope shows it (an
    item masked, pseudonymised or redacted is text, whatever its type) and its data
    dictionary entry (``info``: label and notes)."""
    fields = []
    for name in names:
        item = contract.item(name)
        how = how_shown(contract, scope, name)
        clear = how == "clear"
        notes = item.description if clear else f"{item.description} ({how} in this scope)"
        fields.append(
            {
                "id": name,
                "type": DATASTORE_TYPES[item.type] if clear else "text",
                "info": {"label": item.label, "notes": notes},
            }
        )
    return fields
