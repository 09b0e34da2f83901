"""Erasure on request: in the chat ("forget me") and by staff (`clinic-bookings erase`), on SQLite.

Issue 13, finding 4, on the real servers: "forget me", "delete my data", "I withdraw my
consent" and "cancel my booking SR-..." got "No problem" or "I don't have that information",
and staff could purge only by age. Here the visitor is told what will be erased and asked to
confirm; then the conversation's events and its booking requests are gone from the database
(checked after the turn, so nothing is written back), and the clinic's booking system is
told to delete a request it had received. PostgreSQL: tests/e2e/test_production.py.
"""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import pytest

from tests.helpers import LiveAssistant, open_day

pytestmark = pytest.mark.e2e

REFERENCE = re.compile(r"SR-[A-Z2-7]{8}")


class BookingSystem(BaseHTTPRequestHandler):
    """The clinic's booking system: records every JSON body it is sent."""

    received: ClassVar[list[dict[str, Any]]] = []

    def do_POST(self) -> None:
        """Keep the body and its idempotency key; answer 201."""
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        BookingSystem.received.append({"body": body, "key": self.headers.get("Idempotency-Key")})
        self.send_response(201)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        """Quiet."""


@pytest.fixture(scope="module")
def booking_system() -> Iterator[list[dict[str, Any]]]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), BookingSystem)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    BookingSystem.url = f"http://127.0.0.1:{server.server_port}/requests"  # type: ignore[attr-defined]
    yield BookingSystem.received
    server.shutdown()


@pytest.fixture(scope="module")
def servers(live: LiveAssistant, booking_system) -> Iterator[LiveAssistant]:
    """The run's shared servers (tests/conftest.py `live`), sending requests to the booking system above.

    Their clinic.yml gets the booking webhook for this module's tests only (read again at the next
    request, as after a manager's change in the console); these tests' visitors are their own.
    """
    with live.clinic_changed(booking_webhook_url=BookingSystem.url):  # type: ignore[attr-defined]
        yield live


def fresh(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def book(assistant: LiveAssistant, me: str, name: str, contact: str) -> str:
    """A whole consultation request, confirmed; its reference."""
    day = open_day()
    assistant.texts(me, "book a consultation")
    for answer in [name, contact, f"{day.day} {day:%B}", "afternoon", "skip", "/affirm"]:
        assistant.texts(me, answer)
    [saved] = assistant.texts(me, "/affirm")
    match = REFERENCE.search(saved)
    assert match, saved
    return match.group()


def received(booking_system: list[dict[str, Any]], reference: str, event: str, timeout: float = 15) -> dict:
    """Wait until the booking system got `event` ("requested" or "withdrawn") for the reference."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for call in booking_system:
            if call["body"].get("reference") == reference and call["body"].get("event") == event:
                return call
        time.sleep(0.2)
    raise AssertionError(f"the booking system never got {event!r} for {reference}")


def request_exists(assistant: LiveAssistant, reference: str) -> bool:
    return bool(assistant.query("SELECT 1 FROM booking_requests WHERE reference = :r", r=reference))


def mentions(messages: list[dict[str, Any]]) -> str:
    return " ".join(m.get("text", "") for m in messages)


def test_forget_me_explains_asks_and_then_erases_the_conversation_and_its_request(
    servers: LiveAssistant, booking_system: list, expected
) -> None:
    me = fresh("forget")
    reference = book(servers, me, "Erin Erase", "erin.erase@example.com")
    received(booking_system, reference, "requested")
    events = servers.stored_events(me)
    [explanation] = servers.say(me, "forget me")
    assert reference in explanation["text"] and "erase" in explanation["text"].lower()
    assert [b["payload"] for b in explanation["buttons"]] == ["/affirm", "/deny"]
    assert servers.stored_events(me) > events and request_exists(servers, reference), "only asked so far"
    done = servers.say(me, "/affirm")
    assert reference in mentions(done) and "erased" in mentions(done)
    assert servers.stored_events(me) == 0, "the conversation's events are still in the database"
    assert not request_exists(servers, reference)
    notice = received(booking_system, reference, "withdrawn")
    assert "Erin" not in json.dumps(notice["body"]) and "erin.erase" not in json.dumps(notice["body"])
    # The same chat goes on as a new conversation: nothing from before comes back.
    assert servers.texts(me, "what is PIH") == [expected("utter_faq/what_is_pih")]
    rows = servers.query("SELECT data FROM events WHERE sender_id = :s", s=servers.conversation_id(me))
    assert rows and not [data for (data,) in rows if "Erin" in data or "erin.erase" in data]


@pytest.mark.parametrize("phrase", ["delete my data", "I withdraw my consent", "forget me please"])
def test_each_way_of_asking_gets_the_explanation_and_no_keeps_everything(
    servers: LiveAssistant, expected, phrase: str
) -> None:
    me = fresh("ask")
    servers.texts(me, "what is PIH")
    assert servers.texts(me, phrase) == [expected("utter_erasure_explain")]
    events = servers.stored_events(me)
    assert servers.texts(me, "/deny") == [expected("utter_erasure_kept")]
    assert servers.stored_events(me) > events


def test_forget_me_in_the_middle_of_the_form_is_not_taken_as_an_answer(
    servers: LiveAssistant, expected
) -> None:
    me = fresh("midform")
    servers.texts(me, "book a consultation")
    assert servers.texts(me, "Fiona Form") == [expected("utter_ask_booking_contact")]
    assert servers.texts(me, "delete my data") == [expected("utter_erasure_explain")]
    assert servers.texts(me, "/deny") == [
        expected("utter_erasure_kept"),
        expected("utter_ask_booking_contact"),
    ]
    assert servers.texts(me, "delete my data") == [expected("utter_erasure_explain")]
    servers.texts(me, "/affirm")
    assert servers.stored_events(me) == 0


def test_cancel_my_booking_by_reference_withdraws_only_this_chats_request(
    servers: LiveAssistant, booking_system: list, expected
) -> None:
    owner, stranger = fresh("owner"), fresh("stranger")
    reference = book(servers, owner, "Olga Owner", "olga.owner@example.com")
    assert servers.texts(stranger, f"cancel my booking {reference}") == [
        expected("utter_erasure_other_reference").replace("{references}", reference),
        expected("utter_erasure_explain"),
    ]
    servers.texts(stranger, "/affirm")  # erases the stranger's own conversation, nothing else
    assert request_exists(servers, reference), "a stranger quoting a reference must not erase it"
    assert reference in mentions(servers.say(owner, f"cancel my booking {reference}"))
    servers.texts(owner, "/affirm")
    assert not request_exists(servers, reference) and servers.stored_events(owner) == 0


def test_staff_erase_one_persons_requests_and_conversations(
    servers: LiveAssistant, booking_system: list, monkeypatch, capsys
) -> None:
    from staff.commands import bookings

    monkeypatch.setenv("DATABASE_URL", servers.database_url)
    monkeypatch.setenv("CLINIC_SETTINGS", servers.stack.environment["CLINIC_SETTINGS"])
    # the command reads the servers' clinic.yml (with the webhook): load_settings follows CLINIC_SETTINGS
    email, phone = f"pat.{uuid.uuid4().hex[:6]}@example.com", "07911 123457"
    first, second, by_phone, other = fresh("pat"), fresh("pat"), fresh("pat"), fresh("other")
    references = [
        book(servers, first, "Pat Person", email),
        book(servers, second, "Pat Person", email.upper()),
    ]
    phone_reference = book(servers, by_phone, "Pat Person", phone)
    other_reference = book(servers, other, "Olly Other", "olly.other@example.com")
    received(booking_system, references[0], "requested")

    assert bookings.main(["erase", "--email", email]) == 0
    report = capsys.readouterr().out
    assert all(reference in report for reference in references) and "2 conversation(s)" in report
    assert not any(request_exists(servers, reference) for reference in references)
    assert servers.stored_events(first) == 0 and servers.stored_events(second) == 0
    received(booking_system, references[0], "withdrawn")

    assert bookings.main(["erase", "--phone", "+44 7911 123457"]) == 0
    assert phone_reference in capsys.readouterr().out
    assert not request_exists(servers, phone_reference) and servers.stored_events(by_phone) == 0

    assert bookings.main(["erase", "--reference", other_reference.lower()]) == 0
    assert other_reference in capsys.readouterr().out
    assert not request_exists(servers, other_reference) and servers.stored_events(other) == 0

    assert bookings.main(["erase", "--email", "nobody@example.com"]) == 1
    assert "Nothing found" in capsys.readouterr().out
