"""A dataset version as a Frictionless data package: ``datapackage.json`` with a Table
Schema derived from the contract, and the rows within the caller's scope as CSV.

The schema describes what the file holds, not what the lake holds: an item shown in clear
keeps its type and constraints (required, allowed values, pattern, length, range) and the
key stays the primary key where every key item is in clear; a masked, pseudonymised or
redacted item is a plain string without constraints (its values are not the item's), and
says so in its description.
"""

from __future__ import annotations

from catalog.contracts import Contract, DataItem
from catalog.sharing.access import Scope
from catalog.sharing.views import how_shown, shown_in_clear
from catalog.store.versions import Version

# The contracts' item types in Table Schema (specs.frictionlessdata.io/table-schema).
TYPES = {
    "string": "string",
    "integer": "integer",
    "decimal": "number",
    "date": "date",
    "timestamp": "datetime",
    "boolean": "boolean",
    "geojson": "geojson",
}
DATA_FILE = "data.csv"


def _field(contract: Contract, scope: Scope, item: DataItem) -> dict:
    field: dict = {"name": item.name, "title": item.label, "description": item.description}
    how = how_shown(contract, scope, item.name)
    if how != "clear":
        field.update(type="string", description=f"{item.description} ({how} in this scope)")
        return field
    field["type"] = TYPES[item.type]
    constraints: dict = {}
    if item.required:
        constraints["required"] = True
    if item.allowed:
        constraints["enum"] = list(item.allowed)
    if item.pattern and item.type == "string":
        constraints["pattern"] = item.pattern.removeprefix("^").removesuffix("$")
    if item.length and item.type == "string":
        constraints["maxLength"] = item.length
    for bound, name in ((item.min, "minimum"), (item.max, "maximum")):
        if bound is not None and item.type in ("integer", "decimal", "date"):
            constraints[name] = bound
    if constraints:
        field["constraints"] = constraints
    return field


def datapackage(contract: Contract, version: Version, scope: Scope) -> dict:
    """The ``datapackage.json`` of a version's export in a scope (data in ``data.csv``)."""
    meta = contract.catalog
    fields = [_field(contract, scope, i) for i in contract.items if i.name in scope.items]
    schema: dict = {"fields": fields, "missingValues": [""]}
    if all(shown_in_clear(contract, scope, k) for k in contract.key):
        schema["primaryKey"] = list(contract.key)
    return {
        "profile": "tabular-data-package",
        "name": contract.dataset.replace("_", "-"),
        "id": meta.resource_code,
        "title": meta.name,
        "description": meta.summary,
        "version": f"{version.version}.0.0",
        "created": version.published_at.isoformat(),
        "keywords": list(meta.keywords),
        "resources": [
            {
                "profile": "tabular-data-resource",
                "name": contract.dataset.replace("_", "-"),
                "path": DATA_FILE,
                "format": "csv",
                "mediatype": "text/csv",
                "encoding": "utf-8",
                "schema": schema,
            }
        ],
    }
