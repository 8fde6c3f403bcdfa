"""Catalog releases: the catalog versioned as a whole (SPEC §3; the compilation guide's
"dynamic update mechanism").

A release lists every dataset of the catalog with its resource code, its latest version
(number, snapshot, row count, schema hash) and the digest of its catalog metadata and data
items, whose text is kept once per digest in ``release_metadata``. A release is recorded in
the transaction of each publish, and whenever the contracts' metadata differ from the latest
release (:func:`sync`: at API start, by ``govshare catalog releases`` and the Dagster sweep).
A dataset keeps its resource code across releases, and a code never passes to another
dataset (:class:`ResourceCodeChanged`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

import duckdb

from catalog.contracts import Contract, code_identity
from catalog.store.lake import LAKE, META_SCHEMA, Lake
from catalog.store.versions import Version, latest_versions

RELEASES = f"{LAKE}.{META_SCHEMA}.releases"
METADATA = f"{LAKE}.{META_SCHEMA}.release_metadata"
# What a dataset's schema is in a release: the data items as a catalog reader sees them.
ITEM_FIELDS = ("name", "label", "type", "length", "description", "sensitivity", "required")


class ResourceCodeChanged(ValueError):
    """A contract gives a dataset another resource code than its releases, or takes one
    another dataset had: a published resource keeps its code (the compilation guide)."""


@dataclass(frozen=True)
class Release:
    release: int
    created_at: datetime
    reason: str
    datasets: dict[str, dict]
    """Dataset name -> resource code, version, snapshot, row count, schema hash, metadata
    digest (version fields None for a dataset listed but never published)."""

    def summary(self) -> dict:
        return {
            "release": self.release,
            "created_at": self.created_at.isoformat(),
            "reason": self.reason,
            "datasets": len(self.datasets),
        }


def metadata_document(contract: Contract) -> dict:
    """The catalog metadata and data items of a contract, as releases keep them."""
    return {
        "title": contract.title,
        "catalog": contract.catalog.model_dump(mode="json"),
        "items": [
            item.model_dump(mode="json", include=set(ITEM_FIELDS)) for item in contract.items
        ],
    }


def _digest(document: dict) -> str:
    text = json.dumps(document, ensure_ascii=False, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _entry(contract: Contract, version: Version | None, digest: str) -> dict:
    return {
        "resource_code": contract.catalog.resource_code,
        "version": version.version if version else None,
        "snapshot_id": version.snapshot_id if version else None,
        "row_count": version.row_count if version else None,
        "schema_hash": version.schema_hash if version else None,
        "metadata": digest,
    }


def _row(row: tuple) -> Release:
    return Release(int(row[0]), row[1], row[2], json.loads(row[3]))


def latest_release(con: duckdb.DuckDBPyConnection) -> Release | None:
    row = con.execute(
        f"SELECT release, created_at, reason, datasets FROM {RELEASES} "
        "ORDER BY release DESC LIMIT 1"
    ).fetchone()
    return _row(row) if row else None


def get_release(con: duckdb.DuckDBPyConnection, number: int) -> Release | None:
    row = con.execute(
        f"SELECT release, created_at, reason, datasets FROM {RELEASES} WHERE release = ?",
        [number],
    ).fetchone()
    return _row(row) if row else None


def list_releases(
    con: duckdb.DuckDBPyConnection, limit: int = 100, offset: int = 0
) -> tuple[list[Release], int]:
    """Releases, newest first, and how many there are."""
    rows = con.execute(
        f"SELECT release, created_at, reason, datasets FROM {RELEASES} "
        "ORDER BY release DESC LIMIT ? OFFSET ?",
        [limit, offset],
    ).fetchall()
    total = con.execute(f"SELECT count(*) FROM {RELEASES}").fetchone()[0]
    return [_row(r) for r in rows], int(total)


def metadata_documents(con: duckdb.DuckDBPyConnection, digests: Iterable[str]) -> dict[str, dict]:
    wanted = sorted(set(digests))
    if not wanted:
        return {}
    rows = con.execute(
        f"SELECT digest, document FROM {METADATA} WHERE list_contains(?, digest)", [wanted]
    ).fetchall()
    return {digest: json.loads(document) for digest, document in rows}


def _codes_held(con: duckdb.DuckDBPyConnection) -> tuple[dict[str, str], dict[str, str]]:
    """Every (dataset, resource code) pair any release listed: the code each dataset last
    had, and the dataset each code (as :func:`code_identity`) belonged to."""
    by_dataset: dict[str, str] = {}
    by_code: dict[str, str] = {}
    for (datasets,) in con.execute(f"SELECT datasets FROM {RELEASES} ORDER BY release").fetchall():
        for name, entry in json.loads(datasets).items():
            by_dataset[name] = entry["resource_code"]
            by_code.setdefault(code_identity(entry["resource_code"]), name)
    return by_dataset, by_code


def _code_problem(
    contract: Contract, by_dataset: dict[str, str], by_code: dict[str, str]
) -> str | None:
    code, name = contract.catalog.resource_code, contract.dataset
    held = by_dataset.get(name)
    if held is not None and held != code:
        return (
            f"{name}: catalog resource code {code!r} differs from {held!r}, the code its "
            f"catalog releases published; a resource keeps its code: restore "
            f"classification_code and sequence_code, or catalog the changed resource "
            f"as a new dataset"
        )
    owner = by_code.get(code_identity(code))
    if owner is not None and owner != name:
        return (
            f"{name}: catalog resource code {code!r} is {owner}'s in earlier releases; a "
            f"code is never given to another resource: choose another sequence_code"
        )
    return None


def check_resource_codes(con: duckdb.DuckDBPyConnection, contracts: Iterable[Contract]) -> None:
    """Refuse a contract whose resource code differs from its dataset's in the releases, or
    that takes a code another dataset had (even one since removed from the catalog)."""
    held = _codes_held(con)
    for contract in contracts:
        problem = _code_problem(contract, *held)
        if problem:
            raise ResourceCodeChanged(problem)


def record(
    con: duckdb.DuckDBPyConnection,
    contracts: dict[str, Contract],
    at: datetime,
    carried: dict[str, dict] | None = None,
) -> Release | None:
    """Record a release of ``contracts`` and their latest versions, if it differs from the
    latest release; ``carried``: entries kept as the latest release had them (datasets whose
    contract could not be released). Runs inside the caller's transaction."""
    check_resource_codes(con, contracts.values())
    latest = latest_versions(con)
    documents = {name: metadata_document(c) for name, c in contracts.items()}
    digests = {name: _digest(doc) for name, doc in documents.items()}
    datasets = dict(carried or {})
    for name, contract in sorted(contracts.items()):
        datasets[name] = _entry(contract, latest.get(name), digests[name])
    datasets = dict(sorted(datasets.items()))
    previous = latest_release(con)
    if previous is not None and previous.datasets == datasets:
        return None
    stored = metadata_documents(con, digests.values())
    for name, digest in digests.items():
        if digest not in stored:
            con.execute(
                f"INSERT INTO {METADATA} (digest, document) VALUES (?, ?)",
                [digest, json.dumps(documents[name], ensure_ascii=False, sort_keys=True)],
            )
            stored[digest] = documents[name]
    number = previous.release + 1 if previous else 1
    reason = _reason(previous.datasets if previous else {}, datasets)
    con.execute(
        f"INSERT INTO {RELEASES} (release, created_at, reason, datasets) VALUES (?, ?, ?, ?)",
        [number, at, reason, json.dumps(datasets, ensure_ascii=False)],
    )
    return Release(number, at, reason, datasets)


def record_for_publish(
    con: duckdb.DuckDBPyConnection,
    published: Contract,
    contracts: dict[str, Contract] | None,
    at: datetime,
) -> Release | None:
    """The release a publish makes, in its transaction: the publishing contract (refused if
    its resource code changed) with the folder's others (``contracts``). Another dataset's
    contract that cannot be released (folder unreadable, code changed) is listed as the
    latest release had it: one department's edit does not stop another's publish."""
    check_resource_codes(con, [published])
    held = _codes_held(con)
    others = {
        name: c
        for name, c in (contracts or {}).items()
        if name != published.dataset and _code_problem(c, *held) is None
    }
    previous = latest_release(con)
    carried = {
        name: entry
        for name, entry in (previous.datasets if previous else {}).items()
        if name != published.dataset
        and (contracts is None or name in contracts)
        and name not in others
    }
    return record(con, {**others, published.dataset: published}, at, carried)


def sync(
    lake: Lake, contracts: dict[str, Contract], timeout: float | None = None
) -> Release | None:
    """Record a release if the contracts' metadata (or a version) changed since the latest.
    Waits for the write lock at most ``timeout`` seconds (default: the setting), else
    :class:`~catalog.store.lake.LakeBusy`; the time is taken under the lock, so releases are
    in order."""
    with lake.reader() as con:  # most calls find nothing new: no write lock for them
        check_resource_codes(con, contracts.values())
        if not _differs(con, contracts):
            return None
    with lake.writer(timeout) as con:
        con.execute("BEGIN")
        try:
            release = record(con, contracts, datetime.now(UTC))
            if release is not None:
                con.execute(
                    f"CALL {LAKE}.set_commit_message('govshare', ?)",
                    [f"catalog release {release.release}"],
                )
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        return release


def _differs(con: duckdb.DuckDBPyConnection, contracts: dict[str, Contract]) -> bool:
    previous = latest_release(con)
    if previous is None:
        return True
    latest = latest_versions(con)
    now = {
        name: _entry(c, latest.get(name), _digest(metadata_document(c)))
        for name, c in contracts.items()
    }
    return now != previous.datasets


def _reason(before: dict[str, dict], after: dict[str, dict]) -> str:
    """One line of what a release changed, e.g. "population v3; licences metadata"."""
    parts = [
        f"{name} added" + (f" v{entry['version']}" if entry["version"] else "")
        for name, entry in after.items()
        if name not in before
    ]
    parts += [f"{name} removed" for name in before if name not in after]
    for name, entry in after.items():
        old = before.get(name)
        if old is None:
            continue
        if old["version"] != entry["version"]:
            parts.append(f"{name} v{entry['version']}")
        if old["metadata"] != entry["metadata"]:
            parts.append(f"{name} metadata")
    return "; ".join(parts) or "no change"


def _flat(value: object, path: str = "") -> dict[str, object]:
    """A nested document as dotted paths to its leaves (lists as whole values)."""
    if isinstance(value, dict):
        flat: dict[str, object] = {}
        for key, inner in value.items():
            flat.update(_flat(inner, f"{path}.{key}" if path else key))
        return flat
    return {path: value}


def _field_changes(before: dict, after: dict) -> list[dict]:
    old, new = _flat(before), _flat(after)
    return [
        {"field": field, "from": old.get(field), "to": new.get(field)}
        for field in sorted(set(old) | set(new))
        if old.get(field) != new.get(field)
    ]


def _item_changes(before: list[dict], after: list[dict]) -> dict:
    old = {item["name"]: item for item in before}
    new = {item["name"]: item for item in after}
    changed = [
        {"item": name, **change}
        for name in new
        if name in old
        for change in _field_changes(old[name], new[name])
    ]
    return {
        "added": [name for name in new if name not in old],
        "removed": [name for name in old if name not in new],
        "changed": changed,
    }


def diff(con: duckdb.DuckDBPyConnection, a: Release, b: Release) -> dict:
    """What changed from release ``a`` to ``b``: datasets added and removed, and for each
    dataset in both, its version and row count, its metadata field by field, its items."""
    documents = metadata_documents(
        con, [e["metadata"] for r in (a, b) for e in r.datasets.values()]
    )
    changed = []
    for name in sorted(set(a.datasets) & set(b.datasets)):
        old, new = a.datasets[name], b.datasets[name]
        if old == new:
            continue
        before, after = documents[old["metadata"]], documents[new["metadata"]]
        meta_before = {"title": before["title"], **before["catalog"]}
        meta_after = {"title": after["title"], **after["catalog"]}
        changed.append(
            {
                "dataset": name,
                "version": {"from": old["version"], "to": new["version"]},
                "row_count": {
                    "from": old["row_count"],
                    "to": new["row_count"],
                    "change": (new["row_count"] or 0) - (old["row_count"] or 0),
                },
                "schema_changed": old["schema_hash"] != new["schema_hash"]
                and old["schema_hash"] is not None,
                "metadata": _field_changes(meta_before, meta_after),
                "items": _item_changes(before["items"], after["items"]),
            }
        )
    return {
        "from": a.release,
        "to": b.release,
        "added": sorted(set(b.datasets) - set(a.datasets)),
        "removed": sorted(set(a.datasets) - set(b.datasets)),
        "changed": changed,
    }
