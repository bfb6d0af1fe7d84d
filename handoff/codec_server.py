"""The codec endpoint: lets an authorised operator read decrypted payloads in the Temporal UI
or the `temporal` CLI, without giving them the encryption keys.

It follows Temporal's codec server protocol: POST `/codec/decode` and `/codec/encode` take
and return `{"payloads": [...]}`, each payload in protobuf JSON (metadata values and data in
base64); a bad body or a payload that cannot be decrypted is a 400 with the reason, and a
body over 8 MiB (`handoff.api.errors.MAX_CODEC_BODY_BYTES`, room for a batch of large
payloads) a 413, counted as it arrives. Point
the UI at it with TEMPORAL_CODEC_ENDPOINT=http://<api>/codec, the CLI with
`--codec-endpoint http://<api>/codec --codec-auth "Bearer $HANDOFF_CODEC_TOKEN"`.

Decrypted payloads are customer messages, so the endpoint is closed unless configured:
every call needs `Authorization: Bearer <HANDOFF_CODEC_TOKEN>`, and without that setting it
refuses everything (403). Browsers may call it from `codec_cors_origins` only (the UI's
origin); a request that names another namespace in `X-Namespace` is refused, since these
keys are this namespace's.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Awaitable, Callable, Sequence
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request, Response, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from google.protobuf import json_format
from pydantic import BaseModel, Field
from temporalio.api.common.v1 import Payload, Payloads

from handoff.codec import EncryptionCodec, PayloadDecryptionError
from handoff.config import Settings

MIN_TOKEN_CHARS = 16


class CodecPayload(BaseModel):
    """A Temporal payload in protobuf JSON."""

    metadata: dict[str, str] = Field(default_factory=dict, description="Metadata values, base64.")
    data: str = Field(default="", description="The payload's bytes, base64.")


class CodecPayloads(BaseModel):
    payloads: list[CodecPayload] = Field(default_factory=list)


class CodecError(BaseModel):
    detail: str


codec_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="CodecToken",
    description="The operators' codec token (HANDOFF_CODEC_TOKEN).",
)


def operator_token(settings: Settings) -> bytes | None:
    """The configured codec token's digest, or None when the endpoint is off."""
    if settings.codec_token is None or not settings.codec_token.get_secret_value():
        return None
    token = settings.codec_token.get_secret_value()
    if len(token) < MIN_TOKEN_CHARS:
        raise ValueError(f"HANDOFF_CODEC_TOKEN must be at least {MIN_TOKEN_CHARS} characters long")
    return hashlib.sha256(token.encode("utf-8")).digest()


def codec_router(settings: Settings, codec: EncryptionCodec | None = None) -> APIRouter:
    """The /codec routes, decrypting with `codec` (default: the keys in `settings`)."""
    the_codec = codec or EncryptionCodec.from_settings(settings)
    token_digest = operator_token(settings)
    origins = frozenset(settings.codec_cors_origins)

    def cors(request: Request) -> dict[str, str]:
        origin = request.headers.get("origin")
        if origin is None or origin not in origins:
            return {"Vary": "Origin"}
        return {"Access-Control-Allow-Origin": origin, "Access-Control-Allow-Credentials": "true", "Vary": "Origin"}

    def refuse(request: Request, code: int, detail: str) -> HTTPException:
        headers = cors(request)
        if code == status.HTTP_401_UNAUTHORIZED:
            headers["WWW-Authenticate"] = "Bearer"
        return HTTPException(code, detail, headers=headers)

    def operator(
        request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(codec_bearer)]
    ) -> None:
        if token_digest is None:
            raise refuse(request, status.HTTP_403_FORBIDDEN, "the codec endpoint is off: set HANDOFF_CODEC_TOKEN")
        if credentials is None:
            raise refuse(request, status.HTTP_401_UNAUTHORIZED, "missing codec token: send 'Authorization: Bearer ...'")
        given = hashlib.sha256(credentials.credentials.encode("utf-8", "replace")).digest()
        if not hmac.compare_digest(given, token_digest):
            raise refuse(request, status.HTTP_401_UNAUTHORIZED, "wrong codec token")
        namespace = request.headers.get("x-namespace")
        if namespace and namespace != settings.namespace:
            raise refuse(
                request,
                status.HTTP_400_BAD_REQUEST,
                f"this codec serves namespace {settings.namespace!r}, not {namespace[:100]!r}",
            )

    async def apply(request: Request, transform: Callable[[Sequence[Payload]], Awaitable[list[Payload]]]) -> Response:
        try:
            parsed = json_format.Parse(await request.body(), Payloads(), ignore_unknown_fields=True)
        except (json_format.ParseError, UnicodeDecodeError, RecursionError) as e:
            raise refuse(request, status.HTTP_400_BAD_REQUEST, f"not a Payloads JSON object: {e}") from None
        try:
            result = await transform(parsed.payloads)
        except PayloadDecryptionError as e:
            raise refuse(request, status.HTTP_400_BAD_REQUEST, str(e)) from None
        body = json.dumps({"payloads": [json_format.MessageToDict(p) for p in result]})
        return Response(body, media_type="application/json", headers=cors(request))

    async def preflight(request: Request) -> Response:
        """CORS preflight: browsers send it without credentials, so it needs none."""
        headers = cors(request)
        if "Access-Control-Allow-Origin" in headers:
            headers |= {
                "Access-Control-Allow-Methods": "POST",
                "Access-Control-Allow-Headers": "authorization, content-type, x-namespace",
                "Access-Control-Max-Age": "600",
            }
        return Response(status_code=status.HTTP_204_NO_CONTENT, headers=headers)

    errors: dict[int | str, dict[str, Any]] = {
        400: {"model": CodecError, "description": "Not a Payloads object, another namespace, or undecryptable."},
        401: {"model": CodecError, "description": "Missing or wrong codec token."},
        403: {"model": CodecError, "description": "The codec endpoint is off (no HANDOFF_CODEC_TOKEN)."},
        200: {"model": CodecPayloads, "description": "The payloads, transformed."},
    }
    body_schema = {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/CodecPayloads"}}},
        }
    }

    async def decode(request: Request) -> Response:
        """Decrypt payloads (what the UI calls to show history)."""
        return await apply(request, the_codec.decode_for_display)

    async def encode(request: Request) -> Response:
        """Encrypt payloads with the current key (what the UI calls to send a signal by hand)."""
        return await apply(request, the_codec.encode)

    router = APIRouter(prefix="/codec", tags=["operator"])
    for path, endpoint in (("/decode", decode), ("/encode", encode)):
        router.add_api_route(
            path,
            endpoint,
            methods=["POST"],
            dependencies=[Depends(operator)],
            responses=errors,
            response_model=None,
            openapi_extra=body_schema,
        )
        router.add_api_route(path, preflight, methods=["OPTIONS"], include_in_schema=False)
    return router
