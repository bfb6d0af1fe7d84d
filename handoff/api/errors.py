"""How failures become HTTP answers, and the guards every request passes (body size, no caching).

ConversationNotFound 404 · ConversationClosed 409 · ConversationHeld 409 ·
NotAssignedAgent 403 · WrongStatus 409 · InvalidCommand 422 · Temporal unreachable 503
"""

from __future__ import annotations

import json

from fastapi import FastAPI, HTTPException, Request, Response, status
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from handoff.api.deps import Forbidden, TemporalUnavailable, Unauthorized
from handoff.api.schemas import ErrorBody
from handoff.client import (
    ConversationClosed,
    ConversationHeld,
    ConversationNotFound,
    HandoffError,
    InvalidCommand,
    InvalidTransferTarget,
    NotAssignedAgent,
    WrongStatus,
)
from handoff.models import Agent
from handoff.store import InvalidCursor

MAX_BODY_BYTES = 1024 * 1024
"""The largest request body the API reads (a message is at most 10,000 characters)."""
MAX_CODEC_BODY_BYTES = 8 * 1024 * 1024
"""The codec endpoint's: a batch of payloads for one history page, each at most Temporal's
2 MB blob limit, in base64 JSON; Temporal's own gRPC messages stop at 4 MB."""
CODEC_PATH = "/codec/"

STATUS_BY_ERROR: list[tuple[type[HandoffError], int]] = [
    (ConversationNotFound, status.HTTP_404_NOT_FOUND),
    (ConversationClosed, status.HTTP_409_CONFLICT),
    (ConversationHeld, status.HTTP_409_CONFLICT),
    (NotAssignedAgent, status.HTTP_403_FORBIDDEN),
    (WrongStatus, status.HTTP_409_CONFLICT),
    (InvalidCommand, status.HTTP_422_UNPROCESSABLE_CONTENT),
    (InvalidTransferTarget, status.HTTP_409_CONFLICT),
    # Anything else the engine refused, e.g. a workflow an operator terminated.
    (HandoffError, status.HTTP_409_CONFLICT),
]


def error_response(
    code: int, detail: str, holder: Agent | None = None, headers: dict[str, str] | None = None
) -> JSONResponse:
    body = ErrorBody(detail=detail, holder=holder).model_dump(exclude_none=True, mode="json")
    return JSONResponse(body, status_code=code, headers=headers)


async def _handoff_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HandoffError)
    code = next(code for kind, code in STATUS_BY_ERROR if isinstance(exc, kind))
    return error_response(code, exc.message, exc.holder)


async def _unauthorized(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, Unauthorized)
    return error_response(status.HTTP_401_UNAUTHORIZED, exc.message, headers={"WWW-Authenticate": "Bearer"})


async def _forbidden(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, Forbidden)
    return error_response(status.HTTP_403_FORBIDDEN, exc.message)


async def _unavailable(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, TemporalUnavailable)
    return error_response(status.HTTP_503_SERVICE_UNAVAILABLE, exc.message, headers={"Retry-After": "5"})


VALIDATION_ERROR_FIELDS = ("loc", "msg", "type")
"""What a 422 says about each field at fault. Never the `input` (pydantic's copy of what was
sent): echoed back it would return whatever was sent, of any size or depth, and its copy
could end in a log."""


async def _invalid_request(_request: Request, exc: Exception) -> Response:
    """FastAPI's 422 for a request that breaks the schema: where, what and why for each field,
    without the input (ASCII-only JSON, since a `loc` can hold a key that is a lone surrogate)."""
    assert isinstance(exc, RequestValidationError)
    errors = [{k: error[k] for k in VALIDATION_ERROR_FIELDS if k in error} for error in exc.errors()]
    body = json.dumps({"detail": jsonable_encoder(errors)}, ensure_ascii=True)
    return Response(body, status_code=status.HTTP_422_UNPROCESSABLE_CONTENT, media_type="application/json")


async def _invalid_cursor(_request: Request, exc: Exception) -> JSONResponse:
    return error_response(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc))


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(HandoffError, _handoff_error)
    app.add_exception_handler(Unauthorized, _unauthorized)
    app.add_exception_handler(Forbidden, _forbidden)
    app.add_exception_handler(TemporalUnavailable, _unavailable)
    app.add_exception_handler(InvalidCursor, _invalid_cursor)
    app.add_exception_handler(RequestValidationError, _invalid_request)


class BodyTooLarge(HTTPException):
    """Raised from `receive` once a request body passes its limit: FastAPI passes HTTP
    exceptions raised while it reads a body on to its handler, which answers 413 with this detail."""

    def __init__(self, limit: int) -> None:
        super().__init__(
            status.HTTP_413_CONTENT_TOO_LARGE, f"the request body is larger than the limit of {limit} bytes"
        )


def body_limit(path: str) -> int:
    return MAX_CODEC_BODY_BYTES if path.startswith(CODEC_PATH) else MAX_BODY_BYTES


class BodyLimit:
    """Refuse a request body over its route's limit (`body_limit`) with 413, whatever its framing.

    A declared Content-Length over the limit is refused before anything is read; a chunked
    body (no Content-Length) or one that lies about its length is counted as it arrives, and
    the request ends with 413 as soon as the count passes the limit, so at most the limit and
    one chunk is ever held in memory.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = body_limit(scope["path"])
        for name, value in scope["headers"]:
            if name == b"content-length" and value.isdigit() and int(value) > limit:
                detail = f"the request body is {int(value)} bytes; the limit is {limit}"
                await error_response(status.HTTP_413_CONTENT_TOO_LARGE, detail)(scope, receive, send)
                return
        received = 0
        response_started = False

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        async def watched(message: Message) -> None:
            nonlocal response_started
            response_started = response_started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, watched)
        except BodyTooLarge as e:
            # Read outside FastAPI's body handling (e.g. by a plain Starlette route).
            if response_started:
                raise
            await error_response(e.status_code, e.detail)(scope, receive, send)


class NoStore:
    """`Cache-Control: no-store` on every answer that sets no caching of its own: answers carry
    customer tokens and transcripts, which no browser or proxy cache may keep. Paths under
    `cacheable` (the documentation's static assets) are left to the usual validation."""

    def __init__(self, app: ASGIApp, cacheable: str | None = None) -> None:
        self.app = app
        self.cacheable = cacheable

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or (self.cacheable and scope["path"].startswith(self.cacheable)):
            await self.app(scope, receive, send)
            return

        async def no_store(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                if "cache-control" not in headers:
                    headers["Cache-Control"] = "no-store"
            await send(message)

        await self.app(scope, receive, no_store)
