"""Conversation ids the server issues and can recognise, without storing anything.

An id is a random part and its HMAC-SHA256 under the deployment's conversation secret
(CONVERSATION_SECRET; in the local profile a key kept in var/), both base64url:
`<22 characters>.<22 characters>`. Any server that has the secret can tell an id it issued
from one a client made up, so every replica accepts the others' ids with no shared state,
and nobody can continue, read or answer a conversation whose id they were not given.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets

RANDOM_BYTES = 16  # 128 bits: not guessable
MAC_BYTES = 16  # 128 bits of the HMAC: not forgeable
_PURPOSE = b"scar-faq conversation id v1\x00"
_SHAPE = re.compile(r"[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{22}")
LENGTH = 45


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _mac(key: bytes, random_part: str) -> str:
    digest = hmac.new(key, _PURPOSE + random_part.encode(), hashlib.sha256).digest()
    return _b64(digest[:MAC_BYTES])


def issue(key: bytes) -> str:
    """A new conversation id, signed with `key`."""
    random_part = _b64(secrets.token_bytes(RANDOM_BYTES))
    return f"{random_part}.{_mac(key, random_part)}"


def is_issued(conversation_id: object, key: bytes) -> bool:
    """Whether `conversation_id` is an id issued with `key` (anything else, any type: False)."""
    if not isinstance(conversation_id, str) or not _SHAPE.fullmatch(conversation_id):
        return False
    random_part, mac = conversation_id.split(".")
    return hmac.compare_digest(mac, _mac(key, random_part))
