"""Rasa's REST and socket.io channels with input checks, at the same URLs.

Stock Rasa 3.6 answers a JSON array body with a 500, processes any length of text and
logs the visitor's text when processing fails. These subclasses refuse malformed bodies
with a clear 400 (415 if not JSON), cut over-long messages, slow down a sender who floods
(429, or a polite message on socket.io), and never log what the visitor wrote.

Rasa's `--cors` only covers the HTTP routes: its socket.io server is created with
`cors_allowed_origins=[]`, which turns engine.io's origin check off, so any web page could
open a chat. GuardedSocketIOInput refuses socket.io requests (polling and WebSocket) from
browsers on origins other than those in CORS_ORIGINS.
"""

from __future__ import annotations

import json
import logging
import re
import time
from asyncio import CancelledError
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable
from functools import lru_cache
from typing import Any

from rasa.core.channels.channel import CollectingOutputChannel, UserMessage
from rasa.core.channels.rest import RestInput
from rasa.core.channels.socketio import SocketIOInput
from rasa.shared.core.constants import DEFAULT_INTENTS
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse

from common import settings
from common.domain import load_domain
from common.settings import MAX_MESSAGE_CHARS

logger = logging.getLogger(__name__)

MAX_SENDER_CHARS = 128
TOO_FAST = (
    "You're sending messages faster than I can answer. Please wait a few seconds, "
    "then send your message again."
)
_CONTROL_CHARS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_PAYLOAD = re.compile(r"/([A-Za-z_][A-Za-z0-9_]*)(\{.*\})?", re.DOTALL)

OnNewMessage = Callable[[UserMessage], Awaitable[Any]]


@lru_cache(maxsize=1)
def domain_names() -> tuple[frozenset[str], frozenset[str]]:
    """The intents (with Rasa's defaults) and entities a button payload may name."""
    domain = load_domain()
    intents = {next(iter(i)) if isinstance(i, dict) else str(i) for i in domain.get("intents", [])}
    return frozenset(intents | set(DEFAULT_INTENTS)), frozenset(map(str, domain.get("entities", [])))


def safe_payload(text: str) -> str:
    """Keep a "/intent{...}" message only if it is a well-formed payload of the domain.

    Rasa logs the whole message, values included, when a typed payload is malformed or
    names unknown entities; so anything else starting with "/" becomes plain text, and
    unknown entities are dropped (they could never fill a slot anyway).
    """
    match = _PAYLOAD.fullmatch(text)
    intents, entities = domain_names()
    if not match or match.group(1) not in intents:
        return text.lstrip("/ ")
    if not match.group(2):
        return text
    try:
        values = json.loads(match.group(2))
    except json.JSONDecodeError:
        return text.lstrip("/ ")
    if not isinstance(values, dict):
        return text.lstrip("/ ")
    known = {key: value for key, value in values.items() if key in entities}
    return f"/{match.group(1)}{json.dumps(known)}" if known else f"/{match.group(1)}"


class SenderRateLimiter:
    """At most `limit` messages from one sender in any `window` seconds, in this process.

    One visitor (or script) flooding a conversation would otherwise queue up behind its
    lock and starve everyone else. Refused messages do not count, so a visitor who waits
    is served again; at most `max_senders` senders are remembered (oldest forgotten).
    """

    def __init__(
        self,
        limit: int,
        window: float = 60.0,
        max_senders: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit, self.window, self.max_senders, self.clock = limit, window, max_senders, clock
        self._recent: OrderedDict[str, deque[float]] = OrderedDict()

    def allow(self, sender: str) -> bool:
        """Count a message from `sender` and say whether it may be processed."""
        now = self.clock()
        times = self._recent.pop(sender, None) or deque()
        while times and now - times[0] >= self.window:
            times.popleft()
        self._recent[sender] = times
        if len(self._recent) > self.max_senders:
            self._recent.popitem(last=False)
        if len(times) >= self.limit:
            return False
        times.append(now)
        return True


def clean_text(text: str, max_chars: int = MAX_MESSAGE_CHARS) -> str:
    """Drop control characters, cut to `max_chars`, and vet typed payloads."""
    cleaned = _CONTROL_CHARS.sub("", text).strip()[:max_chars]
    return safe_payload(cleaned) if cleaned.startswith("/") else cleaned


def is_json(request: Request) -> bool:
    """Whether the request says its body is JSON (Content-Type: application/json[; charset=...])."""
    return request.headers.get("content-type", "").split(";")[0].strip().lower() == "application/json"


def parse_rest_body(request: Request, max_chars: int = MAX_MESSAGE_CHARS) -> dict[str, Any]:
    """Return the validated body of a REST message, or raise ValueError saying why."""
    try:
        body = request.json
    except Exception as error:  # sanic raises its own InvalidUsage subclasses
        raise ValueError("The request body must be JSON.") from error
    if not isinstance(body, dict):
        raise ValueError('The body must be a JSON object: {"sender": ..., "message": ...}.')
    sender, message = body.get("sender", "default"), body.get("message")
    if not isinstance(sender, str) or not 0 < len(sender) <= MAX_SENDER_CHARS:
        raise ValueError(f'"sender" must be a string of 1 to {MAX_SENDER_CHARS} characters.')
    if not isinstance(message, str):
        raise ValueError('"message" must be a string.')
    metadata = body.get("metadata")
    return {
        "sender": sender,
        "message": clean_text(message, max_chars),
        "metadata": metadata if isinstance(metadata, dict) else None,
    }


class GuardedRestInput(RestInput):
    """POST /webhooks/rest/webhook, with body validation, a per-sender rate and private error logs."""

    def blueprint(self, on_new_message: OnNewMessage) -> Blueprint:
        """Same routes as RestInput: GET / (health) and POST /webhook."""
        limits = settings.current()
        limiter = SenderRateLimiter(limits.max_messages_per_minute)
        webhook = Blueprint(f"custom_webhook_{type(self).__name__}", __name__)

        @webhook.route("/", methods=["GET"])
        async def health(_: Request) -> HTTPResponse:
            return response.json({"status": "ok"})

        @webhook.route("/webhook", methods=["POST"])
        async def receive(request: Request) -> HTTPResponse:
            if not is_json(request):
                return response.json(
                    {
                        "error": "Send the message as JSON, with the header "
                        '"Content-Type: application/json".'
                    },
                    status=415,
                )
            try:
                body = parse_rest_body(request, limits.max_message_chars)
            except ValueError as error:
                return response.json({"error": str(error)}, status=400)
            if not limiter.allow(body["sender"]):
                return response.json({"error": TOO_FAST}, status=429, headers={"Retry-After": "10"})
            collector = CollectingOutputChannel()
            message = UserMessage(
                body["message"],
                collector,
                body["sender"],
                input_channel=self.name(),
                metadata=body["metadata"],
            )
            try:
                await on_new_message(message)
            except CancelledError:
                logger.error("A message timed out before it was answered.")
            except Exception as error:  # the visitor's text is deliberately not logged
                logger.error("Failed to handle a message: %s", type(error).__name__)
            return response.json(collector.messages)

        return webhook


class GuardedSocketIOInput(SocketIOInput):
    """socket.io channel (web widget): allowed origins only, messages cleaned and rated like REST ones."""

    def blueprint(self, on_new_message: OnNewMessage) -> Blueprint:
        """SocketIOInput's blueprint, with the origin checked and each message's text cleaned."""
        limits = settings.current()
        limiter = SenderRateLimiter(limits.max_messages_per_minute)

        async def cleaned(message: UserMessage) -> None:
            if not limiter.allow(message.sender_id):
                await message.output_channel.send_text_message(message.sender_id, TOO_FAST)
                return
            message.text = clean_text(message.text or "", limits.max_message_chars)
            await on_new_message(message)

        webhook = super().blueprint(cleaned)
        self._check_origins(list(limits.cors_origins))
        return webhook

    def _check_origins(self, origins: list[str]) -> None:
        """Refuse engine.io requests whose Origin header is not one of `origins` ("*": any).

        engine.io's own check (cors_allowed_origins) would also add CORS headers that
        duplicate those of Rasa's --cors (sanic-cors), which browsers reject; so the check
        wraps the request handler instead and leaves the headers to --cors. Requests without
        an Origin header (not from a web page, e.g. a server-side client) pass, as in engine.io.
        """
        if "*" in origins or self.sio is None:
            return
        engine = self.sio.eio
        handle_request = engine.handle_request

        async def handle_allowed_origins(request: Request, *args: Any, **kwargs: Any) -> Any:
            origin = request.headers.get("origin")
            if origin is not None and origin not in origins:
                logger.warning(
                    "Refused a socket.io request from origin %s (not in CORS_ORIGINS).", origin[:100]
                )
                return response.json({"error": "This origin may not use the chat."}, status=403)
            return await handle_request(request, *args, **kwargs)

        engine.handle_request = handle_allowed_origins  # attached as the route when registered
