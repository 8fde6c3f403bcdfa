"""One place where configuration enters: environment variables prefixed ``GOVSHARE_``."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parents[1]


class Settings(BaseSettings):
    """Platform settings. Every field is documented in docs/configuration.md (a test checks)."""

    model_config = SettingsConfigDict(
        env_prefix="GOVSHARE_", env_file=".env", extra="ignore", use_attribute_docstrings=True
    )

    home: Path = REPO_ROOT / "runtime"
    """Runtime folder: lake, staging, landing, archive, rejected, Dagster storage."""
    schemas_dir: Path = REPO_ROOT / "schemas"
    """Folder of dataset contracts (one YAML file per dataset)."""
    lake_catalog: str = ""
    """DuckLake catalog database. Empty: SQLite file ``<home>/lake/catalog.sqlite``;
    a ``postgres:...`` connection string moves it to PostgreSQL."""
    lake_data_path: str = ""
    """Where DuckLake writes Parquet files. Empty: ``<home>/lake/data/``."""
    api_host: str = "127.0.0.1"
    """Address the API server binds to."""
    api_port: int = 8000
    """Port of the API server."""
    public_url: str = ""
    """The API's address as other systems reach it: the base of the catalog's DCAT-AP IRIs
    (``/catalog.jsonld``). Empty: the address the caller used."""
    office_name: str = "市人民政府信息办公室"
    """The office that publishes the catalog (its DCAT-AP publisher)."""
    office_name_en: str = "Municipal Government Information Office"
    dagster_port: int = 3000
    """Port of the Dagster UI started by ``govshare demo``."""
    page_size_max: int = 1000
    """Largest page of rows the API returns in one response."""
    read_copies_mb: int = Field(4096, ge=0)
    """Disk budget of the read-optimised copies of published versions, in MB (decision 50;
    least recently used copies go beyond it). 0: no copies, every page reads the lake."""
    max_body_bytes: int = 1024 * 1024
    """Largest request body the API reads, in bytes (HTTP 413 beyond, the rest unread)."""
    duckdb_memory_limit: str = "4GB"
    """Memory limit of each DuckDB connection (bulk work spills to disk beyond it)."""
    duckdb_threads: int = 2
    """Worker threads of each DuckDB connection."""
    lake_lock_timeout_seconds: float = 300
    """Seconds a lake write waits for another process's write to end before the run fails
    (recorded as failed, its files filed in ``rejected/`` with the reason)."""
    state_db: str = ""
    """Platform-state database (users, tokens, requests, grants, audit) as an SQLAlchemy URL.
    Empty: SQLite file ``<home>/state.sqlite``; e.g. ``postgresql+psycopg://host/govshare``."""
    token_ttl_days: int = 90
    """Days a newly issued bearer token stays valid."""
    activation_ttl_days: int = 7
    """Days a one-time activation code (a new or reset user's) stays valid."""
    refusal_log_window_minutes: int = 10
    """Refusals of one kind by one caller (revoked token, wrong role, rate limit, denied read)
    get one audit entry per this many minutes; the next one counts those left out."""
    request_deadline_working_days: int = 10
    """Working days the reviewers have to decide an access request before it is overdue."""
    verify_rate_per_minute: int = 30
    """Verification calls one user may make per service and minute (HTTP 429 beyond)."""
    pseudonym_key_file: Path | None = None
    """File of the secret that keys pseudonyms of masked items (32 random bytes, created
    owner-only on first use). Empty: ``<home>/secrets/pseudonym.key``. Keep it out of the
    lake and back it up: without it, pseudonyms handed out before can no longer be matched."""
    timezone: str = "Asia/Shanghai"
    """Local time zone of the office: working days, "valid today", deadlines and the "today"
    of date rules (``not_in_future``, fixed once per ingest run) use it."""

    freshness_grace_ratio: float = Field(0.25, ge=0, le=10)
    """A dataset is stale once its latest version is older than its update cycle plus this
    share of the cycle (0.25: a daily dataset after 30 hours)."""
    quarantine_warn_rate: float = Field(0.01, ge=0, le=1)
    """A published delivery quarantining more than this share of its rows notifies the
    office and the providing department (its contract's threshold still decides rejection)."""
    webhook_url: str = ""
    """Where notifications are POSTed as JSON (empty: stored and listed only)."""
    webhook_attempts: int = Field(5, ge=1, le=20)
    """Attempts per notification before the webhook delivery is given up (and kept failed)."""
    webhook_backoff_seconds: float = Field(1.0, ge=0, le=3600)
    """Wait before the second attempt; doubled before each further one."""
    webhook_timeout_seconds: float = Field(5.0, gt=0, le=300)
    """Seconds one webhook attempt may take."""
    score_weights: dict[str, float] = {
        "completeness": 0.2,
        "validity": 0.2,
        "uniqueness": 0.1,
        "consistency": 0.1,
        "timeliness": 0.2,
        "use": 0.2,
    }
    """Weights of the department score (JSON in the environment); a measure without data in
    a month is left out and the others' weights rescaled. Shown with every score."""

    @cached_property
    def lake_catalog_uri(self) -> str:
        return self.lake_catalog or f"sqlite:{self.home / 'lake' / 'catalog.sqlite'}"

    @cached_property
    def state_url(self) -> str:
        return self.state_db or f"sqlite:///{self.home / 'state.sqlite'}"

    @cached_property
    def pseudonym_key_path(self) -> Path:
        return self.pseudonym_key_file or self.home / "secrets" / "pseudonym.key"

    @cached_property
    def lake_data_uri(self) -> str:
        return self.lake_data_path or f"{self.home / 'lake' / 'data'}/"

    def folder(self, kind: str, dataset: str | None = None) -> Path:
        """A runtime sub-folder (``landing``, ``archive``, ``rejected``, ``staging``...)."""
        path = self.home / kind
        return path / dataset if dataset else path
