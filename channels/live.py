"""The Rasa server's side of live chat with staff (the console's Live page calls these routes).

Staff never talk to the visitor's socket themselves: the console (staff/console/live.py) posts
each step, with the live chat secret, to POST /webhooks/socketio/live/<step> on any Rasa
server. The step is decided in the shared database (common/records/live_chat.py: one conditional
UPDATE, so of two staff members taking a conversation exactly one wins), then, under Rasa's
lock for the conversation, the message is appended to its tracker (a BotUttered whose metadata
names the staff member, so the transcript keeps who said what) and emitted to the
conversation's socket.io room. In the production profile the socket.io server's client
manager is python-socketio's AsyncRedisManager, so the emit reaches a visitor connected to
another Rasa server.

While a conversation waits or is held, Rasa's ConversationPaused keeps the assistant silent
(it still stores the visitor's messages); an urgent-symptoms message still gets the emergency
answer at once (`answer_if_urgent`). A request nobody takes in time is marked missed by a
sweep every server runs (`sweep`), and the visitor is offered to leave a message.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import pickle
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from typing import Any

import socketio
from rasa.shared.core.constants import ACTION_LISTEN_NAME
from rasa.shared.core.events import ActionExecuted, BotUttered, ConversationResumed, Event
from redis.exceptions import RedisError
from sanic import Blueprint, Sanic, response
from sanic.request import Request
from sanic.response import HTTPResponse

from common import metrics
from common.clinic import load_settings
from common.domain import load_domain
from common.names import LIVE_CHAT_ENDED, LIVE_CHAT_JOINED, LIVE_CHAT_MISSED, URGENT_REPLY
from common.records import live_chat
from common.records.live_chat import reply_expected
from common.settings import Settings

logger = logging.getLogger(__name__)

URGENT_INTENT = "urgent_symptoms"
SWEEP_SECONDS = 2.0
MAX_STAFF_MESSAGE_CHARS = 2000
STEPS = ("take", "say", "typing", "return", "close")
PROBE_SECONDS = 0.5  # how often a server sends itself the probe until Redis delivers it
LISTEN_WAIT_SECONDS = 5.0  # how long an emit waits for that (then it goes as python-socketio sends it)


def response_text(name: str, **values: str) -> tuple[str, list[dict[str, str]]]:
    """A domain response's text (filled with the clinic's details and `values`) and its buttons."""
    clinic = load_settings()
    template = load_domain()["responses"][name][0]
    known = {
        "clinic_name": clinic.name,
        "clinic_phone": clinic.phone,
        "clinic_email": clinic.email,
        "clinic_hours": clinic.hours,
        "emergency_number": clinic.emergency_number,
        **values,
    }
    buttons = [{"title": b["title"], "payload": b["payload"]} for b in template.get("buttons", [])]
    return template["text"].format_map(known), buttons


def resumed() -> list[Event]:
    """The assistant takes the conversation back, listening: so its rules apply to the next message.

    Rasa stopped predicting after the action that paused the conversation, so no
    action_listen followed it; without one, the next message matches no rule.
    """
    return [ConversationResumed(), ActionExecuted(ACTION_LISTEN_NAME)]


def new_id() -> str:
    """A live chat message's id: the widget shows each once, even when it is sent again."""
    return uuid.uuid4().hex


def widget_message(bot: BotUttered) -> dict[str, Any]:
    """What the widget receives for a live chat message stored as `bot`."""
    message: dict[str, Any] = {"text": bot.text, "custom": bot.data.get("custom") or {}}
    if bot.data.get("buttons"):
        message["quick_replies"] = bot.data["buttons"]
    if bot.metadata.get("sender_name"):
        message["sender_name"] = bot.metadata["sender_name"]
    return message


def authorised(request: Request, secret: str) -> bool:
    """Whether the request carries the live chat secret (Authorization: Bearer ...)."""
    given = (request.headers.get("authorization") or "").encode()
    return hmac.compare_digest(given, f"Bearer {secret}".encode())


class LiveChat:
    """Appends live chat messages to trackers and sends them to the visitor's socket."""

    def __init__(
        self, sio: socketio.AsyncServer, namespace: str | None, event: str, config: Settings
    ) -> None:
        self.sio = sio
        self.namespace = namespace
        self.event = event
        self.config = config
        self.app: Sanic | None = None

    @property
    def db(self) -> Any:
        """The shared database (migrated once per process)."""
        return live_chat.engine(self.config.database_url)

    async def append(self, conversation_id: str, events: list[Event]) -> None:
        """Add events to the conversation's tracker, under Rasa's lock, and save it."""
        assert self.app is not None, "the server has not started"
        agent = self.app.ctx.agent
        async with agent.lock_store.lock(conversation_id):
            tracker = await agent.processor.get_tracker(conversation_id)
            for event in events:
                tracker.update(event)
            await agent.tracker_store.save(tracker)

    async def send(self, conversation_id: str, message: dict[str, Any]) -> None:
        """Emit a message to the conversation's socket.io room (any server's, through Redis in production)."""
        await self.sio.emit(self.event, message, room=conversation_id, namespace=self.namespace)

    async def notice(
        self,
        conversation_id: str,
        name: str,
        events_before: list[Event],
        events_after: list[Event],
        live: str = "ended",
        **values: str,
    ) -> None:
        """Store and send one of the live chat's own responses (a notice in the widget).

        `live` tells the widget whether a person now holds the conversation ("held") or the
        assistant is back ("ended").
        """
        text, buttons = response_text(name, **values)
        custom = {"notice": True, "live": live, "staff_name": values.get("staff_name")}
        custom["message_id"] = new_id()
        data = {"buttons": buttons, "custom": custom} if buttons else {"custom": custom}
        bot = BotUttered(text, data=data, metadata={"utter_action": name, "message_id": custom["message_id"]})
        await self.append(conversation_id, [*events_before, bot, *events_after])
        await self.send(conversation_id, widget_message(bot))

    async def staff_message(self, conversation_id: str, staff_name: str, text: str) -> None:
        """Store (with the staff member's name) and send what staff wrote."""
        message_id = new_id()
        bot = BotUttered(
            text,
            data={"custom": {"message_id": message_id}},
            metadata={"sender_name": staff_name, "live_chat": "staff", "message_id": message_id},
        )
        await self.append(conversation_id, [bot])
        await self.send(conversation_id, widget_message(bot))

    async def replay(self, sid: str, chat: live_chat.LiveChat) -> None:
        """Send a reconnected widget the live chat's messages again (it skips those it has).

        A staff message sent while the visitor's page was reloading reached no socket; the
        widget keeps each message's id, so nothing is shown twice.
        """
        if self.app is None:
            return
        tracker = await self.app.ctx.agent.tracker_store.retrieve(chat.conversation_id)
        since = chat.requested_at.timestamp()
        for event in tracker.events if tracker is not None else []:
            live_message = isinstance(event, BotUttered) and event.metadata.get("message_id")
            if live_message and event.timestamp >= since:
                await self.sio.emit(self.event, widget_message(event), room=sid, namespace=self.namespace)

    async def step(self, name: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """Do one staff step; (HTTP status, answer) for the console."""
        chat_id, staff_id, staff_name = body.get("chat_id"), body.get("staff_id"), body.get("staff_name")
        if not isinstance(chat_id, int) or not isinstance(staff_id, int) or not isinstance(staff_name, str):
            return 400, {"error": "chat_id, staff_id and staff_name are required."}
        chat = await asyncio.to_thread(live_chat.get, self.db, chat_id)
        if chat is None:
            return 404, {"error": "There is no such live chat."}
        if name == "take":
            if not await asyncio.to_thread(live_chat.take, self.db, chat_id, staff_id, staff_name):
                return 409, {"error": "Someone else took this conversation, or it has ended."}
            await self.notice(
                chat.conversation_id, LIVE_CHAT_JOINED, [], [], live="held", staff_name=staff_name
            )
            return 200, {"status": live_chat.HELD}
        if chat.status != live_chat.HELD or chat.staff_id != staff_id:
            return 409, {
                "error": "You are not holding this conversation (it was handed back, closed or taken)."
            }
        if name == "typing":  # shown in the widget for a few seconds; not stored
            typing = {"staff_name": staff_name}
            await self.sio.emit("staff_typing", typing, room=chat.conversation_id, namespace=self.namespace)
            return 200, {"status": live_chat.HELD}
        if name == "say":
            text = body.get("text")
            if not isinstance(text, str) or not text.strip():
                return 400, {"error": "Type a message first."}
            await self.staff_message(chat.conversation_id, staff_name, text.strip()[:MAX_STAFF_MESSAGE_CHARS])
            return 200, {"status": live_chat.HELD}
        status = live_chat.RETURNED if name == "return" else live_chat.CLOSED
        if not await asyncio.to_thread(live_chat.end, self.db, chat_id, staff_id, status):
            return 409, {"error": "You are not holding this conversation any more."}
        await self.notice(
            chat.conversation_id,
            LIVE_CHAT_ENDED[status],
            [],
            resumed(),
            staff_name=staff_name,
        )
        return 200, {"status": status}

    async def sweep_once(self) -> None:
        """Tell visitors nobody took their request in time, and offer them to leave a message."""
        clinic = load_settings()
        wait = timedelta(minutes=clinic.live_chat_wait_minutes)
        for chat in await asyncio.to_thread(live_chat.expire, self.db, wait):
            logger.info("A live chat request was not taken in time.")
            metrics.LIVE_CHAT_MISSED.inc()
            await self.notice(
                chat.conversation_id,
                LIVE_CHAT_MISSED,
                [],
                resumed(),
                reply_when=reply_expected(clinic, live_chat.now()),
            )

    async def sweep_abandoned(self) -> None:
        """Give the assistant back conversations whose staff member's Live page is gone."""
        for chat in await asyncio.to_thread(live_chat.abandoned, self.db):
            logger.info("A live chat went back to the assistant: its staff member's page was gone.")
            await self.notice(
                chat.conversation_id,
                LIVE_CHAT_ENDED[live_chat.RETURNED],
                [],
                resumed(),
                staff_name=chat.staff_name or "",
            )

    async def sweep(self) -> None:
        """Run `sweep_once` every few seconds for as long as the server runs."""
        while True:
            try:
                await self.sweep_once()
                await self.sweep_abandoned()
            except Exception as error:  # the next sweep tries again; no visitor data in the log
                logger.error("The live chat sweep failed: %s", type(error).__name__)
            await asyncio.sleep(SWEEP_SECONDS)

    async def tell_state(self, sid: str, chat: live_chat.LiveChat | None) -> None:
        """Tell the visitor's widget whether it waits for or chats with a person (no typing dots then)."""
        if chat is not None:
            held = chat.status == live_chat.HELD
            state = {"status": chat.status, "staff_name": chat.staff_name if held else None}
            await self.sio.emit("live_chat_state", state, room=sid, namespace=self.namespace)

    async def after_message(self, sid: str, conversation_id: str) -> None:
        """While staff are awaited or chatting: tell the widget, and answer urgent symptoms at once."""
        chat = await asyncio.to_thread(live_chat.active, self.db, conversation_id)
        if chat is None or self.app is None:
            return
        await asyncio.to_thread(live_chat.visitor_seen, self.db, conversation_id)
        await self.tell_state(sid, chat)
        tracker = await self.app.ctx.agent.tracker_store.retrieve(conversation_id)
        latest = tracker.latest_message if tracker is not None else None
        if latest is None or (latest.intent or {}).get("name") != URGENT_INTENT:
            return
        logger.info("Urgent symptoms during a live chat were answered at once.")
        text, _ = response_text(URGENT_REPLY)
        urgent = BotUttered(text, data={}, metadata={"utter_action": URGENT_REPLY})
        await self.append(conversation_id, [urgent])
        await self.send(conversation_id, {"text": text})

    def register(self, blueprint: Blueprint, secret: Callable[[], str]) -> None:
        """Add the staff routes and the sweep to the channel's blueprint."""

        @blueprint.listener("after_server_start")
        async def started(app: Sanic, _: Any) -> None:
            self.app = app
            app.add_task(self.sweep())

        @blueprint.route("/live/<step>", methods=["POST"])
        async def staff_step(request: Request, step: str) -> HTTPResponse:
            if not authorised(request, secret()):
                return response.json({"error": "Only the staff console may do this."}, status=401)
            if step not in STEPS:
                return response.json({"error": f"Unknown step; one of {', '.join(STEPS)}."}, status=404)
            try:
                body = request.json
            except Exception:  # sanic's own error for a body that is not JSON
                body = None
            if not isinstance(body, dict):
                return response.json({"error": "Send the step as a JSON object."}, status=400)
            try:
                status, answer = await self.step(step, body)
            except Exception as error:
                logger.error("A live chat step failed: %s", type(error).__name__)
                return response.json({"error": "The chat server could not do that; try again."}, status=503)
            return response.json(answer, status=status)


class ListeningRedisManager(socketio.AsyncRedisManager):
    """python-socketio's Redis client manager, whose emits wait until this server listens.

    python-socketio sends every emit through Redis, even to a visitor on the same server, and
    starts listening (SUBSCRIBE) in a background task at the server's first connection. The
    first visitor's session confirmation could be published before that, and Redis drops a
    message nobody listens for: the widget then waited for a conversation that never came
    (tests/e2e/test_socket_manager.py). Here the server sends itself a probe until it hears it
    back, and emits wait for that: at most LISTEN_WAIT_SECONDS, once (Redis down at the start:
    later emits go at once, failing as python-socketio's do). Before any visitor connected
    (the sweep, staff steps for a visitor on another server) nothing here can miss a message,
    so emits go at once. A listener that reconnects after Redis restarts is python-socketio's
    own, as before.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.listening = asyncio.Event()
        self.started = False  # initialize() started the listener: until then no visitor is here
        self.waited = False  # an emit already waited LISTEN_WAIT_SECONDS in vain
        self.probe = pickle.dumps({"probe": uuid.uuid4().hex})  # no "method": other servers ignore it

    def initialize(self) -> None:
        """Start listening, and the probe that tells when Redis delivers to this server."""
        super().initialize()
        if not self.write_only:
            self.started = True
            self.server.start_background_task(self._announce)

    async def _announce(self) -> None:
        """Publish the probe until this server's listener has received it (less often while Redis is down)."""
        pause, reported = PROBE_SECONDS, False
        while not self.listening.is_set():
            try:
                await self.redis.publish(self.channel, self.probe)
            except (RedisError, OSError) as error:
                if not reported:
                    logger.error("Could not reach Redis for the chat's socket yet: %s", type(error).__name__)
                reported, pause = True, min(pause * 2, 30.0)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.listening.wait(), pause)

    async def _listen(self) -> AsyncIterator[Any]:
        """The channel's messages, once subscribed; this server's probe is taken out."""
        async for message in super()._listen():
            if message == self.probe:
                self.listening.set()
            else:
                yield message

    async def _publish(self, data: Any) -> Any:
        """Publish once this server listens (a message sent before would not reach its own visitors)."""
        if self.started and not self.listening.is_set() and not self.waited:
            try:
                await asyncio.wait_for(self.listening.wait(), LISTEN_WAIT_SECONDS)
            except asyncio.TimeoutError:
                self.waited = True
                logger.error("Redis has not delivered to this server yet; sending anyway.")
        return await super()._publish(data)


def redis_manager(config: Settings) -> socketio.AsyncRedisManager | None:
    """The Redis client manager for the production profile (None: one server, in memory)."""
    if config.profile != "production" or not config.redis_host:
        return None
    password = f":{config.redis_password}@" if config.redis_password else ""
    url = f"redis://{password}{config.redis_host}:{config.redis_port}/{config.redis_db}"
    return ListeningRedisManager(url, channel="scarfaq-socketio")
