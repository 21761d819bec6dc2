"""The one Settings class (environment prefix CARECHECK_), read once."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# The repository root: embedded defaults live under ./var next to it.
ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    """Every knob carecheck has. Unset values fall back to embedded defaults under ``var_dir``."""

    model_config = SettingsConfigDict(env_prefix="CARECHECK_", env_file=".env", extra="ignore")

    var_dir: Path = ROOT / "var"
    # CouchDB: empty means "the embedded pouchdb-server under var/couch" (started on demand).
    couchdb_url: str = ""
    couchdb_user: str = "admin"
    couchdb_password: str = Field(default="carecheck-local", repr=False)  # never in a logged repr
    submissions_db: str = "submissions"
    accounts_db: str = "carecheck_accounts"
    # SQL (SQLModel): empty means SQLite under var/.
    database_url: str = Field(default="", repr=False)  # may carry a password
    # The password for database_url when the URL names none (so it can come from a secret file, see below).
    database_password: SecretStr = Field(default=SecretStr(""), repr=False)
    # Celery: empty means kombu's SQLAlchemy transport on SQLite under var/ (no server needed).
    broker_url: str = Field(default="", repr=False)
    result_backend: str = Field(default="", repr=False)
    # Where `carecheck forms build` writes what the server serves.
    forms_src_dir: Path = ROOT / "forms" / "xlsforms"
    forms_build_dir: Path = Path("")
    # OpenRosa
    realm: str = "carecheck"
    max_submission_bytes: int = Field(default=100_000_000, gt=0)
    # Group commit of new submissions (sync_server/groupcommit.py): at most this many records per
    # `_bulk_docs`, gathered for at most this many milliseconds once one is waiting; 1 = a write per record.
    intake_batch_docs: int = Field(default=32, ge=1, le=1000)
    intake_batch_window_ms: float = Field(default=2.0, ge=0, le=1000)
    public_url: str = ""  # base URL phones use; empty = taken from the request
    # Reports: cells with a denominator below this are suppressed in shared outputs.
    min_cell_size: int = Field(default=5, ge=0)
    language: str = "vi"
    # Web console: minutes without a request after which an officer signs in again.
    console_idle_minutes: int = Field(default=30, ge=1, le=24 * 60)
    # Which node this is: "province" or "edge:<area code>" (written on each stored submission as received_by).
    node_name: str = "province"
    # Aggregator: changes per page (one SQL transaction each), and whether to run aggregator.hooks.after_page
    # (incremental indicator refresh) after each page — turn off for a bulk backfill, then rebuild
    # indicators once.
    ingest_page_size: int = Field(default=200, ge=1, le=5000)
    ingest_hooks: bool = True
    # Partitions of the feed (aggregator/feed.py: by a hash of the document id), each with its own checkpoint,
    # taken by whichever worker is free: more partitions let more workers ingest at once. Changing the number
    # starts the new partitions from the oldest checkpoint of the old ones (rows are upserts: no doubles).
    ingest_partitions: int = Field(default=1, ge=1, le=256)
    # Fault injection for the crash test (tests/aggregator/test_refresh_due.py): seconds the follower waits
    # between committing a page and refreshing its indicators, so a SIGKILL can land exactly there. 0 in use.
    refresh_pause_s: float = Field(default=0.0, ge=0)
    # The HMAC key of the child registry's pseudonyms (core/secrets.py): empty means a random key kept in
    # var_dir/secrets/pseudonym.key. SecretStr: repr, str and model_dump show '**********', never the key.
    pseudonym_key: SecretStr = Field(default=SecretStr(""), repr=False)

    @model_validator(mode="before")
    @classmethod
    def _from_files(cls, data: Any) -> Any:
        """``CARECHECK_<NAME>_FILE=/run/secrets/x`` reads <NAME> from that file (Docker secrets), unless
        ``CARECHECK_<NAME>`` itself is set. One trailing newline is dropped."""
        if not isinstance(data, dict):
            return data
        for name in cls.model_fields:
            var = f"CARECHECK_{name.upper()}_FILE"
            path = os.environ.get(var)
            if path and name not in data:
                try:
                    data[name] = Path(path).read_text(encoding="utf-8").removesuffix("\n")
                except OSError as exc:
                    raise ValueError(f"{var}: cannot read {path} ({exc.strerror})") from None
        return data

    @field_validator("couchdb_url", "database_url", "broker_url", "result_backend", "public_url")
    @classmethod
    def _strip(cls, v: str) -> str:
        return v.strip().rstrip("/") if v.startswith("http") else v.strip()

    # --- derived values (embedded defaults) ---
    @property
    def effective_database_url(self) -> str:
        if not self.database_url:
            return f"sqlite:///{self.var_dir / 'carecheck.db'}"
        password = self.database_password.get_secret_value()
        if not password:
            return self.database_url
        from sqlalchemy.engine import make_url

        url = make_url(self.database_url)
        if url.password is not None:
            return self.database_url  # the URL's own password wins
        return url.set(password=password).render_as_string(hide_password=False)

    @property
    def effective_broker_url(self) -> str:
        return self.broker_url or f"sqla+sqlite:///{self.var_dir / 'broker.sqlite'}"

    @property
    def effective_result_backend(self) -> str:
        return self.result_backend or f"db+sqlite:///{self.var_dir / 'results.sqlite'}"

    @property
    def effective_forms_build_dir(self) -> Path:
        return self.forms_build_dir if str(self.forms_build_dir) not in ("", ".") else self.var_dir / "forms"

    @property
    def embedded_couch(self) -> bool:
        return not self.couchdb_url


@lru_cache
def get_settings() -> Settings:
    return Settings()
