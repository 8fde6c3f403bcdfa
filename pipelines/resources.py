"""Dagster resources: the platform's settings, lake and contracts, built on demand."""

from functools import cached_property

import dagster as dg

from catalog.contracts import Contract, load_contracts
from catalog.lake import Lake
from catalog.settings import Settings


class PlatformResource(dg.ConfigurableResource):
    """Gives assets the lake and contracts. ``home`` overrides ``GOVSHARE_HOME`` (tests)."""

    home: str | None = None

    @cached_property
    def settings(self) -> Settings:
        return Settings(home=self.home) if self.home else Settings()

    @cached_property
    def lake(self) -> Lake:
        return Lake(self.settings)

    def contract(self, dataset: str) -> Contract:
        return load_contracts(self.settings.schemas_dir)[dataset]
