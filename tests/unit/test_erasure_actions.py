"""Erasure in the chat: what the visitor is told, what the actions erase and what they leave to the store."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from rasa_sdk import Action, Tracker
from rasa_sdk.executor import CollectingDispatcher

from actions.erasure import FORGET_SIGNAL, ActionEraseConversation, ActionExplainErasure, listed
from common.names import ERASE_SLOT
from common.records.bookings import BookingRequest, get_store

REQUEST = BookingRequest(
    name="Erin Erase",
    contact="erin@example.com",
    contact_type="email",
    preferred_date=date.today() + timedelta(days=3),
    time_of_day="morning",
    scar="",
)


@pytest.fixture
def database(tmp_path: Path, monkeypatch) -> Iterator[str]:
    url = f"sqlite:///{tmp_path / 'clinic.db'}"
    monkeypatch.setenv("DATABASE_URL", url)
    get_store.cache_clear()
    yield url
    get_store.cache_clear()


def run(action: Action, domain: dict[str, Any], sender: str, text: str = "forget me") -> tuple[list, list]:
    dispatcher = CollectingDispatcher()
    tracker = Tracker(sender, {}, {"text": text, "entities": []}, [], False, None, {}, "action_listen")
    events = asyncio.run(action.run(dispatcher, tracker, domain))
    assert all(m["response"] in domain["responses"] for m in dispatcher.messages if not m["custom"])
    return dispatcher.messages, events


def test_without_a_request_the_conversation_alone_is_offered(domain, database) -> None:
    messages, events = run(ActionExplainErasure(), domain, "visitor-1")
    assert [m["response"] for m in messages] == ["utter_erasure_explain"] and events == []


def test_the_conversations_own_requests_are_named(domain, database) -> None:
    reference, _ = get_store().save(REQUEST, "visitor-1")
    [message], _ = run(ActionExplainErasure(), domain, "visitor-1")
    assert message["response"] == "utter_erasure_explain_requests" and message["references"] == reference


def test_a_reference_from_another_conversation_is_not_offered(domain, database) -> None:
    reference, _ = get_store().save(REQUEST, "visitor-1")
    messages, _ = run(ActionExplainErasure(), domain, "stranger", f"cancel my booking {reference.lower()}")
    assert [m["response"] for m in messages] == ["utter_erasure_other_reference", "utter_erasure_explain"]
    assert messages[0]["references"] == reference


def test_erasing_removes_the_requests_and_marks_the_conversation_for_the_store(domain, database) -> None:
    mine, _ = get_store().save(REQUEST, "visitor-1")
    other, _ = get_store().save(REQUEST, "visitor-2")
    get_store().record_delivery(mine, None)
    messages, events = run(ActionEraseConversation(), domain, "visitor-1", "/affirm")
    # First the widget is told to clear its copy; then the visitor hears what was erased.
    assert messages[0]["custom"] == {"data": {FORGET_SIGNAL: True}}
    assert [m["response"] for m in messages[1:]] == ["utter_erasure_done_requests"]
    assert messages[1]["references"] == mine
    assert [row["reference"] for row in get_store().list()] == [other]
    assert [row["reference"] for row in get_store().pending_withdrawals()] == [mine]
    assert events[0] == {"event": "active_loop", "timestamp": None, "name": None}
    assert events[-1] == {"event": "slot", "timestamp": None, "name": ERASE_SLOT, "value": True}


def test_references_are_listed_as_read() -> None:
    assert listed(["SR-A"]) == "SR-A"
    assert listed(["SR-A", "SR-B", "SR-C"]) == "SR-A, SR-B and SR-C"
