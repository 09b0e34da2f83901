"""Bookings for anyone, unchecked: what a hostile visitor tried against the booking form.

Issue 13, finding 5, on the real servers (the default `live` ones, as `make run` starts
them): the same third party's details sent from five conversations made five requests,
the literal text "/inform" was stored as a name, and a hand-made POST to the local action
server (no token) stored a request for "Forged Person".
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
import uuid

import pytest

from common import settings
from common.domain import load_domain
from tests.helpers import LiveAssistant, open_day

pytestmark = pytest.mark.e2e


def fresh(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def count(live: LiveAssistant, column: str, value: str) -> int:
    return live.query(f"SELECT COUNT(*) FROM booking_requests WHERE {column} = :v", v=value)[0][0]


def test_the_same_contact_details_make_only_a_few_requests_a_day(live: LiveAssistant, expected) -> None:
    contact, day = f"third.party.{uuid.uuid4().hex[:6]}@example.com", open_day()
    limit = settings.current().max_requests_per_contact_per_day  # the servers' (same environment)
    last_replies = []
    for _ in range(limit + 2):
        me = fresh("someone")
        live.texts(me, "book a consultation")
        for answer in ["Terry Third", contact, f"{day.day} {day:%B}", "morning", "skip", "/affirm"]:
            live.texts(me, answer)
        last_replies.append(live.texts(me, "/affirm"))
    assert count(live, "contact", contact) == limit
    assert last_replies[-1] == [expected("utter_booking_contact_limit")]
    assert last_replies[0][0].startswith("Thank you - your request is with the")


def test_forget_me_between_requests_does_not_reset_the_contacts_daily_limit(
    live: LiveAssistant, expected
) -> None:
    """Issue 20, finding 6: each request erased by its visitor gave the contact another one."""
    contact, day = f"lee.limit.{uuid.uuid4().hex[:6]}@example.com", open_day()
    limit = settings.current().max_requests_per_contact_per_day
    last_replies = []
    for _ in range(limit + 1):
        me = fresh("eraser")
        live.texts(me, "book a consultation")
        for answer in ["Lee Limit", contact, f"{day.day} {day:%B}", "morning", "skip", "/affirm"]:
            live.texts(me, answer)
        last_replies.append(live.texts(me, "/affirm"))
        stored = count(live, "contact", contact)
        live.texts(me, "forget me")
        live.texts(me, "/affirm")
        assert (stored, count(live, "contact", contact)) == (int(len(last_replies) <= limit), 0)
    assert last_replies[-1] == [expected("utter_booking_contact_limit")]
    assert all(r[0].startswith("Thank you - your request is with the") for r in last_replies[:-1])
    keys = live.query("SELECT contact_key FROM contact_requests")
    assert keys and not [key for (key,) in keys if "limit" in key or "@" in key]


@pytest.mark.parametrize(
    "name",
    [
        "/inform",
        '/inform{"booking_name": "x"}',
        '{"booking_name": "Mallory"}',
        "https://evil.example/x",
        "www.evil.example",
        "see evil.example/win",
    ],
)
def test_a_name_must_look_like_a_name(live: LiveAssistant, expected, name: str) -> None:
    me = fresh("namer")
    live.texts(me, "book a consultation")
    replies = live.texts(me, name)
    assert replies[-1] == expected("utter_ask_booking_name"), f"{name!r} was taken as a name: {replies}"


def test_the_action_server_refuses_a_hand_made_call_even_on_loopback(live: LiveAssistant) -> None:
    """`make run` and the tests start the action server with a token of their own (per run)."""
    day = open_day()
    slots = {
        "booking_name": "Forged Person",
        "booking_contact": "forged@example.com",
        "booking_date": day.isoformat(),
        "booking_time": "morning",
        "booking_scar": "",
        "booking_consent": True,
    }
    call = {
        "next_action": "action_submit_booking",
        "sender_id": "forger",
        "tracker": {
            "sender_id": "forger",
            "slots": slots,
            "latest_message": {},
            "events": [],
            "paused": False,
            "followup_action": None,
            "active_loop": {},
            "latest_action_name": "action_listen",
        },
        "domain": load_domain(),
        "version": "3.6.21",
    }
    request = urllib.request.Request(
        f"{live.action_server_url}/webhook",
        data=json.dumps(call, default=str).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            status = response.status
    except urllib.error.HTTPError as error:
        status = error.code
    assert status == 401
    assert count(live, "name", "Forged Person") == 0
