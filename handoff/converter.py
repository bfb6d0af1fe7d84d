"""The data converter every Handoff client and worker uses: pydantic models as JSON payloads,
encrypted (handoff/codec.py) before they reach Temporal.

Every process that talks to Temporal for Handoff (worker, API, CLI, tests, benchmarks) must
build its client with `data_converter(settings)` from the same settings, or it reads
ciphertext and writes payloads nobody can decrypt. Failure messages and stack traces are
encrypted too (they can quote data, e.g. a database error's parameters); Temporal keeps only
"Encoded failure" in their place.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from temporalio.api.common.v1 import Payload
from temporalio.contrib.pydantic import (
    PydanticJSONPlainPayloadConverter,
    PydanticPayloadConverter,
    pydantic_data_converter,
)
from temporalio.converter import (
    CompositePayloadConverter,
    DataConverter,
    DefaultFailureConverterWithEncodedAttributes,
    DefaultPayloadConverter,
    EncodingPayloadConverter,
    JSONPlainPayloadConverter,
)
from temporalio.exceptions import ApplicationError

from handoff.codec import UNAUTHENTICATED, EncryptionCodec
from handoff.config import Settings

UNAUTHENTICATED_ERROR = "UnauthenticatedPayload"
UNAUTHENTICATED_MESSAGE = (
    "refused: the payload is not encrypted with a Handoff key (only processes holding the encryption keys can "
    "start, signal or update a conversation)"
)


class RefuseUnauthenticated(EncodingPayloadConverter):
    """Reads what the codec marks `binary/unauthenticated` (a payload not encrypted with our keys)
    by refusing it with a non-retryable `ApplicationError`, which the SDK turns into: a dropped
    signal, a rejected update, a failed query, and a failed (not stuck) workflow for a start."""

    @property
    def encoding(self) -> str:
        return UNAUTHENTICATED.decode()

    def to_payload(self, value: Any) -> Payload | None:
        return None  # never writes: only refuses what the codec marked

    def from_payload(self, payload: Payload, type_hint: type | None = None) -> Any:
        raise ApplicationError(UNAUTHENTICATED_MESSAGE, type=UNAUTHENTICATED_ERROR, non_retryable=True)


class HandoffPayloadConverter(PydanticPayloadConverter):
    """The pydantic payload converter, plus the refusal of unauthenticated payloads.

    The SDK makes a new payload converter for every workflow run and twice per workflow task
    (for the codec's pass over the task's payloads); each made its own pydantic JSON converter,
    so every run built its type adapters again. All of them share one, with its cache of type
    adapters (a pure function of the type; thread-safe)."""

    def __init__(self) -> None:
        # PydanticPayloadConverter's own list (the default converters, pydantic's for JSON), built
        # without making a pydantic JSON converter of our own only to replace it.
        CompositePayloadConverter.__init__(
            self,
            *(
                _SHARED_JSON if isinstance(c, JSONPlainPayloadConverter) else c
                for c in DefaultPayloadConverter.default_encoding_payload_converters
            ),
            _REFUSE_UNAUTHENTICATED,
        )


_SHARED_JSON = PydanticJSONPlainPayloadConverter()
_REFUSE_UNAUTHENTICATED = RefuseUnauthenticated()


def data_converter(settings: Settings | None = None) -> DataConverter:
    """The pydantic converter with the payload codec for `settings`' keys (default: the environment's)."""
    return dataclasses.replace(
        pydantic_data_converter,
        payload_converter_class=HandoffPayloadConverter,
        payload_codec=EncryptionCodec.from_settings(settings or Settings()),
        failure_converter_class=DefaultFailureConverterWithEncodedAttributes,
    )
