"""Payload encryption: what Temporal stores of a conversation is ciphertext.

Customer messages are personal data, and every workflow input, signal, update, activity
argument and result, query answer and failure message goes through Temporal's server and
database. `EncryptionCodec` encrypts each payload with AES-256-GCM (AES-128/192 if the key is
shorter) before it leaves the process and decrypts it on the way back, so only processes
holding a key (workers, the API, the CLI, the codec endpoint for operators) see plain text.

Rotation: each encrypted payload names its key in its metadata (`encryption-key-id`), the
data is `nonce (12 bytes) || ciphertext+tag`, the same layout as Temporal's encryption
samples in other languages. The first configured key encrypts; every configured key
decrypts. To rotate, put the new key first and keep the old one until no history Temporal
still keeps (open conversations, and closed ones within the namespace's retention) holds
payloads under it. A payload under a key this process does not know, or one that fails
authentication, raises `PayloadDecryptionError` naming the key id: a worker then fails the
workflow task and retries it, so nothing is dropped, and the conversation continues as
soon as the key is configured.

Only payloads this codec can authenticate are believed. AES-GCM proves that a payload was
written by a holder of a key; one without our encoding (e.g. a signal sent by hand with
`temporal workflow signal`, or by any client without the keys) proves nothing, and the workflow
trusts what a command says (which agent sends it). So `decode` turns such a payload into one of
encoding `binary/unauthenticated` (its content dropped), which Handoff's payload converter
refuses with a non-retryable error (handoff/converter.py): the SDK then fails that one
handler's argument conversion, so an unauthenticated signal is logged and dropped, an update is
rejected with the reason, and the workflow goes on; a workflow started that way fails at once.
Raising here instead would fail the whole workflow task, retried for ever: one forged signal
would stop the conversation.
What Temporal legitimately sends unencrypted is not codec'd at all (search attributes, and
headers, which the worker does not decode), and server-made failures (timeouts) carry no
payloads. The codec endpoint for operators (`decode_for_display`) shows such payloads as sent.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from temporalio.api.common.v1 import Payload
from temporalio.converter import PayloadCodec

from handoff import local_secrets
from handoff.config import Settings

ENCODING = b"binary/encrypted"
UNAUTHENTICATED = b"binary/unauthenticated"
"""What an unencrypted payload decodes to: an encoding no payload converter accepts."""
ORIGINAL_ENCODING = "unauthenticated-encoding"
KEY_ID = "encryption-key-id"
NONCE_BYTES = 12
TAG_BYTES = 16
KEY_FILE_NAME = "encryption.keys"
KEY_FILE_HEADER = (
    "# Handoff payload encryption keys, 'id:base64key', current first (see HANDOFF_ENCRYPTION_KEYS).\n"
    "# Losing this file makes the encrypted history in Temporal unreadable.\n"
)
KEY_ID_PATTERN = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


class EncryptionConfigError(ValueError):
    """The configured keys cannot be used; the message says which entry and why, never the key."""


class PayloadDecryptionError(ValueError):
    """An encrypted payload cannot be decrypted here."""


class UnknownEncryptionKey(PayloadDecryptionError):
    def __init__(self, key_id: str, known: Sequence[str]) -> None:
        super().__init__(
            f"the payload is encrypted with key id {key_id!r}, which is not configured here "
            f"(known: {', '.join(known)}); add that key to HANDOFF_ENCRYPTION_KEYS or the key file"
        )
        self.key_id = key_id


@dataclass(frozen=True)
class Key:
    id: str
    secret: bytes


def parse_keys(text: str, source: str) -> list[Key]:
    """Keys from "id:base64key" entries separated by commas or newlines ('#' starts a comment)."""
    keys: list[Key] = []
    lines = (line.split("#", 1)[0] for line in text.splitlines())
    entries = [entry.strip() for line in lines for entry in line.split(",")]
    for number, entry in enumerate((e for e in entries if e), start=1):
        key_id, colon, encoded = entry.partition(":")
        key_id = key_id.strip()
        where = f"{source}, key {number}"
        if not colon:
            raise EncryptionConfigError(f"{where}: expected 'id:base64key'")
        if not KEY_ID_PATTERN.match(key_id):
            raise EncryptionConfigError(f"{where}: the key id must be 1-64 letters, digits, '.', '_' or '-'")
        try:
            secret = base64.b64decode(encoded.strip(), validate=True)
        except binascii.Error:
            raise EncryptionConfigError(f"{where} ({key_id!r}): the key is not valid base64") from None
        if len(secret) not in (16, 24, 32):
            raise EncryptionConfigError(
                f"{where} ({key_id!r}): the key is {len(secret)} bytes; AES-GCM needs 16, 24 or 32 (32 recommended)"
            )
        if any(k.id == key_id for k in keys):
            raise EncryptionConfigError(f"{where}: key id {key_id!r} appears twice")
        keys.append(Key(key_id, secret))
    if not keys:
        raise EncryptionConfigError(f"{source}: no key configured")
    return keys


def new_key_entry() -> str:
    """A fresh 256-bit key as one 'id:base64key' entry, e.g. for a key file or the environment."""
    return f"key-{secrets.token_hex(4)}:{base64.b64encode(secrets.token_bytes(32)).decode('ascii')}"


def key_file(settings: Settings) -> Path:
    """Where keys are read from when HANDOFF_ENCRYPTION_KEYS is unset."""
    if settings.encryption_key_file is not None:
        return settings.encryption_key_file
    return local_secrets.data_dir(settings) / KEY_FILE_NAME


def load_keys(settings: Settings, *, create: bool = False) -> list[Key]:
    """The configured keys, current first; without configuration, the data folder's key file,
    made with one new key if `create` (only `handoff up` does: anywhere else a new key would
    encrypt history nobody else can read, in a folder nobody backs up)."""
    if settings.encryption_keys is not None and settings.encryption_keys.get_secret_value().strip():
        return parse_keys(settings.encryption_keys.get_secret_value(), "HANDOFF_ENCRYPTION_KEYS")
    path = key_file(settings)
    if settings.encryption_key_file is not None and not path.exists():
        raise EncryptionConfigError(f"HANDOFF_ENCRYPTION_KEY_FILE: no file at {path}")
    missing = (
        f"no encryption key configured: set HANDOFF_ENCRYPTION_KEYS (or HANDOFF_ENCRYPTION_KEY_FILE), "
        f"or run this where `handoff up` keeps its data (it makes the key {path}); see README, Security"
    )
    try:
        text = local_secrets.read_or_create(
            path, lambda: KEY_FILE_HEADER + new_key_entry(), create=create, missing=missing
        )
    except local_secrets.SecretFileError as e:
        raise EncryptionConfigError(str(e)) from None
    return parse_keys(text, str(path))


class EncryptionCodec(PayloadCodec):
    """AES-GCM over whole serialized payloads; see the module docstring."""

    def __init__(self, keys: Sequence[Key]) -> None:
        if not keys:
            raise EncryptionConfigError("no encryption key")
        self.current = keys[0]
        self._ciphers = {k.id: AESGCM(k.secret) for k in keys}
        self._current_cipher = self._ciphers[self.current.id]
        self._current_id = self.current.id.encode("ascii")

    @classmethod
    def from_settings(cls, settings: Settings) -> EncryptionCodec:
        return cls(load_keys(settings))

    @property
    def key_ids(self) -> list[str]:
        return list(self._ciphers)

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.encrypt(p) for p in payloads]

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.decrypt(p) for p in payloads]

    async def decode_for_display(self, payloads: Sequence[Payload]) -> list[Payload]:
        """Decode for a person to read (the codec endpoint): unencrypted payloads as they were sent."""
        return [self.decrypt(p, trust_plain=True) for p in payloads]

    def encrypt(self, payload: Payload) -> Payload:
        nonce = os.urandom(NONCE_BYTES)
        data = nonce + self._current_cipher.encrypt(nonce, payload.SerializeToString(), None)
        return Payload(metadata={"encoding": ENCODING, KEY_ID: self._current_id}, data=data)

    def decrypt(self, payload: Payload, *, trust_plain: bool = False) -> Payload:
        if payload.metadata.get("encoding") != ENCODING:
            if trust_plain:
                return payload
            # Not ours: keep nothing of its content, so nothing can read it as data.
            return Payload(
                metadata={"encoding": UNAUTHENTICATED, ORIGINAL_ENCODING: payload.metadata.get("encoding", b"")}
            )
        key_id = payload.metadata.get(KEY_ID, b"").decode("utf-8", "replace")
        if not key_id:
            raise PayloadDecryptionError("the encrypted payload names no key id (metadata 'encryption-key-id')")
        cipher = self._ciphers.get(key_id)
        if cipher is None:
            raise UnknownEncryptionKey(key_id, self.key_ids)
        if len(payload.data) < NONCE_BYTES + TAG_BYTES:
            raise PayloadDecryptionError(f"the payload under key id {key_id!r} is too short to be encrypted data")
        try:
            plain = cipher.decrypt(payload.data[:NONCE_BYTES], payload.data[NONCE_BYTES:], None)
        except InvalidTag:
            raise PayloadDecryptionError(
                f"the payload under key id {key_id!r} fails authentication: the key configured under that id "
                "is not the one it was encrypted with, or the payload was altered"
            ) from None
        return Payload.FromString(plain)
