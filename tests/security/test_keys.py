"""Encryption keys: configured, rotated, or made once for the embedded default; refused clearly
when they cannot work. Payloads round-trip through the codec exactly as the SDK sends them."""

from __future__ import annotations

import base64
import os
import threading
from pathlib import Path

import pytest
from pydantic import SecretStr
from temporalio.api.common.v1 import Payload
from temporalio.exceptions import ApplicationError

from handoff.codec import (
    ENCODING,
    KEY_ID,
    UNAUTHENTICATED,
    EncryptionCodec,
    EncryptionConfigError,
    PayloadDecryptionError,
    UnknownEncryptionKey,
    load_keys,
)
from handoff.config import Settings
from handoff.converter import data_converter
from handoff.customer_tokens import load_secret
from handoff.models import CustomerMessage
from tests.encryption_keys import NEXT_KEY, NEXT_KEY_ID, TEST_KEY_ID, TEST_KEYS

SECRET_TEXT = "my IBAN is FR76 3000 6000 0112 3456 7890 189"


def keyed(keys: str, **overrides: object) -> Settings:
    return Settings(encryption_keys=SecretStr(keys), **overrides)  # type: ignore[arg-type]


def unconfigured(data_dir: Path) -> Settings:
    """The embedded default (`handoff up --data-dir`): no keys in the environment."""
    return Settings(encryption_keys=None, database_url=f"sqlite:///{data_dir / 'handoff.db'}")


async def encrypt(settings: Settings, text: str = SECRET_TEXT) -> list[Payload]:
    return await data_converter(settings).encode([CustomerMessage(text=text)])


async def decrypt(settings: Settings, payloads: list[Payload]) -> str:
    [message] = await data_converter(settings).decode(payloads, [CustomerMessage])
    assert isinstance(message, CustomerMessage)
    return message.text


async def test_a_payload_is_ciphertext_under_the_current_key_and_decrypts_back() -> None:
    settings = keyed(TEST_KEYS)
    [payload] = await encrypt(settings)
    assert payload.metadata["encoding"] == ENCODING
    assert payload.metadata[KEY_ID] == TEST_KEY_ID.encode()
    assert SECRET_TEXT.encode() not in payload.data
    assert b"json/plain" not in payload.data  # the inner payload's metadata is encrypted too
    assert await decrypt(settings, [payload]) == SECRET_TEXT
    # A fresh nonce each time: the same message never gives the same ciphertext.
    assert (await encrypt(settings))[0].data != payload.data


async def test_rotation_encrypts_with_the_first_key_and_decrypts_with_any() -> None:
    old, rotated = keyed(TEST_KEYS), keyed(f"{NEXT_KEY},{TEST_KEYS}")
    written_before = await encrypt(old)
    written_after = await encrypt(rotated)
    assert written_after[0].metadata[KEY_ID] == NEXT_KEY_ID.encode()
    assert await decrypt(rotated, written_before) == SECRET_TEXT
    assert await decrypt(rotated, written_after) == SECRET_TEXT
    # Once the old key is dropped, what it encrypted fails, naming the key that is missing.
    with pytest.raises(UnknownEncryptionKey, match=TEST_KEY_ID) as refused:
        await decrypt(keyed(NEXT_KEY), written_before)
    assert NEXT_KEY_ID in str(refused.value)  # and what is known


async def test_a_different_key_under_the_same_id_or_an_altered_payload_fails_authentication() -> None:
    [payload] = await encrypt(keyed(TEST_KEYS))
    impostor = keyed(f"{TEST_KEY_ID}:{NEXT_KEY.split(':')[1]}")
    with pytest.raises(PayloadDecryptionError, match="fails authentication"):
        await decrypt(impostor, [payload])
    altered = Payload(metadata=dict(payload.metadata), data=payload.data[:-1] + bytes([payload.data[-1] ^ 1]))
    with pytest.raises(PayloadDecryptionError, match="fails authentication"):
        await decrypt(keyed(TEST_KEYS), [altered])
    truncated = Payload(metadata=dict(payload.metadata), data=payload.data[:10])
    with pytest.raises(PayloadDecryptionError, match="too short"):
        await decrypt(keyed(TEST_KEYS), [truncated])
    nameless = Payload(metadata={"encoding": ENCODING}, data=payload.data)
    with pytest.raises(PayloadDecryptionError, match="no key id"):
        await decrypt(keyed(TEST_KEYS), [nameless])


async def test_payloads_not_encrypted_by_handoff_are_not_believed() -> None:
    """E.g. a signal sent by hand with `temporal workflow signal` by someone without the keys: no
    converter reads it (the workflow drops such a signal, refuses such an update; see
    tests/security/test_forged_commands.py), and nothing of its content is kept."""
    plain = data_converter(keyed(TEST_KEYS)).payload_converter.to_payloads([CustomerMessage(text="hi")])
    [decoded] = await EncryptionCodec.from_settings(keyed(TEST_KEYS)).decode(plain)
    assert decoded.metadata["encoding"] == UNAUTHENTICATED
    assert decoded.data == b""
    with pytest.raises(ApplicationError, match="not encrypted with a Handoff key") as refused:
        await decrypt(keyed(TEST_KEYS), plain)
    assert refused.value.type == "UnauthenticatedPayload"
    assert refused.value.non_retryable
    # The operators' codec endpoint shows it as it was sent.
    assert await EncryptionCodec.from_settings(keyed(TEST_KEYS)).decode_for_display(plain) == plain


@pytest.mark.parametrize(
    ("keys", "reason"),
    [
        ("no-colon-here", "expected 'id:base64key'"),
        ("k1:not base64!", "not valid base64"),
        (f"k1:{base64.b64encode(b'short').decode()}", "5 bytes; AES-GCM needs 16, 24 or 32"),
        (f"{TEST_KEYS},{TEST_KEYS}", "appears twice"),
        (f"bad id!:{TEST_KEYS.split(':')[1]}", "key id must be"),
        (" , ", "no key configured"),
    ],
)
def test_unusable_key_configuration_is_refused_with_the_reason_and_without_the_key(keys: str, reason: str) -> None:
    with pytest.raises(EncryptionConfigError, match=reason) as refused:
        load_keys(keyed(keys))
    assert TEST_KEYS.split(":")[1] not in str(refused.value)


def test_keys_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HANDOFF_ENCRYPTION_KEYS", f"{NEXT_KEY}, {TEST_KEYS}")
    assert EncryptionCodec.from_settings(Settings()).key_ids == [NEXT_KEY_ID, TEST_KEY_ID]


async def test_the_embedded_default_makes_a_key_once_in_the_data_folder(tmp_path: Path) -> None:
    settings = unconfigured(tmp_path / "data")
    load_keys(settings, create=True)  # what `handoff up` does at start-up
    written = await encrypt(settings)
    key_file = tmp_path / "data" / "encryption.keys"
    assert key_file.stat().st_mode & 0o777 == 0o600
    # A restart, or the API next to the worker on the same data folder, reads what was written.
    assert await decrypt(unconfigured(tmp_path / "data"), written) == SECRET_TEXT
    # Another data folder is another install: its key cannot read this one's history.
    load_keys(unconfigured(tmp_path / "elsewhere"), create=True)
    with pytest.raises(UnknownEncryptionKey):
        await decrypt(unconfigured(tmp_path / "elsewhere"), written)
    # The same home as the customer token secret.
    load_secret(settings, create=True)
    assert sorted(p.name for p in key_file.parent.iterdir()) == ["customer-token.secret", "encryption.keys"]


def test_processes_starting_at_once_agree_on_one_key(tmp_path: Path) -> None:
    settings = unconfigured(tmp_path)
    seen: list[list[str]] = []
    barrier = threading.Barrier(8)

    def load() -> None:
        barrier.wait()
        seen.append([f"{k.id}:{k.secret.hex()}" for k in load_keys(settings, create=True)])

    threads = [threading.Thread(target=load) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(seen) == 8 and all(s == seen[0] for s in seen)
    assert os.listdir(tmp_path) == ["encryption.keys"]  # no temporary file left behind


async def test_a_key_file_rotates_like_the_environment(tmp_path: Path) -> None:
    key_file = tmp_path / "keys"
    key_file.write_text(f"# current first\n{TEST_KEYS}\n")
    key_file.chmod(0o600)
    settings = Settings(encryption_keys=None, encryption_key_file=key_file)
    written = await encrypt(settings)
    key_file.write_text(f"{NEXT_KEY}\n{TEST_KEYS}  # the old one, until its histories are gone\n")
    rotated = Settings(encryption_keys=None, encryption_key_file=key_file)
    assert EncryptionCodec.from_settings(rotated).key_ids == [NEXT_KEY_ID, TEST_KEY_ID]
    assert await decrypt(rotated, written) == SECRET_TEXT


def test_a_configured_key_file_that_is_missing_is_an_error_not_a_new_key(tmp_path: Path) -> None:
    with pytest.raises(EncryptionConfigError, match="no file at"):
        load_keys(Settings(encryption_keys=None, encryption_key_file=tmp_path / "missing"))
    assert not (tmp_path / "missing").exists()
