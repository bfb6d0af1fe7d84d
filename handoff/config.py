"""Settings from the environment (prefix `HANDOFF_`), shared by the worker, the API and the CLI."""

from __future__ import annotations

from pathlib import Path

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
