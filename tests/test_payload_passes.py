"""The worker's single payload pass (handoff/payload_passes.py) does what the SDK's three do."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from pydantic import SecretStr
from temporalio.api.common.v1 import Payload
from temporalio.bridge import worker as bridge
from temporalio.bridge.proto.workflow_activation import WorkflowActivation
from temporalio.bridge.proto.workflow_completion import WorkflowActivationCompletion
from temporalio.client import WorkflowHistory
from temporalio.converter import DataConverter, PayloadCodec
from temporalio.worker import Replayer

from handoff import payload_passes
from handoff.config import Settings
from handoff.converter import data_converter
from handoff.sandbox import workflow_runner
from tests.encryption_keys import TEST_KEYS
from workflows import ConversationWorkflow

HISTORIES = sorted((Path(__file__).parent / "fixtures" / "histories").glob("*.json"))


@pytest.fixture
def single_pass() -> Iterator[None]:
    installed_before = bool(payload_passes._installed)
    assert payload_passes.install()
    yield
    if not installed_before:
        payload_passes.uninstall()


class Marking(PayloadCodec):
    """A deterministic codec: wraps each payload, so two runs can be compared byte for byte."""

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [Payload(metadata={"encoding": b"test/marked"}, data=p.SerializeToString()) for p in payloads]

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [Payload.FromString(p.data) for p in payloads]


def _activation(converter: DataConverter) -> WorkflowActivation:
    act = WorkflowActivation(run_id="run")
    signal = act.jobs.add().signal_workflow
    signal.signal_name = "CustomerMessage"
    signal.input.extend(converter.payload_converter.to_payloads(["hello", {"a": 1}]))
    update = act.jobs.add().do_update
    update.name = "Reply"
    update.input.extend(converter.payload_converter.to_payloads(["hi"]))
    resolved = act.jobs.add().resolve_activity
    resolved.seq = 3
    resolved.result.completed.result.CopyFrom(converter.payload_converter.to_payloads(["answer"])[0])
    return act


def _completion(converter: DataConverter) -> WorkflowActivationCompletion:
    completion = WorkflowActivationCompletion(run_id="run")
    command = completion.successful.commands.add().schedule_activity
    command.seq = 4
    command.activity_type = "BotAnswer"
    command.arguments.extend(converter.payload_converter.to_payloads([{"text": "question"}]))
    response = completion.successful.commands.add().update_response
    response.protocol_instance_id = "update-1"
    response.completed.CopyFrom(converter.payload_converter.to_payloads([{"status": "bot"}])[0])
    return completion


async def test_one_walk_gives_the_sdks_payloads(single_pass: None) -> None:
    converter = DataConverter(payload_codec=Marking())
    sdk_decode, sdk_encode = (
        payload_passes._installed["decode_activation"],
        payload_passes._installed["encode_completion"],
    )
    assert bridge.decode_activation is not sdk_decode  # the single pass is what the worker calls

    encoded_ours, encoded_sdk = _completion(converter), _completion(converter)
    await bridge.encode_completion(encoded_ours, converter, True, 1)
    await sdk_encode(encoded_sdk, converter, True, 1)
    assert encoded_ours == encoded_sdk
    assert encoded_ours != _completion(converter)  # it did encode

    activation = _activation(converter)
    await sdk_encode(activation, converter, True, 1)  # the same walk encodes an activation's payloads
    decoded_ours, decoded_sdk = WorkflowActivation(), WorkflowActivation()
    decoded_ours.CopyFrom(activation)
    decoded_sdk.CopyFrom(activation)
    metrics = await bridge.decode_activation(decoded_ours, converter, True, 1)
    await sdk_decode(decoded_sdk, converter, True, 1)
    assert decoded_ours == decoded_sdk == _activation(converter)
    assert metrics.payload_count == 0


@pytest.mark.parametrize("path", HISTORIES, ids=lambda p: p.stem)
async def test_saved_histories_replay_with_the_single_pass(single_pass: None, path: Path) -> None:
    history = WorkflowHistory.from_json(path.stem, path.read_text())
    converter = data_converter(Settings(encryption_keys=SecretStr(TEST_KEYS)))
    replayer = Replayer(workflows=[ConversationWorkflow], data_converter=converter, workflow_runner=workflow_runner())
    result = await replayer.replay_workflow(history, raise_on_replay_failure=True)
    assert result.replay_failure is None
    # Replay went through the command-aware converter, resolved once per payload sequence.
    assert payload_passes._installed["resolve_once"] is not None


def test_another_sdk_version_keeps_the_sdks_own_passes(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    if payload_passes._installed:
        payload_passes.uninstall()
    monkeypatch.setitem(payload_passes._KNOWN_SOURCES, "encode_completion", "0000000000000000")
    before = bridge.encode_completion, bridge.decode_activation
    with caplog.at_level(logging.WARNING, logger="handoff.payload_passes"):
        assert payload_passes.install() is False
    assert (bridge.encode_completion, bridge.decode_activation) == before
    assert "not the version this was written against" in caplog.text
