"""Rasa's REST and socket.io channels with input checks and server-issued conversation ids.

Stock Rasa 3.6 takes the conversation id from the client (REST `sender`, socket.io
`session_id`), so anyone could continue, read and answer another visitor's conversation;
it answers a JSON array body with a 500, processes any length of text, logs the visitor's
text when processing fails, and answers a failed turn with an empty 200. These subclasses,
at the same URLs:

* issue every conversation's id (common/conversation_ids.py) and start a new conversation
  for any id the server did not issue. REST: the reply's `X-Conversation-Id` header carries
  the id, which the client sends as `sender` to continue (a trusted server-to-server client
  may keep its own ids with `Authorization: Bearer <CHAT_INTEGRATION_TOKEN>`). socket.io:
  `session_confirm` carries `{"session_id": <id>, "resume": <resume proof>}`, a
  `session_request` resumes a conversation only with both (any other request, the id alone
  included, gets a new conversation), and a socket may only send messages for the id it was
  confirmed. Staff and logs name conversations by their public handle, never by the id;
* refuse malformed bodies with a clear 400 (415 if not JSON) and ignore socket.io events of
  the wrong shape, cut over-long messages and vet typed payloads;
* refuse, before Rasa sees them, text that is not valid Unicode (lone or reversed UTF-16
  surrogates, which failed the turn) and metadata nested deeper or larger than
  common/settings.py allows (a deeply nested value was stored and then broke every later turn
  of its conversation): REST with 400, socket.io with a polite message (`check_message`, shared);
* pass the action server a keyed, daily-changing hash of the client's address in the message
  metadata (`VISITOR_KEY`, never the address; any value the client sent there is replaced), so
  live chat requests can be limited per address (actions/live_chat.py);
* slow down a conversation or a client address that floods (429, or a polite message on
  socket.io; channels/rate_limits.py);
* answer a turn that failed (action server or database down: servers/faults.py) with a
  polite message and the clinic's phone number (REST: 503), and send a socket.io turn's
  replies only once it has been saved, never the first half of a failed turn;
* never log what the visitor wrote.

Rasa's `--cors` only covers the HTTP routes: its socket.io server is created with
`cors_allowed_origins=[]`, which turns engine.io's origin check off, so any web page could
open a chat. GuardedSocketIOInput refuses socket.io requests (polling and WebSocket) from
browsers on origins other than those in CORS_ORIGINS.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import re
import time
from asyncio import CancelledError
from collections.abc import Awaitable, Callable
from datetime import date
from functools import lru_cache
from typing import Any

from rasa.core.channels.channel import CollectingOutputChannel, UserMessage, decode_bearer_token
from rasa.core.channels.rest import RestInput
from rasa.core.channels.socketio import SocketIOInput, SocketIOOutput
from rasa.shared.core.constants import DEFAULT_INTENTS
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse

from channels.live import LiveChat, redis_manager
from channels.rate_limits import message_limits, rate_limiter
from common import conversation_ids, settings
from common.clinic import load_settings
from common.domain import load_domain
from common.names import CONVERSATION_HEADER, TROUBLE_RESPONSE, VISITOR_KEY
from common.records import live_chat
from common.settings import MAX_MESSAGE_CHARS, MAX_METADATA_BYTES, MAX_METADATA_DEPTH, Settings
from servers import monitoring

logger = logging.getLogger(__name__)

MAX_SENDER_CHARS = 128
TOO_FAST = (
    "You're sending messages faster than I can answer. Please wait a few seconds, "
    "then send your message again."
)
UNREADABLE = (
    "Sorry, I couldn't read that message: part of it isn't text I can handle. "
    "Please type your message again."
)
_CONTROL_CHARS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
# UTF-16 surrogates never stand alone in valid text (JSON's "\ud83d\ude00" pair is decoded to one
# character); a lone or reversed one cannot be stored as UTF-8 and failed the whole turn.
_SURROGATES = re.compile("[\ud800-\udfff]")
_PAYLOAD = re.compile(r"/([A-Za-z_][A-Za-z0-9_]*)(\{.*\})?", re.DOTALL)

# The widget reports typing at most every 3 s (web/chat.js); more often is ignored.
TYPING_REPORT_SECONDS = 2.0
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


def clean_text(text: str, max_chars: int = MAX_MESSAGE_CHARS) -> str:
    """Drop control characters, cut to `max_chars`, and vet typed payloads."""
    cleaned = _CONTROL_CHARS.sub("", text).strip()[:max_chars]
    return safe_payload(cleaned) if cleaned.startswith("/") else cleaned


class InvalidInput(ValueError):
    """A message the channels refuse before Rasa sees it; str() says why, in plain words."""


def check_text(text: str, what: str = "The message") -> str:
    """`text` if it is valid Unicode text; InvalidInput if it holds a lone or reversed surrogate."""
    if _SURROGATES.search(text):
        raise InvalidInput(f"{what} contains characters that are not valid text. Please type it again.")
    return text


def metadata_depth(value: Any) -> int:
    """How deeply `value` nests lists and objects (0 for a plain value), without recursion.

    Stops counting past MAX_METADATA_DEPTH, so a value nested thousands of levels costs little.
    """
    deepest, stack = 0, [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, depth + 1)
            if deepest > MAX_METADATA_DEPTH:
                return deepest
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)
    return deepest


def check_metadata(metadata: Any) -> dict[str, Any] | None:
    """A message's metadata if it is an object within the bounds; None if it is not an object.

    Raises InvalidInput if it nests deeper than MAX_METADATA_DEPTH levels, takes more than
    MAX_METADATA_BYTES as JSON, or holds text that is not valid Unicode.
    """
    if not isinstance(metadata, dict):
        return None
    too_big = InvalidInput(
        f"The message's metadata must be a JSON object of at most {MAX_METADATA_DEPTH} levels "
        f"and {MAX_METADATA_BYTES} bytes."
    )
    if metadata_depth(metadata) > MAX_METADATA_DEPTH:
        raise too_big
    try:  # shallow now, so this cannot recurse too deep
        encoded = json.dumps(metadata, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInput("The message's metadata contains characters that are not valid text.") from None
    except (TypeError, ValueError):
        raise too_big from None
    if len(encoded) > MAX_METADATA_BYTES:
        raise too_big
    return metadata


def visitor_key(address: str, config: Settings, day: date | None = None) -> str:
    """A keyed hash of the client's address that changes every day: counts requests, names no one."""
    message = f"{(day or date.today()).isoformat()} {address}".encode()
    return hmac.new(config.conversation_key(), message, hashlib.sha256).hexdigest()[:24]


def check_message(text: str, metadata: Any, address: str, config: Settings) -> tuple[str, dict[str, Any]]:
    """What both channels hand to Rasa: the cleaned text, and checked metadata with the visitor key.

    Raises InvalidInput (the channel answers 400, or a polite message on socket.io).
    """
    cleaned = clean_text(check_text(text), config.max_message_chars)
    checked = dict(check_metadata(metadata) or {})
    checked[VISITOR_KEY] = visitor_key(address, config)
    return cleaned, checked


def trouble_text() -> str:
    """What a visitor whose turn failed is told (domain response utter_chat_trouble)."""
    clinic = load_settings()
    values = {
        "clinic_name": clinic.name,
        "clinic_phone": clinic.phone,
        "clinic_email": clinic.email,
        "clinic_hours": clinic.hours,
    }
    return load_domain()["responses"][TROUBLE_RESPONSE][0]["text"].format_map(values)


def is_json(request: Request) -> bool:
    """Whether the request says its body is JSON (Content-Type: application/json[; charset=...])."""
    return request.headers.get("content-type", "").split(";")[0].strip().lower() == "application/json"


def parse_rest_body(request: Request, config: Settings) -> dict[str, Any]:
    """Return the validated body of a REST message, or raise ValueError saying why.

    `sender` may be absent or null (a new conversation); if given it must be a string of 1 to
    MAX_SENDER_CHARS characters. The message and metadata pass `check_message`.
    """
    try:
        body = request.json
    except Exception as error:  # sanic raises its own InvalidUsage subclasses
        raise ValueError("The request body must be JSON.") from error
    if not isinstance(body, dict):
        raise ValueError('The body must be a JSON object: {"sender": ..., "message": ...}.')
    sender, message = body.get("sender"), body.get("message")
    if sender is not None and (not isinstance(sender, str) or not 0 < len(sender) <= MAX_SENDER_CHARS):
        raise ValueError(f'"sender" must be a string of 1 to {MAX_SENDER_CHARS} characters.')
    if sender is not None:
        check_text(sender, '"sender"')
    if not isinstance(message, str):
        raise ValueError('"message" must be a string.')
    text, metadata = check_message(message, body.get("metadata"), client_address(request), config)
    return {"sender": sender, "message": text, "metadata": metadata}


def client_address(request: Request) -> str:
    """The visitor's address: from X-Forwarded-For behind SANIC_PROXIES_COUNT proxies, else the peer's."""
    return request.remote_addr or request.ip or "unknown"


async def serve_turn(on_new_message: OnNewMessage, message: UserMessage) -> bool:
    """Let Rasa handle the message; whether the turn went through (a failure is logged, privately).

    The turn is counted by its outcome, timed and logged with its request id (servers/monitoring.py).
    """
    with monitoring.turn(message.input_channel or "unknown") as current:
        try:
            await on_new_message(message)
            return True
        except CancelledError:
            logger.error("A message timed out before it was answered.")
            monitoring.failed(current, None)
        except Exception as error:  # the visitor's text is deliberately not logged
            logger.error("A message could not be handled: %s", type(error).__name__)
            monitoring.failed(current, error)
    return False


class UnknownIntegration(PermissionError):
    """A request with an Authorization header that is not the chat integration token."""


class GuardedRestInput(RestInput):
    """POST /webhooks/rest/webhook: issued ids, body validation, rate limits, visible failures."""

    def conversation_for(self, request: Request, sender: str | None, config: Settings) -> str:
        """The conversation this request continues or starts.

        An id this server issued continues its conversation; anything else (or none) starts a
        new one, unless a trusted integration sends its own id with the integration token.
        """
        authorization = request.headers.get("authorization")
        if authorization is not None:
            expected = f"Bearer {config.chat_integration_token or ''}".encode()
            if not config.chat_integration_token or not hmac.compare_digest(authorization.encode(), expected):
                raise UnknownIntegration("Missing or wrong chat integration token.")
            if sender is None:
                raise ValueError('An integration must name its conversation in "sender".')
            return sender
        key = config.conversation_key()
        return sender if conversation_ids.is_issued(sender, key) else conversation_ids.issue(key)

    def blueprint(self, on_new_message: OnNewMessage) -> Blueprint:
        """Same routes as RestInput: GET / (health) and POST /webhook."""
        config = settings.current()
        config.conversation_key()  # the local profile's key exists before the first message
        limiter = rate_limiter(config)
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
                body = parse_rest_body(request, config)
                conversation = self.conversation_for(request, body["sender"], config)
            except UnknownIntegration as error:
                return response.json({"error": str(error)}, status=401)
            except ValueError as error:
                monitoring.refused(self.name(), monitoring.metrics.REFUSED_INPUT)
                return response.json({"error": str(error)}, status=400)
            headers = {
                CONVERSATION_HEADER: conversation,
                "Access-Control-Expose-Headers": CONVERSATION_HEADER,
            }
            if not await limiter.allow(message_limits(config, conversation, client_address(request))):
                monitoring.refused(self.name(), monitoring.metrics.TOO_FAST)
                return response.json(
                    {"error": TOO_FAST}, status=429, headers={**headers, "Retry-After": "10"}
                )
            collector = CollectingOutputChannel()
            message = UserMessage(
                body["message"],
                collector,
                conversation,
                input_channel=self.name(),
                metadata=body["metadata"],
            )
            if await serve_turn(on_new_message, message):
                return response.json(collector.messages, headers=headers)
            trouble = [{"recipient_id": conversation, "text": trouble_text()}]
            return response.json(trouble, status=503, headers={**headers, "Retry-After": "30"})

        return webhook


class BufferedSocketIOOutput(SocketIOOutput):
    """SocketIOOutput that holds a turn's messages until `flush` (sent only once the turn is saved)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.pending: list[tuple[str, Any]] = []

    async def _send_message(self, socket_id: str, response: Any) -> None:
        self.pending.append((socket_id, response))

    async def send_custom_json(self, recipient_id: str, json_message: dict[str, Any], **kwargs: Any) -> None:
        """Hold a custom payload, in order with the text.

        Rasa's socket.io shape, {"data": {...}} (the erasure signal, actions/erasure.py), is sent
        as its data, as Rasa does; any other payload as {"custom": {...}}, as REST sends it (an
        answer's source, common/sources.py). Rasa itself would emit the keys as arguments.
        """
        data = json_message.get("data")
        rasa_shaped = set(json_message) == {"data"} and isinstance(data, dict)
        await self._send_message(recipient_id, data if rasa_shaped else {"custom": json_message})

    async def flush(self) -> None:
        """Send the held messages, in order."""
        for socket_id, message in self.pending:
            await super()._send_message(socket_id, message)
        self.pending.clear()


class GuardedSocketIOInput(SocketIOInput):
    """socket.io channel (web widget): issued ids, allowed origins, messages checked like REST ones."""

    def blueprint(self, on_new_message: OnNewMessage) -> Blueprint:
        """SocketIOInput's blueprint, with its connect, session and message handlers replaced."""
        config = settings.current()
        key = config.conversation_key()
        limiter = rate_limiter(config)
        webhook = super().blueprint(on_new_message)
        sio = self.sio
        namespace = self.namespace
        manager = redis_manager(config)
        if manager is not None:  # several servers: an emit reaches a visitor connected to another
            manager.set_server(sio)
            sio.manager = manager
        live = LiveChat(sio, namespace, self.bot_message_evt, config)
        live.register(webhook, config.live_chat_key)

        async def seen(conversation: str | None, typing: bool = False, left: bool = False) -> None:
            """Tell staff chatting with this visitor that they are typing, left or are back."""
            if conversation is None:
                return
            try:
                await asyncio.to_thread(live_chat.visitor_seen, live.db, conversation, typing, left)
            except Exception as error:
                logger.error("Could not note the visitor's presence: %s", type(error).__name__)

        def resumed(requested: str | None, proof: Any) -> str:
            """The conversation a session request gets: the one asked for, with its proof; else a new one."""
            if conversation_ids.may_resume(requested, proof, key):
                return str(requested)
            if conversation_ids.is_issued(requested, key):  # the id, read somewhere, without the proof
                logger.warning(
                    "A socket.io session asked for conversation %s without the visitor's resume proof: "
                    "it was given a new conversation.",
                    conversation_ids.handle(str(requested), config.live_chat_key()),
                )
            return conversation_ids.issue(key)

        @sio.on("visitor_typing", namespace=namespace)
        async def visitor_typing(sid: str, data: Any = None) -> None:
            session = await sio.get_session(sid, namespace=namespace)
            now = time.monotonic()
            if now - session.get("typing_at", 0.0) < TYPING_REPORT_SECONDS:
                return  # a client reporting faster than the widget does: ignored, not written
            session["typing_at"] = now
            await sio.save_session(sid, session, namespace=namespace)
            await seen(session.get("conversation_id"), typing=True)

        @sio.on("disconnect", namespace=namespace)
        async def disconnect(sid: str) -> None:
            session = await sio.get_session(sid, namespace=namespace)
            await seen(session.get("conversation_id"), left=True)

        @sio.on("connect", namespace=namespace)
        async def connect(sid: str, environ: dict[str, Any], auth: Any = None) -> bool:
            if self.jwt_key:
                token = auth.get("token") if isinstance(auth, dict) else None
                if not token or not decode_bearer_token(token, self.jwt_key, self.jwt_algorithm):
                    return False
            request = environ.get("sanic.request")
            address = client_address(request) if request is not None else "unknown"
            await sio.save_session(sid, {"address": address}, namespace=namespace)
            return True

        @sio.on("session_request", namespace=namespace)
        async def session_request(sid: str, data: Any = None) -> None:
            requested = data.get("session_id") if isinstance(data, dict) else None
            if not (data is None or isinstance(data, dict)) or not (
                requested is None or isinstance(requested, str)
            ):
                logger.warning('Ignored a socket.io session request that is not {"session_id": <text>}.')
                return
            conversation = resumed(requested, data.get("resume") if data else None)
            session = await sio.get_session(sid, namespace=namespace)
            session["conversation_id"] = conversation
            await sio.save_session(sid, session, namespace=namespace)
            sio.enter_room(sid, conversation, namespace=namespace)
            confirm = {"session_id": conversation, "resume": conversation_ids.resume_proof(conversation, key)}
            await sio.emit("session_confirm", confirm, room=sid, namespace=namespace)
            await seen(conversation)
            try:  # a reloaded page waiting for, or chatting with, a person: told so, and sent what it missed
                chat = await asyncio.to_thread(live_chat.active, live.db, conversation)
                if chat is not None:
                    await live.tell_state(sid, chat)
                    await live.replay(sid, chat)
            except Exception as error:
                logger.error("Could not read the live chat state: %s", type(error).__name__)

        @sio.on(self.user_message_evt, namespace=namespace)
        async def user_message(sid: str, data: Any = None) -> None:
            session = await sio.get_session(sid, namespace=namespace)
            conversation = session.get("conversation_id")
            if not isinstance(data, dict) or not isinstance(data.get("message", ""), str):
                logger.warning('Ignored a socket.io message that is not {"message": <text>, ...}.')
                return
            if conversation is None or data.get("session_id") != conversation:
                logger.warning("Ignored a socket.io message for a conversation not confirmed on its socket.")
                return
            address = session.get("address", "unknown")
            try:
                text, metadata = check_message(
                    data.get("message", ""), data.get(self.metadata_key), address, config
                )
            except InvalidInput:
                logger.warning("Refused a socket.io message that is not valid text or has too much metadata.")
                monitoring.refused(self.name(), monitoring.metrics.REFUSED_INPUT)
                await SocketIOOutput(sio, self.bot_message_evt).send_text_message(sid, UNREADABLE)
                return
            output = BufferedSocketIOOutput(sio, self.bot_message_evt)
            if not await limiter.allow(message_limits(config, conversation, address)):
                monitoring.refused(self.name(), monitoring.metrics.TOO_FAST)
                await SocketIOOutput(sio, self.bot_message_evt).send_text_message(conversation, TOO_FAST)
                return
            message = UserMessage(text, output, conversation, input_channel=self.name(), metadata=metadata)
            if await serve_turn(on_new_message, message):
                await output.flush()
                try:
                    await live.after_message(sid, conversation)
                except Exception as error:
                    logger.error("Could not check a live chat message: %s", type(error).__name__)
            else:
                await SocketIOOutput(sio, self.bot_message_evt).send_text_message(
                    conversation, trouble_text()
                )

        self._check_origins(list(config.cors_origins))
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
