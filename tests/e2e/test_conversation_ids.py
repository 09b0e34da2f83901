"""A conversation belongs to its visitor: the server issues its id, and nobody else can use it.

Issue 13, finding 1, on the real servers: stock Rasa took whatever `sender` (REST) or
`session_id` (socket.io) the client sent, so anyone could continue, read and answer another
visitor's conversation, every request without a sender shared one conversation, and a
socket.io id of another type crashed the handler. Here the server issues each conversation's
id (random, signed with CONVERSATION_SECRET) and starts a new conversation for any id it did
not issue.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import pytest

from tests.helpers import CONVERSATION_HEADER, LiveAssistant, WidgetSession

pytestmark = pytest.mark.e2e

VICTIM = ("Vera Victim", "vera.victim@example.com")


def fresh(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def post(live: LiveAssistant, body: dict[str, Any]) -> tuple[int, Any, str | None]:
    """POST a message as a client of our own making: status, answer, the issued conversation id."""
    status, answer = live.post(json.dumps(body).encode())
    return status, answer, live.last_headers.get(CONVERSATION_HEADER)


def texts(answer: Any) -> str:
    return " ".join(m.get("text", "") for m in answer) if isinstance(answer, list) else str(answer)


def start_victims_booking(live: LiveAssistant, victim: str) -> None:
    live.texts(victim, "book a consultation")
    live.texts(victim, VICTIM[0])
    live.texts(victim, VICTIM[1])


def test_a_sender_the_server_did_not_issue_starts_a_new_conversation(live: LiveAssistant, expected) -> None:
    """Posting as the victim's chosen sender name neither continues nor reveals her booking."""
    victim = fresh("victim")
    start_victims_booking(live, victim)
    status, answer, attacker_id = post(live, {"sender": victim, "message": "/affirm"})
    assert status == 200 and attacker_id, "every reply carries the conversation's id"
    assert attacker_id != live.conversation_id(victim)
    assert VICTIM[0] not in texts(answer) and VICTIM[1] not in texts(answer)
    # The victim's form is untouched: it still waits for her preferred day.
    assert live.texts(victim, "what is PIH") == [
        expected("utter_faq/what_is_pih"),
        expected("utter_ask_booking_date", contact_promise="email you"),
    ]


def test_an_issued_id_with_its_signature_changed_starts_a_new_conversation(live: LiveAssistant) -> None:
    victim = fresh("victim")
    start_victims_booking(live, victim)
    issued = live.conversation_id(victim)
    forged = issued[:-1] + ("A" if issued[-1] != "A" else "B")
    status, answer, attacker_id = post(live, {"sender": forged, "message": "/affirm"})
    assert status == 200 and attacker_id not in (None, issued, forged)
    assert VICTIM[0] not in texts(answer)


def test_requests_without_a_sender_do_not_share_a_conversation(live: LiveAssistant, expected) -> None:
    status, _, first = post(live, {"message": "book a consultation"})
    assert status == 200
    status, answer, second = post(live, {"message": "Nora Nosender"})
    assert status == 200 and first and second and first != second
    assert texts(answer) != expected(
        "utter_ask_booking_contact"
    ), "the second visitor joined the first's form"


@pytest.mark.parametrize(
    "sender",
    [42, ["a", "b"], {"id": "x"}, "x" * 10_000, ""],
    ids=["number", "list", "object", "long", "empty"],
)
def test_a_sender_that_is_not_a_short_string_gets_a_clear_400(live: LiveAssistant, sender: Any) -> None:
    status, answer, _ = post(live, {"sender": sender, "message": "hi"})
    assert status == 400 and '"sender" must be a string' in answer["error"]


def test_the_id_is_exposed_to_the_web_page(live: LiveAssistant) -> None:
    """A browser script may read X-Conversation-Id (CORS), so a web client can continue."""
    status, _ = live.post(json.dumps({"message": "hi"}).encode(), headers={"Origin": "http://localhost:8080"})
    exposed = live.last_headers.get("Access-Control-Expose-Headers", "")
    assert status == 200 and CONVERSATION_HEADER.lower() in exposed.lower()


# ------------------------------------------------------------------------- socket.io
def base(live: LiveAssistant) -> str:
    return live.url.rsplit("/webhooks/", 1)[0]


async def takeover(url: str, chosen: str) -> dict[str, Any]:
    """The victim's widget asks for the id `chosen`; an attacker asks for the same, then writes as her."""
    async with WidgetSession(url) as victim, WidgetSession(url) as attacker:
        victim_id = await victim.request_session(chosen)
        attacker_id = await attacker.request_session(chosen)
        # Its signature's last character changed (1 in 64 ids already ends in "A").
        forged = await attacker.request_session(
            str(victim_id)[:-1] + ("B" if str(victim_id)[-1] == "A" else "A")
        )
        victim_said = await victim.say("what is PIH")
        await asyncio.sleep(1)
        heard_by_attacker = list(attacker.said)
        # The attacker now writes a message naming the victim's id on its own connection.
        await attacker.client.emit("user_uttered", {"message": "Mallory Takeover", "session_id": victim_id})
        await attacker.client.emit("user_uttered", {"message": "Mallory Takeover", "session_id": chosen})
        await asyncio.sleep(2)
        return {
            "victim_id": victim_id,
            "attacker_id": attacker_id,
            "forged": forged,
            "victim_said": victim_said,
            "heard_by_attacker": heard_by_attacker,
        }


def test_socketio_session_request_for_an_id_the_server_did_not_issue_gets_a_new_one(
    live: LiveAssistant, expected
) -> None:
    chosen = fresh("widget-victim")
    seen = asyncio.run(takeover(base(live), chosen))
    assert seen["victim_said"] == [expected("utter_faq/what_is_pih")]
    assert seen["victim_id"] != chosen, "the server kept an id the client chose"
    assert seen["attacker_id"] not in (None, seen["victim_id"], chosen)
    assert seen["forged"] not in (None, seen["victim_id"])
    assert seen["heard_by_attacker"] == [], "the attacker received the victim's replies"
    # Nothing the attacker sent reached the victim's conversation, or any conversation named `chosen`.
    rows = live.query(
        "SELECT sender_id, data FROM events WHERE type_name = 'user' AND sender_id IN (:v, :c)",
        v=str(seen["victim_id"]),
        c=chosen,
    )
    assert not [sender for sender, data in rows if "Mallory" in data]


async def odd_ids(url: str) -> dict[str, Any]:
    """session_request and user_uttered with ids of every wrong type, then a normal conversation."""
    answers: dict[str, Any] = {}
    async with WidgetSession(url) as probe:
        for name, bad in {"object": {"a": 1}, "list": [1, 2], "number": 7, "long": "x" * 10_000}.items():
            answers[name] = await probe.request_session(bad, wait=2)
        await probe.client.emit("session_request", "not an object")
        await probe.client.emit("session_request", [1, 2])
        await probe.client.emit("user_uttered", {"message": "hi", "session_id": {"a": 1}})
        await probe.client.emit("user_uttered", ["not", "an", "object"])
        await probe.client.emit("user_uttered", {"message": ["hi"], "session_id": answers["long"]})
        await probe.client.emit("user_uttered", {"message": "what is PIH", "session_id": "x" * 10_000})
        await asyncio.sleep(2)
        answers["said_to_odd_ids"] = list(probe.said)
    async with WidgetSession(url) as visitor:
        await visitor.request_session(None)
        answers["normal"] = await visitor.say("what is PIH")
    return answers


def test_socketio_ids_of_other_types_or_lengths_are_refused_without_a_traceback(
    live: LiveAssistant, expected
) -> None:
    answers = asyncio.run(odd_ids(base(live)))
    assert answers["object"] is None and answers["list"] is None and answers["number"] is None
    assert isinstance(answers["long"], str) and len(answers["long"]) <= 128
    assert answers["said_to_odd_ids"] == [], "a message with a wrong id or text was answered"
    assert answers["normal"] == [expected("utter_faq/what_is_pih")]
    assert live.query("SELECT COUNT(*) FROM events WHERE LENGTH(sender_id) > 128")[0][0] == 0
    log = live.log()
    assert "Traceback" not in log and "TypeError" not in log
