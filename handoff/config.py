"""Settings from the environment (prefix `HANDOFF_`), shared by the worker, the API and the CLI."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any

from pydantic import BeforeValidator, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from handoff import TASK_QUEUE
from handoff.availability import DEFAULT_CAPACITY, AssignmentMode
from handoff.bot import DEFAULT_KNOWLEDGE_BASE
from handoff.models import TimerSettings

DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(value: Any) -> Any:
    """`90s`, `10m`, `24h`, `2d` or a number of seconds; `0` turns a timer off."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return timedelta(seconds=value)
    if isinstance(value, str):
        match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*", value)
        if match is None:
            raise ValueError(f"{value!r} is not a duration: write e.g. 90s, 10m, 24h, or 0 for off")
        return timedelta(seconds=float(match[1]) * DURATION_UNITS[match[2] or "s"])
    return value


Duration = Annotated[timedelta, BeforeValidator(parse_duration)]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="HANDOFF_")

    temporal_address: str = "localhost:7233"
    namespace: str = "default"
    # TLS to Temporal (handoff/connection.py): plain gRPC unless one of these is set. `temporal_tls`
    # verifies the server with the system's roots; a CA file (PEM) with a private CA; a client
    # certificate and key make it mutual TLS; `temporal_tls_server_name` overrides the name checked.
    temporal_tls: bool = False
    temporal_tls_ca_file: Path | None = None
    temporal_tls_cert_file: Path | None = None
    temporal_tls_key_file: Path | None = None
    temporal_tls_server_name: str | None = None
    task_queue: str = TASK_QUEUE
    # SQLite file by default; e.g. postgresql+psycopg://user@host:5432/handoff in production.
    database_url: str = "sqlite:///.handoff/handoff.db"
    knowledge_base: Path = DEFAULT_KNOWLEDGE_BASE
    # Conversations a worker keeps in memory; the others are replayed from their (short,
    # continue-as-new bounded) history on their next event. Bounds memory however many are open.
    max_cached_conversations: int = 200
    # The API's agents: a TOML file of [[agents]] tables (id, name, token); unset = the demo agents.
    agents_file: Path | None = None
    # Signs customer tokens (HMAC). Unset: a random secret is created once in
    # `customer_token_secret_file`, or next to the SQLite database file, or in .handoff/.
    # Set it explicitly when several API processes share a PostgreSQL database.
    customer_token_secret: SecretStr | None = None
    # Which sites may show the chat widget (/chat/) in a frame: the CSP frame-ancestors sources,
    # e.g. "https://www.example.com https://shop.example.com"; the default allows only Handoff's own origin.
    widget_frame_ancestors: str = "'self'"
    customer_token_secret_file: Path | None = None
    # How long an API call waits for Temporal (seconds) before answering 503.
    api_temporal_timeout: float = 5.0
    # Payload encryption (see handoff/codec.py). Keys as "id:base64key,id:base64key" (16, 24 or
    # 32 bytes each), the first one encrypts, all of them decrypt: prepend a new key to rotate,
    # drop an old one only once no open conversation holds payloads under it. Unset: keys are
    # read from `encryption_key_file` (same format, one per line), else from `encryption.keys`
    # next to the SQLite database file (or in .handoff/), created on first use. Every worker
    # and API process must see the same keys.
    encryption_keys: SecretStr | None = None
    encryption_key_file: Path | None = None
    # The codec endpoint (/codec/decode, /codec/encode) answers only requests that carry
    # "Authorization: Bearer <codec_token>"; unset, it refuses everything.
    codec_token: SecretStr | None = None
    # Browser origins (the Temporal UI) allowed to call the codec endpoint; comma-separated in the env.
    codec_cors_origins: Annotated[list[str], NoDecode] = ["http://localhost:8080", "http://localhost:8233"]
    # Push (docs/push.md): an SSE comment this often keeps idle streams open through proxies;
    # on SQLite each API process reads new events this often (PostgreSQL wakes it by NOTIFY).
    push_heartbeat_seconds: float = 15.0
    push_poll_seconds: float = 0.1
    # Webhooks: a TOML file of [[webhooks]] tables (name, url, secret, events); unset = none.
    webhooks_file: Path | None = None
    # Prometheus: `/metrics` on the API needs "Authorization: Bearer <metrics_token>"; unset, it
    # answers loopback clients only. The worker serves its own `/metrics` on this address
    # (host:port) when set; unset, none (see handoff/telemetry.py).
    metrics_token: SecretStr | None = None
    worker_metrics_address: str | None = None

    # Issue 9: the conversation timers (README, "Timers"). Each conversation keeps the values it
    # started with, so changing them affects new conversations only.
    bot_idle_close: Duration = timedelta(hours=24)
    human_idle_close: Duration = timedelta(0)
    waiting_sla: Duration = timedelta(minutes=2)
    waiting_notice: str | None = None
    first_reply_sla: Duration = timedelta(minutes=5)
    first_reply_sla_return: bool = False
    # AI assist: an internal handover summary of the bot session at each take-over (new
    # conversations; see handoff/handover.py).
    handover_summary: bool = True
    # AI assist, suggested replies: blend word scores with WordLlama embeddings (the model ships in
    # the `wordllama` wheel, ~16 MB; see README, "AI assist", for what it changes).
    assist_embeddings: bool = True
    # Optional: a team's OpenAI-compatible language model rewrites suggestions and the handover
    # summary (handoff/llm.py); unset, nothing is sent anywhere.
    llm_base_url: str | None = None
    llm_model: str | None = None
    llm_api_key: SecretStr | None = None
    llm_timeout: float = 10.0
    # How long after an agent closed a conversation its customer may rate it.
    rating_window: Duration = timedelta(hours=24)
    # Issue 10, agents at work (docs/agents.md): conversations an agent may hold at once (the agents
    # file's `max_conversations` overrides it per agent); `manual` (agents take conversations from
    # the Waiting column) or `auto` (each is given to an online agent with a free slot); whether an
    # agent going offline puts what they hold back in the queue.
    agent_capacity: Annotated[int, Field(ge=1, le=1_000_000)] = DEFAULT_CAPACITY
    assignment: AssignmentMode = AssignmentMode.MANUAL
    offline_returns: bool = False

    def timers(self) -> TimerSettings:
        """The timers a new conversation starts with (a zero duration is off)."""
        return TimerSettings(
            bot_idle_close=self.bot_idle_close or None,
            human_idle_close=self.human_idle_close or None,
            waiting_sla=self.waiting_sla or None,
            waiting_notice=self.waiting_notice or None,
            first_reply_sla=self.first_reply_sla or None,
            first_reply_sla_return=self.first_reply_sla_return,
        )

    @field_validator("codec_cors_origins", mode="before")
    @classmethod
    def _comma_separated(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [origin.strip() for origin in value.split(",") if origin.strip()]
        return value
