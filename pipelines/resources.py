"""Dagster resources: the platform's settings, lake, state store and contracts, on demand."""

from functools import cached_property

import dagster as dg

from catalog.contracts import Contract, load_contracts
from catalog.runtime import secure_home
from catalog.settings import Settings
from catalog.state.db import StateStore
from catalog.store.lake import Lake


class PlatformResource(dg.ConfigurableResource):
    """Gives assets the lake, the platform state (the audit log of runs) and contracts.
    ``home`` overrides ``GOVSHARE_HOME`` (tests)."""

    home: str | None = None

    @cached_property
    def settings(self) -> Settings:
        settings = Settings(home=self.home) if self.home else Settings()
        secure_home(settings)
        return settings

    @cached_property
    def lake(self) -> Lake:
        return Lake(self.settings)

    @cached_property
    def store(self) -> StateStore:
        return StateStore(self.settings)

    def contract(self, dataset: str) -> Contract:
        return load_contracts(self.settings.schemas_dir)[dataset]
