"""Inputs that used to break a turn, and scripts filling the staff's live chat queue, on real servers.

One stack (action server, Rasa server, demo page) on a fresh SQLite database, behind one
(pretend) reverse proxy so each socket.io client can come from its own address
(X-Forwarded-For), with the clinic always open, a staff member available (their Live page's
heartbeat, written as the console writes it) and a small live chat queue. Each probe gets a
clear, polite answer at once, and the conversation (or the next visitor) is served normally.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import socketio
import sqlalchemy as sa
import yaml

from channels.guarded import UNREADABLE, trouble_text
from common.paths import CLINIC_YML
from common.records import live_chat
from common.settings import MAX_METADATA_BYTES, MAX_METADATA_DEPTH
from servers.launcher import Stack, free_port
from tests.helpers import LiveAssistant, WidgetSession, stack_config, wait_until

pytestmark = pytest.mark.e2e

DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
MAX_WAITING = 4
PER_ADDRESS_PER_HOUR = 3
WAITING_TEXT = "I'm finding someone from the"
BUSY_TEXT = "nobody from the team is free right now"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveAssistant]:
    """The servers, with a clinic.yml always open and a live chat queue of MAX_WAITING."""
    tmp = tmp_path_factory.mktemp("inputs")
    clinic = yaml.safe_load(CLINIC_YML.read_text(encoding="utf-8"))
    clinic.update(
        opening_hours={day: "00:00-23:59" for day in DAYS},
        closed_dates=[],
        live_chat_wait_minutes=30,
        live_chat_max_waiting=MAX_WAITING,
    )
    clinic_yml = tmp / "clinic.yml"
    clinic_yml.write_text(yaml.safe_dump(clinic), encoding="utf-8")
    config = stack_config(tmp)
    config.web_port = free_port()
    config.extra_env = {
        "CLINIC_SETTINGS": str(clinic_yml),
        "SANIC_PROXIES_COUNT": "1",
        "LIVE_CHAT_REQUESTS_PER_ADDRESS_PER_HOUR": str(PER_ADDRESS_PER_HOUR),
    }
    log_path = tmp / "servers.log"
    with log_path.open("w") as log, Stack(config, log) as stack:
        yield LiveAssistant(stack, log_path)


def new_visitor() -> str:
    return f"visitor-{time.monotonic_ns()}"


def answered_normally(status: int, answer: Any) -> bool:
    """A 200 with at least one message, none of them the apology for a failed turn."""
    texts = [m.get("text") for m in answer] if isinstance(answer, list) else []
    return status == 200 and bool(texts) and trouble_text() not in texts


# ---- Text that is not valid Unicode --------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        rb'{"message": "\ud800"}',
        rb'{"message": "scar \udc00\ud83d cream"}',
        rb'{"sender": "\udfff", "message": "hello"}',
        rb'{"message": "hello", "metadata": {"note": "\ud800"}}',
    ],
    ids=["lone surrogate", "reversed surrogates", "in the sender", "in the metadata"],
)
def test_text_that_is_not_valid_unicode_gets_a_400(site: LiveAssistant, body: bytes) -> None:
    status, answer = site.post(body, timeout=30)
    assert status == 400, answer
    assert "not valid text" in answer["error"]
    assert answered_normally(*site.send(new_visitor(), "hello"))


def test_a_valid_surrogate_pair_is_an_emoji_and_is_answered(site: LiveAssistant) -> None:
    assert answered_normally(*site.post(rb'{"message": "thanks \ud83d\ude00"}', timeout=60))


# ---- Metadata ------------------------------------------------------------------------------


def nested(levels: int) -> str:
    """A JSON object nested `levels` deep."""
    return '{"a": ' * (levels - 1) + "{}" + "}" * (levels - 1)


def test_deep_metadata_is_refused_and_the_conversation_goes_on(site: LiveAssistant) -> None:
    visitor = new_visitor()
    assert answered_normally(*site.send(visitor, "hello"))
    conversation = site.conversation_id(visitor)
    for metadata in (nested(970), nested(MAX_METADATA_DEPTH + 1)):
        body = f'{{"sender": "{conversation}", "message": "what is a scar", "metadata": {metadata}}}'
        status, answer = site.post(body.encode(), timeout=30)
        assert status == 400, answer
        assert f"at most {MAX_METADATA_DEPTH} levels" in answer["error"]
    huge = json.dumps({"sender": conversation, "message": "hi", "metadata": {"a": "x" * MAX_METADATA_BYTES}})
    assert site.post(huge.encode(), timeout=30)[0] == 400
    within = f'{{"sender": "{conversation}", "message": "what is a scar", "metadata": {nested(3)}}}'
    assert answered_normally(*site.post(within.encode(), timeout=60))
    assert answered_normally(*site.send(visitor, "forget me"))


def test_socketio_refuses_unreadable_messages_politely_and_goes_on(site: LiveAssistant) -> None:
    async def chat() -> tuple[list[str], list[str], list[str]]:
        async with WidgetSession(site.base_url) as widget:
            await widget.request_session()
            surrogate = await widget.say("\ud800 hello")
            before = len(widget.said)
            deep_metadata = json.loads(nested(300))  # python-socketio's client recurses on it too
            await widget.client.emit(
                "user_uttered",
                {"message": "hello", "session_id": widget.session_id, "metadata": deep_metadata},
            )
            await wait_until(lambda: len(widget.said) > before, 30)
            deep = widget.said[before:]
            return surrogate, deep, await widget.say("what is a scar")

    surrogate, deep, after = asyncio.run(chat())
    assert surrogate == [UNREADABLE]
    assert deep == [UNREADABLE]
    assert after and trouble_text() not in after and UNREADABLE not in after


# ---- Conflicting transfer headers ----------------------------------------------------------


def raw_request(port: int, head: str, body: bytes = b"", wait: float = 5.0) -> tuple[float, str]:
    """Send a raw HTTP/1.1 request; how long the answer took, and its status line ("" if none)."""
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=wait) as conn:
        conn.sendall(head.replace("\n", "\r\n").encode() + b"\r\n" + body)
        try:
            answer = conn.recv(4096)
        except TimeoutError:
            answer = b""
    return time.monotonic() - started, answer.decode("latin-1").split("\r\n", 1)[0]


BODY = b'{"message":"hi"}'
FRAMINGS = {
    "chunked and length": f"Transfer-Encoding: chunked\nContent-Length: {len(BODY)}\n",
    "length and chunked": f"Content-Length: {len(BODY)}\nTransfer-Encoding: chunked\n",
    "unknown coding": "Transfer-Encoding: gzip\n",
    "two lengths": f"Content-Length: {len(BODY)}\nContent-Length: 3\n",
}


@pytest.mark.parametrize("framing", FRAMINGS.values(), ids=FRAMINGS.keys())
@pytest.mark.parametrize("server", ["rasa", "actions"])
def test_ambiguous_body_length_gets_400_at_once(site: LiveAssistant, server: str, framing: str) -> None:
    port = site.stack.config.rasa_port if server == "rasa" else site.stack.config.action_port
    path = "/webhooks/rest/webhook" if server == "rasa" else "/webhook"
    head = f"POST {path} HTTP/1.1\nHost: 127.0.0.1\nContent-Type: application/json\n{framing}"
    took, status = raw_request(port, head, BODY)
    assert status == "HTTP/1.1 400 Bad Request", status
    assert took < 1.0
    assert answered_normally(*site.send(new_visitor(), "hello"))


def test_the_page_server_answers_conflicting_headers_at_once(site: LiveAssistant) -> None:
    port = site.stack.config.web_port
    assert port is not None
    for method in ("GET", "POST"):
        head = f"{method} / HTTP/1.1\nHost: 127.0.0.1\n{FRAMINGS['chunked and length']}"
        took, status = raw_request(port, head, BODY)
        assert status.split(" ")[1] in ("200", "400", "501"), status
        assert took < 1.0


# ---- The live chat queue -------------------------------------------------------------------


def staff_available(site: LiveAssistant) -> None:
    """A receptionist's Live page is open and says available (what its polling writes)."""
    live_chat.set_presence(live_chat.engine(site.database_url), 1, "Rita", True)


async def ask_for_a_person(base_url: str, address: str) -> list[str]:
    """One scripted widget session from `address` asking for a person; what it was told."""
    widget = WidgetSession(base_url)
    widget.client = socketio.AsyncClient()
    widget.client.on("bot_uttered", lambda message: widget.said.append(message.get("text", "")))
    widget.client.on("session_confirm", widget.confirm)  # the id and its resume proof
    await widget.client.connect(
        base_url, socketio_path="socket.io", transports=["polling"], headers={"X-Forwarded-For": address}
    )
    try:
        await widget.request_session(wait=60)
        return await widget.say("/live_chat_request", wait=120)
    finally:
        await widget.client.disconnect()


def waiting(site: LiveAssistant) -> int:
    return site.query("SELECT COUNT(*) FROM live_chats WHERE status = 'waiting'")[0][0]


def close_all(site: LiveAssistant) -> None:
    """Staff close every waiting request (the next test starts with an empty queue)."""
    with sa.create_engine(site.database_url).begin() as db:
        db.execute(sa.text("UPDATE live_chats SET status = 'closed' WHERE status = 'waiting'"))


def test_one_address_cannot_fill_the_live_chat_queue(site: LiveAssistant) -> None:
    staff_available(site)

    async def six() -> list[list[str]]:
        return [await ask_for_a_person(site.base_url, "203.0.113.50") for _ in range(6)]

    told = [" ".join(replies) for replies in asyncio.run(six())]
    assert [WAITING_TEXT in text for text in told] == [True] * 3 + [False] * 3, told
    assert all(BUSY_TEXT in text for text in told[3:]), told
    assert waiting(site) == PER_ADDRESS_PER_HOUR
    # Another visitor, elsewhere, still gets through.
    assert WAITING_TEXT in " ".join(asyncio.run(ask_for_a_person(site.base_url, "203.0.113.51")))
    close_all(site)


def test_25_scripted_sessions_cannot_flood_the_live_chat_queue(site: LiveAssistant) -> None:
    staff_available(site)

    async def many() -> list[list[str]]:
        return await asyncio.gather(
            *(ask_for_a_person(site.base_url, f"198.51.100.{n}") for n in range(1, 26))
        )

    told = [" ".join(replies) for replies in asyncio.run(many())]
    queued = [text for text in told if WAITING_TEXT in text]
    refused = [text for text in told if BUSY_TEXT in text]
    assert len(queued) == MAX_WAITING and len(refused) == 25 - MAX_WAITING, told
    assert waiting(site) == MAX_WAITING
    close_all(site)


def test_a_visitor_told_the_queue_is_full_can_leave_a_message(site: LiveAssistant) -> None:
    staff_available(site)

    async def full_then_message() -> list[str]:
        for n in range(MAX_WAITING):
            await ask_for_a_person(site.base_url, f"192.0.2.{n + 1}")
        widget = WidgetSession(site.base_url)
        async with widget:
            await widget.request_session()
            told = await widget.say("/live_chat_request")
            return told + await widget.say("/leave_message")

    told = asyncio.run(full_then_message())
    assert BUSY_TEXT in told[0], told
    assert "I'll pass your message to the" in " ".join(told[1:]), told
    close_all(site)


def test_the_log_names_no_address(site: LiveAssistant, tmp_path: Path) -> None:
    assert "198.51.100." not in site.log() and "203.0.113.5" not in site.log()
