"""Conversation ids the server issues and can recognise, without storing anything.

An id is a random part and its HMAC-SHA256 under the deployment's conversation secret
(CONVERSATION_SECRET; in the local profile a key kept in var/), both base64url:
`<22 characters>.<22 characters>`. Any server that has the secret can tell an id it issued
from one a client made up, so every replica accepts the others' ids with no shared state,
and nobody can continue, read or answer a conversation whose id they were not given.

The id is the visitor's key to their conversation, so it never leaves their browser:

* staff, exports, logs and the audit log name a conversation by its public **handle**
  ("C-7KQ2M9XH4P": a keyed hash of the id, `handle`), which the chat refuses like any id it
  did not issue (wrong shape) and which cannot be turned back into the id. The console finds
  the conversation behind a handle on the server (`find`). Handles are keyed with the secret
  the console and every chat server share (Settings.live_chat_key), so both name a
  conversation alike;
* a socket.io connection resumes a conversation only with the visitor's **resume proof**
  (`resume_proof`, an HMAC of the id under the conversation secret): given to the widget in
  `session_confirm`, kept beside the id in the visitor's browser only, never stored on the
  server nor shown to staff. A second connection that knows only the id (read from a
  database, a log or a backup) gets a new conversation.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable

RANDOM_BYTES = 16  # 128 bits: not guessable
MAC_BYTES = 16  # 128 bits of the HMAC: not forgeable
_PURPOSE = b"scar-faq conversation id v1\x00"
_SHAPE = re.compile(r"[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{22}")
LENGTH = 45
_HANDLE_PURPOSE = b"scar-faq conversation handle v1\x00"
_RESUME_PURPOSE = b"scar-faq conversation resume proof v1\x00"
# Crockford's base32: no I, L, O or U, so a handle read out on the phone is not misheard.
_HANDLE_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
HANDLE_CHARS = 10  # 50 bits: two of a clinic's conversations share one about once in 10^7 pairs
HANDLE_PREFIX = "C-"
_HANDLE_SHAPE = re.compile(rf"{HANDLE_PREFIX}[{_HANDLE_ALPHABET}]{{{HANDLE_CHARS}}}")


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


def _handle_mac(shared_secret: str) -> hmac.HMAC:
    """The keyed hash of handles, ready for an id (copied for each: the key is set up once)."""
    return hmac.new(shared_secret.encode(), _HANDLE_PURPOSE, hashlib.sha256)


def _handle_number(conversation_id: str, mac: hmac.HMAC) -> int:
    """The 50 bits of the keyed hash of `conversation_id` that its handle spells."""
    each = mac.copy()
    each.update(conversation_id.encode())
    return int.from_bytes(each.digest()[:8], "big") >> (64 - 5 * HANDLE_CHARS)


def handle(conversation_id: str, shared_secret: str) -> str:
    """The public name staff see for a conversation, e.g. "C-7KQ2M9XH4P".

    `shared_secret` is Settings.live_chat_key(), which the console and every chat server
    have. The chat does not accept a handle, and a handle does not give away the id.
    """
    number = _handle_number(conversation_id, _handle_mac(shared_secret))
    chars = [_HANDLE_ALPHABET[(number >> (5 * i)) & 31] for i in reversed(range(HANDLE_CHARS))]
    return HANDLE_PREFIX + "".join(chars)


def is_handle(text: object) -> bool:
    """Whether `text` has the shape of a handle (upper case; spaces around it are not removed)."""
    return isinstance(text, str) and _HANDLE_SHAPE.fullmatch(text) is not None


def find(wanted: str, conversation_ids: Iterable[str], shared_secret: str) -> list[str]:
    """The ids among `conversation_ids` whose handle is `wanted` (normally one, or none)."""
    wanted = wanted.strip().upper()
    if not is_handle(wanted):
        return []
    number = 0
    for char in wanted[len(HANDLE_PREFIX) :]:
        number = number * 32 + _HANDLE_ALPHABET.index(char)
    mac = _handle_mac(shared_secret)
    return [cid for cid in conversation_ids if _handle_number(cid, mac) == number]


def resume_proof(conversation_id: str, key: bytes) -> str:
    """What a socket.io client must show to resume `conversation_id` (computed, never stored)."""
    digest = hmac.new(key, _RESUME_PURPOSE + conversation_id.encode(), hashlib.sha256).digest()
    return _b64(digest[:MAC_BYTES])


def may_resume(conversation_id: object, proof: object, key: bytes) -> bool:
    """Whether a client may resume `conversation_id`: an issued id with its resume proof."""
    if not is_issued(conversation_id, key) or not isinstance(proof, str) or not proof.isascii():
        return False  # a proof is ASCII; anything else (a lone surrogate included) cannot encode
    return hmac.compare_digest(proof.encode(), resume_proof(str(conversation_id), key).encode())
