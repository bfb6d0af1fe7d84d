"""How failures become HTTP answers, and the request-size guard.

ConversationNotFound 404 · ConversationClosed 409 · ConversationHeld 409 ·
NotAssignedAgent 403 · WrongStatus 409 · InvalidCommand 422 · Temporal unreachable 503
"""

from __future__ import annotations

import json
import math
from typing import Any

from fastapi import FastAPI, Request, Response, status
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from handoff.api.deps import TemporalUnavailable, Unauthorized
from handoff.api.schemas import ErrorBody
from handoff.client import (
    ConversationClosed,
    ConversationHeld,
    ConversationNotFound,
    HandoffError,
    InvalidCommand,
    NotAssignedAgent,
    WrongStatus,
)
from handoff.models import Agent
from handoff.store import InvalidCursor

MAX_BODY_BYTES = 1024 * 1024
"""Requests declaring a larger body are refused with 413 before it is read."""

STATUS_BY_ERROR: list[tuple[type[HandoffError], int]] = [
    (ConversationNotFound, status.HTTP_404_NOT_FOUND),
    (ConversationClosed, status.HTTP_409_CONFLICT),
    (ConversationHeld, status.HTTP_409_CONFLICT),
    (NotAssignedAgent, status.HTTP_403_FORBIDDEN),
    (WrongStatus, status.HTTP_409_CONFLICT),
    (InvalidCommand, status.HTTP_422_UNPROCESSABLE_CONTENT),
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


async def _unavailable(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, TemporalUnavailable)
    return error_response(status.HTTP_503_SERVICE_UNAVAILABLE, exc.message, headers={"Retry-After": "5"})


def _json_safe(value: Any) -> Any:
    """NaN and infinities (which Python's JSON parser accepts) as text, so an echo is valid JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    return value


async def _invalid_request(_request: Request, exc: Exception) -> Response:
    """FastAPI's 422 for a request that breaks the schema, written so that echoing the input
    never fails (it was a 500): ASCII-only, since a lone surrogate (a JSON "\\ud800" escape)
    cannot be UTF-8, and NaN or Infinity (accepted by the parser) as strings."""
    assert isinstance(exc, RequestValidationError)
    body = json.dumps({"detail": _json_safe(jsonable_encoder(exc.errors()))}, ensure_ascii=True)
    return Response(body, status_code=status.HTTP_422_UNPROCESSABLE_CONTENT, media_type="application/json")


async def _invalid_cursor(_request: Request, exc: Exception) -> JSONResponse:
    return error_response(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc))


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(HandoffError, _handoff_error)
    app.add_exception_handler(Unauthorized, _unauthorized)
    app.add_exception_handler(TemporalUnavailable, _unavailable)
    app.add_exception_handler(InvalidCursor, _invalid_cursor)
    app.add_exception_handler(RequestValidationError, _invalid_request)


class BodyLimit:
    """Refuse a request to /conversations... whose declared body exceeds `MAX_BODY_BYTES` (413)
    without reading it. Other routes (e.g. the codec endpoint) set their own limits."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith("/conversations"):
            for name, value in scope["headers"]:
                if name == b"content-length" and value.isdigit() and int(value) > MAX_BODY_BYTES:
                    detail = f"the request body is {int(value)} bytes; the limit is {MAX_BODY_BYTES}"
                    await error_response(status.HTTP_413_CONTENT_TOO_LARGE, detail)(scope, receive, send)
                    return
        await self.app(scope, receive, send)
