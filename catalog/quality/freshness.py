"""Freshness: is a dataset's latest version as recent as its update cycle promises?

A dataset is stale once its latest version is older than its contract's update cycle plus
a grace (``freshness_grace_ratio`` of the cycle, so a daily delivery that comes a few hours
late is not yet overdue). It has been stale since ``published_at + cycle + grace``. Cycles
of a month or longer use their longest length (31, 92, 366 days), so a short month never
makes a dataset overdue early. A dataset never published is ``never_published`` (no data
to be stale; the catalog says so).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from catalog.contracts import Contract
from catalog.store.versions import Version

CYCLES: dict[str, timedelta] = {
    "real_time": timedelta(hours=1),
    "daily": timedelta(days=1),
    "weekly": timedelta(days=7),
    "monthly": timedelta(days=31),
    "quarterly": timedelta(days=92),
    "yearly": timedelta(days=366),
}
FreshnessStatus = Literal["fresh", "stale", "never_published"]


@dataclass(frozen=True)
class Freshness:
    dataset: str
    update_cycle: str
    status: FreshnessStatus
    last_published_at: datetime | None
    due_at: datetime | None
    """When the next version is due at the latest (cycle + grace after the last one)."""
    stale_since: datetime | None

    @property
    def stale(self) -> bool:
        return self.status == "stale"

    def as_dict(self) -> dict:
        def iso(value: datetime | None) -> str | None:
            return value.isoformat() if value else None

        return {
            "dataset": self.dataset,
            "update_cycle": self.update_cycle,
            "status": self.status,
            "stale": self.stale,
            "last_published_at": iso(self.last_published_at),
            "due_at": iso(self.due_at),
            "stale_since": iso(self.stale_since),
        }


def allowed_age(update_cycle: str, grace_ratio: float) -> timedelta:
    """How old the latest version may be before the dataset is overdue."""
    cycle = CYCLES[update_cycle]
    return cycle + cycle * grace_ratio


def freshness(
    contract: Contract, latest: Version | None, now: datetime, grace_ratio: float
) -> Freshness:
    cycle = contract.catalog.update_cycle
    if latest is None:
        return Freshness(contract.dataset, cycle, "never_published", None, None, None)
    due = latest.published_at + allowed_age(cycle, grace_ratio)
    stale = now > due
    return Freshness(
        contract.dataset,
        cycle,
        "stale" if stale else "fresh",
        latest.published_at,
        due,
        due if stale else None,
    )


def all_freshness(
    contracts: Iterable[Contract],
    latest: Mapping[str, Version],
    now: datetime,
    grace_ratio: float,
) -> list[Freshness]:
    """Every dataset's freshness, stale ones first (longest overdue first), then the rest."""
    result = [freshness(c, latest.get(c.dataset), now, grace_ratio) for c in contracts]
    order = {"stale": 0, "never_published": 1, "fresh": 2}
    return sorted(
        result,
        key=lambda f: (
            order[f.status],
            f.stale_since or f.due_at or now,
            f.dataset,
        ),
    )


def fresh_share(
    published_at: Iterable[datetime],
    update_cycle: str,
    start: datetime,
    end: datetime,
    grace_ratio: float,
) -> float | None:
    """Share of [start, end) during which the dataset was not overdue, given the publish times
    of all its versions (timeliness in a scorecard). None when it was never published before
    ``end`` (no data, nothing to be late with)."""
    times = sorted(t for t in published_at if t < end)
    if not times:
        return None
    age = allowed_age(update_cycle, grace_ratio)
    overdue = timedelta(0)
    # Between consecutive versions (and after the last) the dataset is overdue from
    # publish + age until the next publish.
    for current, following in zip(times, [*times[1:], end], strict=True):
        late_from = max(current + age, start)
        late_until = min(following, end)
        if late_until > late_from:
            overdue += late_until - late_from
    # Before the first version (inside the window) there was nothing to be late with.
    window = end - max(start, times[0])
    if window <= timedelta(0):
        return None
    return max(0.0, 1 - overdue / window)
