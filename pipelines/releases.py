"""The catalog's releases from Dagster: a contract whose catalog metadata changed is released
without waiting for a publish or an API start (:func:`catalog.store.releases.sync`)."""

from __future__ import annotations

import dagster as dg

from catalog.contracts import load_contracts
from catalog.store.lake import LakeBusy
from catalog.store.releases import sync
from pipelines.resources import PlatformResource

RELEASE_SECONDS = 120
LOCK_SECONDS = 5.0  # a publish holding the lake records its own release


@dg.sensor(
    name="catalog_release",
    minimum_interval_seconds=RELEASE_SECONDS,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Record a catalog release when contracts' catalog metadata changed",
)
def catalog_release(context: dg.SensorEvaluationContext, platform: PlatformResource) -> None:
    contracts = load_contracts(platform.settings.schemas_dir)
    try:
        release = sync(platform.lake, contracts, timeout=LOCK_SECONDS)
    except LakeBusy as busy:  # a run is publishing: the next tick (or its publish) records it
        context.log.info(str(busy))
        return
    if release is not None:
        context.log.info(f"catalog release {release.release}: {release.reason}")
