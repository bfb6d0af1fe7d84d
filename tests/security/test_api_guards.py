"""What every API request passes through (issue 13, findings 4 and 6): body limits counted as
bytes arrive, 422s that never echo the input, 503s that name no internal detail, answers no
cache keeps, and documentation pages that load nothing from another host.

Requests go through the app in-process (httpx over ASGI) and through a real uvicorn server,
whose HTTP parser is the one a chunked request meets in production.
"""

from __future__ import annotations

import base64
import logging
import os
import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from handoff.api import create_app
from handoff.api.errors import MAX_BODY_BYTES, MAX_CODEC_BODY_BYTES
from tests.security.conftest import CODEC_TOKEN, Engine, api_settings
from tests.security.server import serving

OPERATOR = {"Authorization": f"Bearer {CODEC_TOKEN}"}
CHUNK = 64 * 1024
MARKER = "MARKER-4111-1111-1111-1111"


@pytest.fixture(scope="module")
def app(private: Engine, tmp_path_factory: pytest.TempPathFactory) -> FastAPI:
    settings = api_settings(private.handoff.task_queue, tmp_path_factory.mktemp("guards"))
    return create_app(settings, client=private.handoff, store=private.store)


@pytest.fixture(params=["asgi", "uvicorn"])
async def api(request: pytest.FixtureRequest, app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    if request.param == "asgi":
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://handoff.test", timeout=60) as client:
            yield client
    else:
        async with serving(app) as url, httpx.AsyncClient(base_url=url, timeout=60) as client:
            yield client


class Chunks:
    """A request body sent chunked (no Content-Length), counting how much the server asked for."""

    def __init__(self, total: int, chunk: bytes = b" " * CHUNK) -> None:
        self.total = total
        self.chunk = chunk
        self.sent = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while self.sent < self.total:
            self.sent += len(self.chunk)
            yield self.chunk


async def test_a_chunked_body_over_the_limit_is_refused_413_as_it_arrives(api: httpx.AsyncClient) -> None:
    """Only a declared Content-Length was checked: a chunked 30 MB body was read whole."""
    body = Chunks(MAX_BODY_BYTES + 4 * CHUNK)
    response = await api.post("/conversations", content=body.__aiter__(), headers={"Content-Type": "application/json"})
    assert "content-length" not in response.request.headers
    assert response.status_code == 413, response.text
    assert response.json()["detail"] == f"the request body is larger than the limit of {MAX_BODY_BYTES} bytes"
    # Under the limit, the same framing is read and judged as usual.
    small = Chunks(3 * CHUNK, b'{"customer_id": "c", "text": ""}' + b" " * (CHUNK - 32))
    assert (await api.post("/conversations", content=small.__aiter__())).status_code == 422


async def test_the_api_stops_reading_a_chunked_body_once_past_the_limit(app: FastAPI) -> None:
    body = Chunks(30 * 1024 * 1024)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://handoff.test") as api:
        response = await api.post("/conversations", content=body.__aiter__())
    assert response.status_code == 413
    assert body.sent <= MAX_BODY_BYTES + 2 * CHUNK  # not the 30 MB


async def test_the_codec_endpoint_has_a_limit_suited_to_batches_of_payloads(api: httpx.AsyncClient) -> None:
    """It had none (40 MB accepted); a batch of a few large payloads is still fine."""
    refused = await api.post(
        "/codec/decode", content=Chunks(MAX_CODEC_BODY_BYTES + CHUNK).__aiter__(), headers=OPERATOR
    )
    assert refused.status_code == 413, refused.text
    assert str(MAX_CODEC_BODY_BYTES) in refused.json()["detail"]
    declared = await api.post("/codec/decode", content=b" " * (MAX_CODEC_BODY_BYTES + 1), headers=OPERATOR)
    assert declared.status_code == 413, declared.text
    # Two payloads of 1.5 MB each (unencrypted ones pass through): 4 MB of JSON, over the API's 1 MiB.
    data = base64.b64encode(os.urandom(1_500_000)).decode()
    batch = {"payloads": [{"metadata": {"encoding": base64.b64encode(b"binary/plain").decode()}, "data": data}] * 2}
    decoded = await api.post("/codec/decode", json=batch, headers=OPERATOR)
    assert decoded.status_code == 200, decoded.text[:200]
    assert [p["data"] for p in decoded.json()["payloads"]] == [data, data]


async def test_a_422_names_the_fields_at_fault_and_never_echoes_the_input(api: httpx.AsyncClient) -> None:
    """FastAPI's 422 includes each field's `input`: a 30 MB body came back whole."""
    response = await api.post("/conversations", json={"customer_id": "c", "text": MARKER * 500, "extra": MARKER})
    assert response.status_code == 422, response.text
    assert MARKER not in response.text
    errors = response.json()["detail"]
    assert sorted(tuple(e["loc"]) for e in errors) == [("body", "extra"), ("body", "text")]
    assert all(set(e) == {"loc", "msg", "type"} for e in errors)
    assert any("the limit is 10000" in e["msg"] for e in errors)


async def test_a_deeply_nested_body_is_a_422_and_nothing_of_it_reaches_the_log(
    api: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    """A 1 KB nested body was a 500 with a 141 KB traceback quoting the input (recursion)."""
    nested = "[" * 500 + f'"{MARKER}"' + "]" * 500
    body = '{"customer_id": "c", "text": "hi", "extra": ' + nested + "}"
    with caplog.at_level(logging.DEBUG):
        response = await api.post("/conversations", content=body, headers={"Content-Type": "application/json"})
        as_text = await api.post("/conversations", content=nested, headers={"Content-Type": "application/json"})
    assert response.status_code == 422, response.text[:300]
    assert as_text.status_code == 422, as_text.text[:300]
    assert MARKER not in response.text + as_text.text
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text[:2000]
    assert MARKER not in caplog.text


async def test_every_answer_tells_caches_not_to_keep_it(api: httpx.AsyncClient) -> None:
    """Answers carry customer tokens and transcripts."""
    created = await api.post("/conversations", json={"customer_id": "c-cache", "text": "hello"})
    assert created.status_code == 201, created.text
    token = created.json()["customer_token"]
    customer = {"Authorization": f"Bearer {token}"}
    answers = [
        created,
        await api.get(f"/conversations/{created.json()['id']}/messages", headers=customer),
        await api.get("/conversations/nope/messages", headers=customer),
        await api.post("/conversations", json={}),
        await api.get("/openapi.json"),
    ]
    assert [r.headers.get("cache-control") for r in answers] == ["no-store"] * len(answers)
    # The documentation's static assets hold nothing private: browsers may keep them.
    assert "cache-control" not in (await api.get("/docs-assets/swagger-ui.css")).headers


async def test_the_docs_pages_load_nothing_from_another_host(api: httpx.AsyncClient) -> None:
    """/docs loaded Swagger UI's code from a CDN into the API's origin."""
    for page in ("/docs", "/redoc"):
        response = await api.get(page)
        assert response.status_code == 200, response.text
        html = response.text
        assert not re.findall(r"https?://|//[a-z0-9.-]+\.[a-z]{2,}/", html), html
        assets = re.findall(r'(?:src|href)="(/[^"]+)"', html) + re.findall(r"url: '(/[^']+)'", html)
        assert len(assets) >= 2, html
        for asset in assets:
            served = await api.get(asset)
            assert served.status_code == 200, asset
            assert len(served.content) > 1000 or asset.endswith(".json"), asset


def test_the_assets_come_from_an_installed_package() -> None:
    from handoff.api.docs import ASSETS_DIR

    assert Path(ASSETS_DIR, "swagger-ui-bundle.js").stat().st_size > 100_000
    assert Path(ASSETS_DIR, "redoc.standalone.js").stat().st_size > 100_000
