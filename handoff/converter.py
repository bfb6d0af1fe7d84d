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

from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import DataConverter, DefaultFailureConverterWithEncodedAttributes

from handoff.codec import EncryptionCodec
from handoff.config import Settings


def data_converter(settings: Settings | None = None) -> DataConverter:
    """The pydantic converter with the payload codec for `settings`' keys (default: the environment's)."""
    return dataclasses.replace(
        pydantic_data_converter,
        payload_codec=EncryptionCodec.from_settings(settings or Settings()),
        failure_converter_class=DefaultFailureConverterWithEncodedAttributes,
    )
