"""The Live page: staff chat with visitors who asked for a person (roles reception and admin).

The page works without JavaScript (each form posts and comes back); static/live.js polls
/live/state.json every few seconds to refresh the queue, the open conversation and the
visitor's typing, rings and shows a badge when a visitor starts waiting, and sends the forms
without reloading. Each poll is also the staff member's heartbeat: available only while the
page is open (common/records/live_chat.py). Taking, replying, handing back and closing are done by
the Rasa server (channels/live.py), which the console calls with the live chat secret and the
live chat's number: the conversation's id never reaches the page (it shows the handle).
"""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request
from datetime import datetime
from typing import Any

from flask import Blueprint, abort, flash, jsonify, redirect, render_template, request, url_for
from flask_login import current_user

from common import conversation_ids, metrics
from common.records import conversations, live_chat
from staff.console.base import console, requires

logger = logging.getLogger(__name__)

live = Blueprint("live", __name__, url_prefix="/live")
POLL_SECONDS = 2
MAX_REPLY_CHARS = 2000
RASA_TIMEOUT_SECONDS = 10


def db() -> Any:
    """The shared database of the live chat tables."""
    return live_chat.engine(console().database_url)


def staff_id() -> int:
    """The signed-in staff member's account id."""
    return int(current_user.user.id)


def display_name() -> str:
    """How visitors see the staff member: their console name, capitalised ("Anna")."""
    name = str(current_user.name)
    return name[:1].upper() + name[1:]


def fetch_json() -> bool:
    """Whether the request came from live.js (which wants JSON, not a page)."""
    return request.headers.get("X-Requested-With") == "fetch"


def messages(conversation_id: str) -> list[dict[str, Any]]:
    """The conversation so far, as the visitor saw it: who wrote each message, when, and what."""
    zone = console().clinic.zone
    lines = []
    for row in conversations.read_sender(console().database_url, conversation_id):
        if row.type_name not in ("user", "bot"):
            continue
        data = json.loads(row.data or "{}")
        text = data.get("text") or ""
        if not text:
            continue
        if row.type_name == "user":
            who = "Visitor"
            if text.startswith("/"):
                continue  # a button press: the button's text was the previous message's
        else:
            who = (data.get("metadata") or {}).get("sender_name") or "Assistant"
        at = datetime.fromtimestamp(row.timestamp, zone)
        lines.append({"id": row.id, "who": who, "text": text, "at": at.strftime("%H:%M")})
    return lines


def waited(chat: live_chat.LiveChat, moment: datetime) -> str:
    """How long the visitor has waited, in words ("2 min", "40 s")."""
    seconds = int((moment - chat.requested_at).total_seconds())
    return f"{seconds // 60} min" if seconds >= 60 else f"{seconds} s"


LEAVE_A_MESSAGE = "Visitors are offered \u201cleave a message\u201d instead, because "


def reach_text(reach: live_chat.Reach) -> str:
    """Whether a visitor asking now is offered a person, and if not why, as staff read it.

    The same answer (common/records/live_chat.py `reach`) decides what the assistant offers visitors.
    """
    if reach.offered:
        return "Visitors can ask for a person now."
    if reach.why == live_chat.OUTSIDE_HOURS:
        if reach.next_opening is None:
            return LEAVE_A_MESSAGE + "no day has live-chat hours (set them in Clinic details)."
        at = reach.next_opening
        return (
            LEAVE_A_MESSAGE
            + f"it is outside live-chat hours (next opening: {at:%A} {at.hour}:{at.minute:02d})."
        )
    if reach.why == live_chat.QUEUE_FULL:
        return LEAVE_A_MESSAGE + (
            f"{reach.waiting} visitors are already waiting, the most allowed at once (set in Clinic details)."
        )
    return LEAVE_A_MESSAGE + "nobody is available."


def reach_now(moment: datetime) -> str:
    """reach_text for `moment`; a plain sentence (never a broken page) if it cannot be worked out."""
    try:
        return reach_text(live_chat.reach(db(), console().clinic, moment))
    except Exception as error:  # clinic.yml unreadable, the database down: the page still works
        logger.error("Could not work out whether visitors can reach a person: %s", type(error).__name__)
        return "Whether visitors can reach a person cannot be worked out right now: ask a developer."


def state(chat_id: int | None) -> dict[str, Any]:
    """What the page shows: availability, the queue, the staff member's chats, the open conversation."""
    moment = live_chat.now()
    available = live_chat.set_presence(db(), staff_id(), current_user.name, None)
    chats = live_chat.open_chats(db())
    listed = [
        {
            "id": chat.id,
            "status": chat.status,
            "waited": waited(chat, moment),
            "staff_name": chat.staff_name,
            "mine": chat.staff_id == staff_id(),
        }
        for chat in chats
        if chat.status == live_chat.WAITING or chat.staff_id == staff_id()
    ]
    opened = live_chat.get(db(), chat_id) if chat_id else None
    shown = None
    if opened is not None:
        shown = {
            "id": opened.id,
            # Its public name (the id is the visitor's key to the chat and stays on the server).
            "handle": conversation_ids.handle(opened.conversation_id, console().settings.live_chat_key()),
            "status": opened.status,
            "staff_name": opened.staff_name,
            "mine": opened.status == live_chat.HELD and opened.staff_id == staff_id(),
            "typing": opened.status in live_chat.ACTIVE and opened.typing(moment),
            "left": opened.status in live_chat.ACTIVE and opened.visitor_left_at is not None,
            "messages": messages(opened.conversation_id),
        }
    return {
        "available": available,
        "reach": reach_now(moment),
        "waiting": sum(1 for chat in chats if chat.status == live_chat.WAITING),
        "chats": listed,
        "chat": shown,
    }


def call_rasa(step: str, body: dict[str, Any]) -> tuple[int, str]:
    """Ask the Rasa server to do a staff step; (status, what to tell the staff member)."""
    settings = console().settings
    call = urllib.request.Request(
        f"{settings.rasa_url}/webhooks/socketio/live/{step}",
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {settings.live_chat_key()}"},
    )
    try:
        with urllib.request.urlopen(call, timeout=RASA_TIMEOUT_SECONDS) as answer:
            return answer.status, ""
    except urllib.error.HTTPError as error:
        try:
            return error.code, str(json.loads(error.read()).get("error") or "")
        except (ValueError, AttributeError):
            return error.code, ""
    except (urllib.error.URLError, TimeoutError) as error:
        logger.error("The chat server could not be reached for a live chat step: %s", type(error).__name__)
        return 503, ""


DONE = {
    "take": "You are now chatting with the visitor.",
    "say": "",
    "typing": "",
    "return": "The conversation is back with the assistant.",
    "close": "The chat is closed; the assistant is back for the visitor.",
}


def respond(step: str, chat_id: int, status: int, problem: str) -> Any:
    """The answer to a form: JSON for live.js, else back to the page with a message."""
    if status == 503 and not problem:
        problem = "The chat server did not answer, so nothing was sent. Try again in a moment."
    elif status != 200 and not problem:
        problem = "That could not be done. Reload the page to see the conversation as it is now."
    if fetch_json():
        return jsonify({"ok": status == 200, "message": problem or DONE[step]}), 200 if status == 200 else 409
    if status != 200:
        flash(problem, "error")
    elif DONE[step]:
        flash(DONE[step], "success")
    return redirect(url_for("live.index", chat=chat_id))


@live.app_context_processor
def badge() -> dict[str, Any]:
    """How many visitors wait for a person (the navigation's badge), for staff who may chat."""
    if not current_user.is_authenticated or not current_user.may("live"):
        return {"live_waiting": 0}
    try:
        return {"live_waiting": sum(1 for c in live_chat.open_chats(db()) if c.status == live_chat.WAITING)}
    except Exception as error:  # the badge must never break a page
        logger.error("Could not count the waiting visitors: %s", type(error).__name__)
        return {"live_waiting": 0}


@live.get("/")
@requires("live")
def index() -> Any:
    """The Live page."""
    chat_id = request.args.get("chat", type=int)
    shown = state(chat_id)
    if shown["chat"]:  # reading a conversation is audited with its handle, as on Conversations
        console().audit("read live chat", shown["chat"]["handle"])
    return render_template("live.html", state=shown, chat_id=chat_id, poll_seconds=POLL_SECONDS)


@live.get("/state.json")
@requires("live")
def state_json() -> Any:
    """The page's content as JSON, for live.js's polling (also the staff member's heartbeat)."""
    return jsonify(state(request.args.get("chat", type=int)))


@live.post("/presence")
@requires("live")
def presence() -> Any:
    """Available or away."""
    available = request.form.get("available") == "1"
    live_chat.set_presence(db(), staff_id(), current_user.name, available)
    console().audit("live chat available" if available else "live chat away")
    if fetch_json():
        return jsonify({"ok": True, "available": available})
    flash(
        "You are available for live chats."
        if available
        else "You are away: visitors are not put through to you."
    )
    return redirect(url_for("live.index"))


@live.post("/<int:chat_id>/<any(take, say, typing, return, close):step>")
@requires("live")
def act(chat_id: int, step: str) -> Any:
    """Take a waiting conversation, reply (and show the visitor you are typing), hand it back, or close it."""
    chat = live_chat.get(db(), chat_id)
    if chat is None:
        abort(404)
    body: dict[str, Any] = {"chat_id": chat_id, "staff_id": staff_id(), "staff_name": display_name()}
    if step == "say":
        text = (request.form.get("text") or "").strip()
        if not text:
            return respond(step, chat_id, 400, "Type a message first.")
        if len(text) > MAX_REPLY_CHARS:
            return respond(step, chat_id, 400, f"A message can be at most {MAX_REPLY_CHARS} characters.")
        body["text"] = text
    status, problem = call_rasa(step, body)
    if status == 200 and step == "take":
        waited = live_chat.now() - live_chat.as_utc(chat.requested_at)
        metrics.LIVE_CHAT_WAIT_SECONDS.observe(max(0.0, waited.total_seconds()))
    if status == 200 and step not in ("say", "typing"):
        handle = conversation_ids.handle(chat.conversation_id, console().settings.live_chat_key())
        console().audit(f"live chat {step}", handle)
    return respond(step, chat_id, status, problem)
