"""The codec endpoint (/codec/decode, /codec/encode): decrypted history for an authorised
operator, as the Temporal UI and CLI ask for it, and nothing for anyone else."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from google.protobuf import json_format
from pydantic import SecretStr
from temporalio.api.common.v1 import Payload
from temporalio.client import Client

from handoff.api import create_app
from handoff.client import workflow_id
from handoff.codec import ENCODING, KEY_ID
from handoff.config import Settings
from handoff.converter import data_converter
from handoff.models import CustomerMessage
from tests.encryption_keys import NEXT_KEY, NEXT_KEY_ID, TEST_KEY_ID, TEST_KEYS
from tests.helpers import new_id, wait_for_entries
from tests.security.conftest import CODEC_TOKEN, Engine, api_settings
from tests.security.history import history_payloads

OPERATOR = {"Authorization": f"Bearer {CODEC_TOKEN}"}
UI_ORIGIN = "http://localhost:8080"
MESSAGE = "Please call me back on +33 6 12 34 56 78"

OpenApi = Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]]


def as_json(payloads: list[Payload]) -> dict[str, Any]:
    """The body the UI sends: Payloads in protobuf JSON (metadata values and data in base64)."""
    return {"payloads": [json_format.MessageToDict(p) for p in payloads]}


def from_json(body: dict[str, Any]) -> list[Payload]:
    return [json_format.ParseDict(p, Payload()) for p in body["payloads"]]


def plain(text: str = MESSAGE) -> list[Payload]:
    return data_converter().payload_converter.to_payloads([CustomerMessage(text=text)])


@pytest.fixture
def open_api(tmp_path: Path) -> OpenApi:
    """The API app (codec routes need no Temporal) with the test settings plus `overrides`."""

    @asynccontextmanager
    async def opened(**overrides: object) -> AsyncIterator[httpx.AsyncClient]:
        app = create_app(api_settings("unused", tmp_path, **overrides))
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://localhost:8000") as client:
            yield client

    return opened


@pytest.fixture(scope="module")
async def stored_payloads(private: Engine, raw_temporal: Client) -> list[Payload]:
    """What Temporal holds for a real conversation whose first message is MESSAGE."""
    cid = new_id()
    await private.handoff.start_or_message(cid, "customer-codec", MESSAGE)
    await wait_for_entries(private.handoff, cid, 2)
    history = await raw_temporal.get_workflow_handle(workflow_id(cid)).fetch_history()
    payloads = [p for _, p in history_payloads(history)]
    assert all(MESSAGE.encode() not in p.data for p in payloads)
    return payloads


async def test_an_operator_reads_the_decrypted_history(open_api: OpenApi, stored_payloads: list[Payload]) -> None:
    async with open_api() as api:
        response = await api.post(
            "/codec/decode",
            json=as_json(stored_payloads),
            headers={**OPERATOR, "X-Namespace": "default", "Origin": UI_ORIGIN},
        )
    assert response.status_code == 200, response.text
    assert response.headers["access-control-allow-origin"] == UI_ORIGIN
    decoded = from_json(response.json())
    assert len(decoded) == len(stored_payloads)
    assert {p.metadata["encoding"] for p in decoded} == {b"json/plain"}
    assert any(MESSAGE.encode() in p.data for p in decoded)


@pytest.mark.parametrize("path", ["/codec/decode", "/codec/encode"])
@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer wrong-token-of-some-length", f"Basic {CODEC_TOKEN}", f"Bearer {CODEC_TOKEN}x", "Bearer"],
    ids=["missing", "wrong", "basic-scheme", "longer", "empty"],
)
async def test_without_the_operator_token_nothing_is_decoded_or_encoded(
    open_api: OpenApi, stored_payloads: list[Payload], path: str, authorization: str | None
) -> None:
    headers = {"Origin": UI_ORIGIN} | ({"Authorization": authorization} if authorization else {})
    async with open_api() as api:
        response = await api.post(path, json=as_json(stored_payloads), headers=headers)
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"] == "Bearer"
    assert "codec token" in response.json()["detail"]
    # The UI may show why: the refusal carries the CORS header too.
    assert response.headers["access-control-allow-origin"] == UI_ORIGIN
    assert MESSAGE not in response.text


async def test_the_endpoint_is_off_unless_a_token_is_configured(
    open_api: OpenApi, stored_payloads: list[Payload], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HANDOFF_CODEC_TOKEN", "")  # as docker-compose passes an unset variable
    for token in (None, SecretStr("")):
        async with open_api(codec_token=token) as api:
            for path in ("/codec/decode", "/codec/encode"):
                response = await api.post(path, json=as_json(stored_payloads), headers=OPERATOR)
                assert response.status_code == 403, response.text
                assert "HANDOFF_CODEC_TOKEN" in response.json()["detail"]
    from_env = Settings().codec_token
    assert from_env is not None and not from_env.get_secret_value()


async def test_a_short_operator_token_is_refused_at_start(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="at least 16 characters"):
        create_app(api_settings("unused", tmp_path, codec_token=SecretStr("short")))


async def test_encode_then_decode_round_trips_and_the_sdk_reads_what_the_endpoint_encrypted(
    open_api: OpenApi,
) -> None:
    rotated = f"{NEXT_KEY},{TEST_KEYS}"
    async with open_api(encryption_keys=SecretStr(rotated)) as api:
        encoded_response = await api.post("/codec/encode", json=as_json(plain()), headers=OPERATOR)
        assert encoded_response.status_code == 200, encoded_response.text
        [encoded] = from_json(encoded_response.json())
        assert encoded.metadata["encoding"] == ENCODING
        assert encoded.metadata[KEY_ID] == NEXT_KEY_ID.encode()  # the current key
        assert MESSAGE.encode() not in encoded.data
        decoded_response = await api.post("/codec/decode", json=encoded_response.json(), headers=OPERATOR)
        assert decoded_response.status_code == 200, decoded_response.text
        assert from_json(decoded_response.json()) == plain()
    # A worker with the same keys reads what the endpoint encrypted (e.g. a signal sent from the UI).
    [message] = await data_converter(Settings(encryption_keys=SecretStr(rotated))).decode([encoded], [CustomerMessage])
    assert message == CustomerMessage(text=MESSAGE)


async def test_an_empty_batch_is_an_empty_batch(open_api: OpenApi) -> None:
    async with open_api() as api:
        response = await api.post("/codec/decode", json={"payloads": []}, headers=OPERATOR)
    assert (response.status_code, response.json()) == (200, {"payloads": []})


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"{not json", "not a Payloads JSON object"),
        (b'{"payloads": {"a": 1}}', "not a Payloads JSON object"),
        (b'{"payloads": [{"data": "%%% not base64"}]}', "not a Payloads JSON object"),
        (b'["payloads"]', "not a Payloads JSON object"),
    ],
    ids=["malformed", "not-a-list", "bad-base64", "not-an-object"],
)
async def test_a_body_that_is_not_payloads_is_a_400_with_the_reason(
    open_api: OpenApi, body: bytes, reason: str
) -> None:
    async with open_api() as api:
        response = await api.post(
            "/codec/decode", content=body, headers={**OPERATOR, "Content-Type": "application/json"}
        )
    assert response.status_code == 400, response.text
    assert reason in response.json()["detail"]


async def test_a_payload_under_an_unknown_key_or_another_namespace_is_a_400_that_says_so(
    open_api: OpenApi, stored_payloads: list[Payload]
) -> None:
    async with open_api(encryption_keys=SecretStr(NEXT_KEY)) as api:
        response = await api.post("/codec/decode", json=as_json(stored_payloads), headers=OPERATOR)
        assert response.status_code == 400, response.text
        assert f"key id '{TEST_KEY_ID}', which is not configured here" in response.json()["detail"]
    async with open_api() as api:
        response = await api.post(
            "/codec/decode", json=as_json(stored_payloads), headers={**OPERATOR, "X-Namespace": "payments"}
        )
        assert response.status_code == 400, response.text
        assert "serves namespace 'default', not 'payments'" in response.json()["detail"]


async def test_browsers_may_call_it_from_the_configured_ui_origins_only(open_api: OpenApi) -> None:
    preflight = {
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization,content-type,x-namespace",
    }
    async with open_api(codec_cors_origins=["https://temporal.example.com"]) as api:
        allowed = await api.options("/codec/decode", headers={**preflight, "Origin": "https://temporal.example.com"})
        assert allowed.status_code == 204
        assert allowed.headers["access-control-allow-origin"] == "https://temporal.example.com"
        assert allowed.headers["access-control-allow-credentials"] == "true"
        assert set(allowed.headers["access-control-allow-headers"].split(", ")) == {
            "authorization",
            "content-type",
            "x-namespace",
        }
        assert allowed.headers["access-control-allow-methods"] == "POST"
        for origin in (UI_ORIGIN, "https://evil.example.com"):
            refused = await api.options("/codec/decode", headers={**preflight, "Origin": origin})
            assert "access-control-allow-origin" not in refused.headers
            answer = await api.post("/codec/encode", json=as_json(plain()), headers={**OPERATOR, "Origin": origin})
            assert answer.status_code == 200  # a non-browser client is not stopped by CORS, only by the token
            assert "access-control-allow-origin" not in answer.headers


def test_cors_origins_are_read_comma_separated_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HANDOFF_CODEC_CORS_ORIGINS", "https://ui.example.com, http://localhost:8080")
    assert Settings().codec_cors_origins == ["https://ui.example.com", "http://localhost:8080"]


async def test_the_codec_routes_are_in_the_openapi_schema_with_their_token(open_api: OpenApi) -> None:
    async with open_api() as api:
        schema = (await api.get("/openapi.json")).json()
    for path in ("/codec/decode", "/codec/encode"):
        operation = schema["paths"][path]["post"]
        assert operation["security"] == [{"CodecToken": []}]
        assert operation["requestBody"]["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/CodecPayloads"
        }
    assert "CodecPayloads" in schema["components"]["schemas"]
