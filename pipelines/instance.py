"""The Dagster instance of a govshare runtime folder, and how its services are started."""

import os
import shutil
import sys
from pathlib import Path

import dagster as dg

from catalog.settings import REPO_ROOT, Settings

# The daemon logs two INFO lines per sensor per tick ("Checking for new runs for sensor",
# "Sensor ... skipped"): with a sensor per dataset ticking every few seconds, most of the
# console. At WARNING it says only what needs attention; each sensor's ticks, skip reasons
# and runs stay in the UI. Runs print at dagster.yaml's python_log_level (INFO).
SERVICES_LOG_LEVEL = "warning"


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


def dagster_dev_command(settings: Settings) -> list[str]:
    """The Dagster UI and daemon for this runtime folder, quiet unless something is wrong.
    ``-W``: `dagster dev` tells developers that `dg dev` supersedes it (a FutureWarning),
    which is no news to a data officer."""
    return [
        sys.executable, "-W", "ignore::FutureWarning", "-m", "dagster", "dev",
        "-m", "pipelines.definitions", "-h", settings.api_host, "-p", str(settings.dagster_port),
        "--log-level", SERVICES_LOG_LEVEL,
    ]  # fmt: skip
