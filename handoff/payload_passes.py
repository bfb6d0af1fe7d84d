"""The worker's payload passes over each workflow activation and completion: one walk, not three.

Before and after every workflow activation the SDK (1.35) walks the whole activation, then the
whole completion, with its payload visitor three times each: the codec (decrypt / encrypt),
external storage (retrieve / store) and external-storage references. Each walk visits every
job and command and calls back per payload sequence. Handoff configures no external storage,
so two of each three walks find nothing to do (docs/benchmarks.md, "Worker CPU").

`install()` replaces the SDK's `decode_activation` and `encode_completion` (module attributes
of `temporalio.bridge.worker`, looked up at each call) by versions that, when the data
converter has no external storage, walk once and apply the same three steps to each payload
sequence in the SDK's order (the steps are per sequence and independent of each other), so the
payloads, the serialization contexts and the errors (a reference payload without storage
configured is refused as before) are the SDK's own. With external storage configured they call
the SDK's functions unchanged. Each step asks the worker's command-aware converter which
converter the payloads' command gets (for a command's payloads that question enters the
sandbox); one walk asks once per payload sequence, not once per step (only over the SDK class
version this was written against, see `_command_aware_class`).

The two functions are SDK internals a new release may change (pyproject allows any 1.x), and
a release that adds a step to them must not lose it here: `install()` checks that their source
is exactly the one this was written against (a digest), and their parameters and the data
converter's methods; if not, it leaves the SDK alone with one warning.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
import logging
from collections.abc import Callable, Sequence
from typing import Any

from temporalio.api.common.v1 import Payload

log = logging.getLogger("handoff.payload_passes")

_BRIDGE = "temporalio.bridge.worker"
_DECODE_PARAMETERS = ["activation", "data_converter", "decode_headers", "storage_concurrency_limit"]
_ENCODE_PARAMETERS = ["completion", "data_converter", "encode_headers", "storage_concurrency_limit"]
# Digests of the SDK functions' source this module reproduces (temporalio 1.35).
_KNOWN_SOURCES = {
    "decode_activation": "f48cb3360af5ebef",
    "encode_completion": "a1d916feb9231adb",
    "_CommandAwareDataConverter": "7798b1383c6f2637",
}
_CONVERTER_STEPS = (
    "_decode_reference_payload_sequence",
    "_external_retrieve_payload_sequence",
    "_decode_payload_sequence",
    "_encode_payload_sequence",
    "_external_store_payload_sequence",
    "_encode_reference_payload_sequence",
)

_installed: dict[str, Any] = {}


def unavailable() -> str | None:
    """Why the single pass cannot be installed on the SDK present, or None if it can."""
    try:
        bridge: Any = importlib.import_module(_BRIDGE)
        visitor = importlib.import_module("temporalio.worker._command_aware_visitor").CommandAwarePayloadVisitor
        extstore = importlib.import_module("temporalio.converter._extstore")
        from temporalio.converter import DataConverter
    except (ImportError, AttributeError) as missing:
        return f"an SDK module or class is missing ({missing})"
    for name, expected in (("decode_activation", _DECODE_PARAMETERS), ("encode_completion", _ENCODE_PARAMETERS)):
        function = _installed.get(name, getattr(bridge, name, None))
        if not callable(function):
            return f"{_BRIDGE}.{name} is missing"
        parameters = list(inspect.signature(function).parameters)
        if parameters != expected:
            return f"{_BRIDGE}.{name} takes {parameters}, not {expected}"
        if _source_digest(function) != _KNOWN_SOURCES[name]:
            return f"{_BRIDGE}.{name} is not the version this was written against"
    if not callable(getattr(bridge, "_Visitor", None)) or not hasattr(extstore, "StorageOperationMetrics"):
        return f"{_BRIDGE}._Visitor or StorageOperationMetrics is missing"
    if not {"skip_search_attributes", "skip_headers"} <= set(inspect.signature(visitor).parameters):
        return "CommandAwarePayloadVisitor takes other parameters"
    for step in _CONVERTER_STEPS:
        if not callable(getattr(DataConverter, step, None)):
            return f"DataConverter.{step} is missing"
    if "external_storage" not in DataConverter.__dataclass_fields__:
        return "DataConverter has no external_storage"
    return None


def _source_digest(function: Callable[..., Any] | type) -> str | None:
    try:
        source = inspect.getsource(function)
    except (OSError, TypeError):
        return None
    return hashlib.sha256(source.encode()).hexdigest()[:16]


def install() -> bool:
    """Use the single pass in this process (idempotent); False, with a warning, if the SDK
    installed is not the shape this was written for (then the SDK's own passes run)."""
    if _installed:
        return True
    problem = unavailable()
    if problem is not None:
        log.warning("payload passes: the SDK's own (three walks), not one: %s", problem)
        return False
    bridge: Any = importlib.import_module(_BRIDGE)
    sdk_decode, sdk_encode = bridge.decode_activation, bridge.encode_completion
    _installed.update(decode_activation=sdk_decode, encode_completion=sdk_encode)
    _installed["resolve_once"] = _command_aware_class()

    async def decode_activation(
        activation: Any, data_converter: Any, decode_headers: bool, storage_concurrency_limit: int
    ) -> Any:
        if data_converter.external_storage is not None:
            return await sdk_decode(activation, data_converter, decode_headers, storage_concurrency_limit)
        steps = (
            "_decode_reference_payload_sequence",
            "_external_retrieve_payload_sequence",
            "_decode_payload_sequence",
        )
        await _walk_once(activation, data_converter, steps, skip_headers=not decode_headers)
        return _no_storage_metrics()

    async def encode_completion(
        completion: Any, data_converter: Any, encode_headers: bool, storage_concurrency_limit: int
    ) -> Any:
        if data_converter.external_storage is not None:
            return await sdk_encode(completion, data_converter, encode_headers, storage_concurrency_limit)
        steps = (
            "_encode_payload_sequence",
            "_external_store_payload_sequence",
            "_encode_reference_payload_sequence",
        )
        await _walk_once(completion, data_converter, steps, skip_headers=not encode_headers)
        return _no_storage_metrics()

    bridge.decode_activation = decode_activation
    bridge.encode_completion = encode_completion
    return True


def uninstall() -> None:
    """Put the SDK's own passes back (tests)."""
    if _installed:
        bridge: Any = importlib.import_module(_BRIDGE)
        bridge.decode_activation = _installed.pop("decode_activation")
        bridge.encode_completion = _installed.pop("encode_completion")
        _installed.clear()


def _command_aware_class() -> type | None:
    """The SDK's command-aware data converter class, if it is the version whose per-sequence
    methods each only resolve the converter for the command being visited (`_get_current_dc`)
    and delegate to it; then a sequence's three steps resolve it once, not three times (for a
    command's payloads each resolution enters the sandbox). None: resolve per step, as the SDK."""
    try:
        cls: type = importlib.import_module("temporalio.worker._workflow")._CommandAwareDataConverter
    except (ImportError, AttributeError):
        return None
    if _source_digest(cls) != _KNOWN_SOURCES["_CommandAwareDataConverter"]:
        return None
    return cls


async def _walk_once(message: Any, data_converter: Any, steps: tuple[str, str, str], *, skip_headers: bool) -> None:
    from temporalio.bridge.worker import _Visitor
    from temporalio.worker._command_aware_visitor import CommandAwarePayloadVisitor

    resolve_once = type(data_converter) is _installed.get("resolve_once")

    async def all_steps(payloads: Sequence[Payload]) -> list[Payload]:
        # The converter for the command whose payloads these are (the visitor says which).
        converter = data_converter._get_current_dc() if resolve_once else data_converter
        out = list(payloads)
        for step in steps:
            out = await getattr(converter, step)(out)
        return out

    await CommandAwarePayloadVisitor(skip_search_attributes=True, skip_headers=skip_headers).visit(
        _Visitor(all_steps), message
    )


def _no_storage_metrics() -> Any:
    from temporalio.converter._extstore import StorageOperationMetrics

    return StorageOperationMetrics()
