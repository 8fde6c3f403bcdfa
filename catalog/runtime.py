"""The runtime folder is owner-only: it holds unmasked Parquet files, the archived
deliveries, the platform state (token hashes, the audit log) and the pseudonym secret.

``secure_home`` runs wherever a process starts (the state store, the lake, the API, the
CLI, Dagster's resource): it sets the process's umask to 0o077, so every file and folder
created afterwards is readable by the owner only, and creates the home folder 0700 (or
takes group and other access away from an existing one, which closes everything below it).
"""

from __future__ import annotations

import os

from catalog.settings import Settings

OWNER_ONLY_UMASK = 0o077
HOME_MODE = 0o700


def secure_home(settings: Settings) -> None:
    """Owner-only from here on: the umask of this process and the home folder itself."""
    os.umask(OWNER_ONLY_UMASK)
    home = settings.home
    home.mkdir(mode=HOME_MODE, parents=True, exist_ok=True)
    if home.stat().st_mode & 0o777 != HOME_MODE:
        home.chmod(HOME_MODE)
