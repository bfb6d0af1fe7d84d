"""The production compose file (docker-compose.yml) keeps payloads encrypted and the codec
endpoint closed unless the operator opens it."""

from __future__ import annotations

from tests.test_deploy import compose


def test_worker_and_api_share_encryption_keys_that_have_no_default() -> None:
    services = compose()["services"]
    keys = {services[name]["environment"]["HANDOFF_ENCRYPTION_KEYS"] for name in ("worker", "api")}
    # One value for both, and compose refuses to start without it (":?"), rather than each
    # container making a key of its own that the other cannot read.
    assert len(keys) == 1
    assert keys.pop().startswith("${HANDOFF_ENCRYPTION_KEYS:?")


def test_the_codec_endpoint_is_closed_by_default_and_where_the_ui_looks_for_it() -> None:
    services = compose()["services"]
    api = services["api"]["environment"]
    assert api["HANDOFF_CODEC_TOKEN"] == "${HANDOFF_CODEC_TOKEN:-}"  # empty: every call refused
    ui = services["temporal-ui"]
    endpoint = ui["environment"]["TEMPORAL_CODEC_ENDPOINT"]
    assert endpoint.endswith("http://localhost:8000/codec}")  # the API's port and the router's prefix
    assert "8000:8000" in services["api"]["ports"]
    # The UI's origin when published on loopback as the file's comment shows.
    assert "http://localhost:8080" in api["HANDOFF_CODEC_CORS_ORIGINS"]


def test_no_temporal_port_is_published() -> None:
    """Whoever reaches Temporal's gRPC port can drive every workflow; its UI shows them all.
    Only Handoff's API is published, and Grafana (behind its admin password) on this host's
    loopback; Temporal, its UI and Prometheus are reached over compose's network."""
    services = compose()["services"]
    published = {name: service["ports"] for name, service in services.items() if service.get("ports")}
    assert published == {"api": ["8000:8000"], "grafana": ["127.0.0.1:3000:3000"]}
    assert services["grafana"]["environment"]["GF_SECURITY_ADMIN_PASSWORD"].startswith("${GRAFANA_ADMIN_PASSWORD:?")
    assert services["worker"]["environment"]["HANDOFF_TEMPORAL_ADDRESS"] == "temporal:7233"
    assert services["temporal-ui"]["environment"]["TEMPORAL_ADDRESS"] == "temporal:7233"


def test_the_customer_token_secret_has_no_published_default() -> None:
    """A default in the compose file is public: anyone could sign a customer token for any
    conversation. Compose refuses to start without the operator's own secret."""
    services = compose()["services"]
    secrets = {services[name]["environment"]["HANDOFF_CUSTOMER_TOKEN_SECRET"] for name in ("worker", "api")}
    assert len(secrets) == 1
    assert secrets.pop().startswith("${HANDOFF_CUSTOMER_TOKEN_SECRET:?")
