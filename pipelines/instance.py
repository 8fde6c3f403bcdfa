"""The Dagster instance of a govshare runtime folder."""

import os
import shutil
from pathlib import Path

import dagster as dg

from catalog.settings import REPO_ROOT, Settings


def prepare_dagster_home(settings: Settings) -> Path:
    """Copy the project's dagster.yaml into ``<home>/dagster`` and point DAGSTER_HOME there."""
    home = settings.folder("dagster")
    home.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(REPO_ROOT / "dagster.yaml", home / "dagster.yaml")
    os.environ["DAGSTER_HOME"] = str(home)
    return home


def instance_for(settings: Settings) -> dg.DagsterInstance:
    prepare_dagster_home(settings)
    return dg.DagsterInstance.get()
