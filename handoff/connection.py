"""How every Handoff process connects to Temporal: the worker, the API and the CLI all call
`connect_temporal`, so they cannot differ in address, namespace, payload encryption or TLS.

TLS (see README, "Security"): unset, the connection is plain gRPC, fine on a private network or
loopback. `HANDOFF_TEMPORAL_TLS=true` verifies the server against the system's roots;
`HANDOFF_TEMPORAL_TLS_CA_FILE` against a private CA (PEM); `HANDOFF_TEMPORAL_TLS_CERT_FILE` and
`HANDOFF_TEMPORAL_TLS_KEY_FILE` present a client certificate (mutual TLS, which the server
requires when its `requireClientAuth` is on); `HANDOFF_TEMPORAL_TLS_SERVER_NAME` overrides the
name checked in the server's certificate. Any of the files implies TLS.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from temporalio.client import Client
from temporalio.runtime import Runtime
from temporalio.service import TLSConfig

from handoff.config import Settings
from handoff.converter import data_converter
from handoff.telemetry import temporal_interceptors


class TemporalTlsError(ValueError):
    """The TLS settings cannot be used; the message names the setting, never a key."""


def _read(setting: str, path: Path | None) -> bytes | None:
    if path is None:
        return None
    try:
        return path.read_bytes()
    except OSError as e:
        raise TemporalTlsError(f"{setting}: cannot read {path}: {e.strerror}") from None


def tls_config(settings: Settings) -> TLSConfig | bool:
    """The SDK's TLS option for `settings`: False (plain), or a `TLSConfig`."""
    cert, key = settings.temporal_tls_cert_file, settings.temporal_tls_key_file
    ca = settings.temporal_tls_ca_file
    if not (settings.temporal_tls or cert or key or ca):
        return False
    if (cert is None) != (key is None):
        raise TemporalTlsError(
            "HANDOFF_TEMPORAL_TLS_CERT_FILE and HANDOFF_TEMPORAL_TLS_KEY_FILE go together: "
            "the client certificate and its private key"
        )
    return TLSConfig(
        server_root_ca_cert=_read("HANDOFF_TEMPORAL_TLS_CA_FILE", ca),
        client_cert=_read("HANDOFF_TEMPORAL_TLS_CERT_FILE", cert),
        client_private_key=_read("HANDOFF_TEMPORAL_TLS_KEY_FILE", key),
        domain=settings.temporal_tls_server_name,
    )


async def connect_temporal(
    settings: Settings, *, lazy: bool = False, tracer: Any | None = None, runtime: Runtime | None = None
) -> Client:
    """A Temporal client for `settings`: address, namespace, the encrypting converter, TLS; with
    `tracer`, span context carried to workflows and activities; with `runtime`, its metrics
    (see handoff/telemetry.py)."""
    return await Client.connect(
        settings.temporal_address,
        namespace=settings.namespace,
        data_converter=data_converter(settings),
        tls=tls_config(settings),
        lazy=lazy,
        interceptors=temporal_interceptors(tracer),
        runtime=runtime,
    )
