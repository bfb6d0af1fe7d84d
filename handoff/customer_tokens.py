"""Customer tokens: a bearer token that opens one conversation and nothing else.

Stateless: the token is an HMAC-SHA256 of the conversation id under a server secret, so
nothing is stored per conversation, any API process with the same secret can check it,
and a token can never open another conversation. The same secret derives conversation ids
from a client's `Idempotency-Key`, so a retried create lands on the same conversation while
the id reveals nothing about the customer or the key, and fingerprints request bodies, so a
different request under the same key is refused rather than answered with the first one's
conversation and token (the key is no password: see handoff/api/routes/customer.py).

The secret comes from `HANDOFF_CUSTOMER_TOKEN_SECRET`; without it, from a file (mode 0600):
`HANDOFF_CUSTOMER_TOKEN_SECRET_FILE`, else `customer-token.secret` next to the SQLite database
file, else `.handoff/customer-token.secret`; `handoff up` makes a random one there on first start.
Deleting or changing the secret invalidates every customer token issued with it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from pathlib import Path

from handoff import local_secrets
from handoff.config import Settings

SECRET_FILE_NAME = "customer-token.secret"


def secret_file(settings: Settings) -> Path:
    """Where the generated secret lives when none is configured."""
    if settings.customer_token_secret_file is not None:
        return settings.customer_token_secret_file
    return local_secrets.data_dir(settings) / SECRET_FILE_NAME


def load_secret(settings: Settings, *, create: bool = False) -> bytes:
    """The configured secret, or the one kept in `secret_file` (made there if `create`: `handoff up` only)."""
    if settings.customer_token_secret is not None:
        value = settings.customer_token_secret.get_secret_value()
        if len(value) < 16:
            raise ValueError("HANDOFF_CUSTOMER_TOKEN_SECRET must be at least 16 characters long")
        return value.encode("utf-8")
    path = secret_file(settings)
    missing = (
        f"no customer token secret: set HANDOFF_CUSTOMER_TOKEN_SECRET (or HANDOFF_CUSTOMER_TOKEN_SECRET_FILE), "
        f"or run this where `handoff up` keeps its data (it makes one in {path})"
    )
    value = local_secrets.read_or_create(path, lambda: secrets.token_urlsafe(32), create=create, missing=missing)
    if len(value) < 16:
        raise local_secrets.SecretFileError(
            f"the customer token secret in {path} is empty or too short; delete the file to renew it"
        )
    return value.encode("ascii")


class CustomerTokens:
    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    def _mac(self, purpose: str, *parts: str) -> bytes:
        message = "\0".join((purpose, *parts)).encode("utf-8")
        return hmac.new(self._secret, message, hashlib.sha256).digest()

    def token(self, conversation_id: str) -> str:
        return base64.urlsafe_b64encode(self._mac("customer-token", conversation_id)).rstrip(b"=").decode("ascii")

    def opens(self, token: str, conversation_id: str) -> bool:
        return hmac.compare_digest(token.encode("utf-8", "replace"), self.token(conversation_id).encode("ascii"))

    def conversation_id(self, customer_id: str, idempotency_key: str) -> str:
        """The id a create with this key gets: the same for a retry by the same customer, opaque to everyone."""
        return self._mac("conversation-id", customer_id, idempotency_key).hex()[:32]

    def message_id(self, conversation_id: str, idempotency_key: str) -> str:
        """A message's dedup id from the sender's key, kept in workflow state without the key itself."""
        return self._mac("message-id", conversation_id, idempotency_key).hex()[:32]

    def request_digest(self, *parts: str) -> str:
        """A request body's fingerprint, so a retry under an Idempotency-Key can be told from a
        different request reusing it; keyed, so the stored value reveals nothing of the text."""
        return self._mac("request-body", *parts).hex()
