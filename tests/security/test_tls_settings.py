"""TLS to Temporal from the environment (handoff/connection.py): every process that connects
(worker, API, CLI) builds its client from these settings, through `connect_temporal`."""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.service import TLSConfig
from temporalio.testing import WorkflowEnvironment

from handoff.client import HandoffClient
from handoff.config import Settings
from handoff.connection import TemporalTlsError, tls_config

CA = b"-----BEGIN CERTIFICATE-----\nca\n-----END CERTIFICATE-----\n"
CERT = b"-----BEGIN CERTIFICATE-----\nclient\n-----END CERTIFICATE-----\n"
KEY = b"-----BEGIN PRIVATE KEY-----\nkey\n-----END PRIVATE KEY-----\n"


@pytest.fixture
def pem_files(tmp_path: Path) -> dict[str, Path]:
    files = {"ca": tmp_path / "ca.pem", "cert": tmp_path / "client.pem", "key": tmp_path / "client.key"}
    for path, content in zip(files.values(), (CA, CERT, KEY), strict=True):
        path.write_bytes(content)
    return files


def test_without_tls_settings_the_connection_is_plain(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("", "_CA_FILE", "_CERT_FILE", "_KEY_FILE", "_SERVER_NAME"):
        monkeypatch.delenv(f"HANDOFF_TEMPORAL_TLS{name}", raising=False)
    assert tls_config(Settings()) is False


def test_mutual_tls_from_the_environment(monkeypatch: pytest.MonkeyPatch, pem_files: dict[str, Path]) -> None:
    monkeypatch.setenv("HANDOFF_TEMPORAL_TLS_CA_FILE", str(pem_files["ca"]))
    monkeypatch.setenv("HANDOFF_TEMPORAL_TLS_CERT_FILE", str(pem_files["cert"]))
    monkeypatch.setenv("HANDOFF_TEMPORAL_TLS_KEY_FILE", str(pem_files["key"]))
    monkeypatch.setenv("HANDOFF_TEMPORAL_TLS_SERVER_NAME", "temporal.internal")
    assert tls_config(Settings()) == TLSConfig(
        server_root_ca_cert=CA, client_cert=CERT, client_private_key=KEY, domain="temporal.internal"
    )


def test_tls_with_the_system_roots(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HANDOFF_TEMPORAL_TLS", "true")
    assert tls_config(Settings()) == TLSConfig()


def test_a_client_certificate_without_its_key_is_refused(pem_files: dict[str, Path]) -> None:
    with pytest.raises(TemporalTlsError, match="HANDOFF_TEMPORAL_TLS_CERT_FILE and HANDOFF_TEMPORAL_TLS_KEY_FILE go"):
        tls_config(Settings(temporal_tls_cert_file=pem_files["cert"]))


def test_an_unreadable_file_is_named_and_its_content_never_shown(tmp_path: Path, pem_files: dict[str, Path]) -> None:
    missing = tmp_path / "nowhere.key"
    with pytest.raises(TemporalTlsError) as refused:
        tls_config(Settings(temporal_tls_cert_file=pem_files["cert"], temporal_tls_key_file=missing))
    assert str(refused.value) == f"HANDOFF_TEMPORAL_TLS_KEY_FILE: cannot read {missing}: No such file or directory"


async def test_the_clients_connect_with_these_settings(temporal_env: WorkflowEnvironment) -> None:
    """The CLI's and backends' `HandoffClient.connect` goes through them: TLS towards the plain
    test server fails the handshake, and the same settings without TLS connect."""
    address = temporal_env.client.service_client.config.target_host
    with pytest.raises(RuntimeError, match="Failed client connect"):
        await HandoffClient.connect(Settings(temporal_address=address, temporal_tls=True))
    plain = await HandoffClient.connect(Settings(temporal_address=address))
    assert plain.temporal.service_client.config.tls is False
