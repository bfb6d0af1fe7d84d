"""Settings from the environment (prefix `HANDOFF_`), shared by the worker, the API and the CLI."""

from __future__ import annotations

from pathlib import Path

from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from handoff import TASK_QUEUE
from handoff.bot import DEFAULT_KNOWLEDGE_BASE


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="HANDOFF_")

    temporal_address: str = "localhost:7233"
    namespace: str = "default"
    task_queue: str = TASK_QUEUE
    # SQLite file by default; e.g. postgresql+psycopg://user@host:5432/handoff in production.
    database_url: str = "sqlite:///.handoff/handoff.db"
    knowledge_base: Path = DEFAULT_KNOWLEDGE_BASE
    # The API's agents: a TOML file of [[agents]] tables (id, name, token); unset = the demo agents.
    agents_file: Path | None = None
    # Signs customer tokens (HMAC). Unset: a random secret is created once in
    # `customer_token_secret_file`, or next to the SQLite database file, or in .handoff/.
    # Set it explicitly when several API processes share a PostgreSQL database.
    customer_token_secret: SecretStr | None = None
    customer_token_secret_file: Path | None = None
    # How long an API call waits for Temporal (seconds) before answering 503.
    api_temporal_timeout: float = 5.0
