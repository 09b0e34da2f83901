"""The booking conversation's actions: what the visitor is told and what gets stored."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from rasa_sdk import Action, Tracker
from rasa_sdk.executor import CollectingDispatcher

from actions.booking import form
from actions.booking.form import (
    ActionBookingSummary,
    ActionCancelBooking,
    ActionChangeBookingField,
    ActionSubmitBooking,
    ValidateBookingForm,
)
from common.clinic import load_settings
from common.records.bookings import get_store

TOMORROW = date.today() + timedelta(days=1)
while TOMORROW.weekday() == 6:  # the example clinic is closed on Sundays
    TOMORROW += timedelta(days=1)
FILLED = {
    "booking_name": "Jo O'Neill",
    "booking_contact": "+447911123456",
    "booking_date": TOMORROW.isoformat(),
    "booking_time": "morning",
    "booking_scar": "<b>c-section</b>",
    "booking_consent": True,
}


def tracker(slots: dict[str, Any], entities: list[dict] | None = None, sender: str = "visitor") -> Tracker:
    return Tracker(
        sender, slots, {"text": "x", "entities": entities or []}, [], False, None, {}, "action_listen"
    )


def run(action: Action, slots: dict[str, Any], domain: dict[str, Any], **kwargs: Any) -> tuple[list, list]:
    dispatcher = CollectingDispatcher()
    events = asyncio.run(action.run(dispatcher, tracker(slots, **kwargs), domain))
    assert all(m.get("response") in domain["responses"] for m in dispatcher.messages if m.get("response"))
    return dispatcher.messages, events


def responses(messages: list[dict]) -> list[str]:
    return [m["response"] for m in messages]


@pytest.fixture
def database(tmp_path: Path, monkeypatch) -> Iterator[str]:
    url = f"sqlite:///{tmp_path / 'clinic.db'}"
    monkeypatch.setenv("DATABASE_URL", url)
    get_store.cache_clear()
    yield url
    get_store.cache_clear()


def validate(slot: str, value: str, slots: dict[str, Any]) -> tuple[list[str], dict[str, Any]]:
    dispatcher = CollectingDispatcher()
    result = getattr(ValidateBookingForm(), f"validate_{slot}")(value, dispatcher, tracker(slots), {})
    return responses(dispatcher.messages), result


def test_an_invalid_answer_says_what_was_wrong() -> None:
    said, result = validate("booking_contact", "0791", {})
    assert said == ["utter_invalid_phone"]
    assert result == {"booking_contact": None, "booking_invalid": {"booking_contact": 1}}


def test_a_second_invalid_answer_explains_the_format_and_offers_the_phone() -> None:
    said, result = validate("booking_contact", "jane@", {"booking_invalid": {"booking_contact": 1}})
    assert said == ["utter_invalid_email", "utter_format_booking_contact", "utter_booking_call_instead"]
    assert result["booking_invalid"] == {"booking_contact": 2}


def test_a_valid_answer_is_normalised_and_resets_the_count() -> None:
    said, result = validate("booking_contact", "07911 123 456", {"booking_invalid": {"booking_contact": 1}})
    assert said == [] and result == {"booking_contact": "+447911123456", "booking_invalid": {}}


def test_a_date_with_a_time_of_day_fills_both() -> None:
    _, result = validate("booking_date", "tomorrow afternoon", {})
    if result["booking_date"] is None:  # tomorrow may be a closed day; the reason was given
        pytest.skip("the example clinic is closed tomorrow")
    assert result["booking_date"] == (date.today() + timedelta(days=1)).isoformat()
    assert result["booking_time"] == "afternoon"


def test_summary_shows_the_answers_as_typed_with_send_and_change_buttons(domain) -> None:
    [message], events = run(ActionBookingSummary(), FILLED, domain)
    assert message["response"] == "utter_booking_summary" and events == []
    # As typed: the widget shows text, never HTML (a name cannot hold markup: validators.parse_name).
    assert message["name"] == "Jo O'Neill" and message["scar"] == "<b>c-section</b>"
    assert message["day"].endswith(TOMORROW.strftime("%B %Y"))
    titles = [b["title"] for b in message["buttons"]]
    assert titles[0] == "Yes, send it" and "Change days" in titles
    assert message["buttons"][3]["payload"] == '/change_booking_field{"booking_field": "booking_date"}'


def test_without_consent_nothing_is_kept(domain) -> None:
    messages, events = run(ActionBookingSummary(), {**FILLED, "booking_consent": False}, domain)
    assert responses(messages) == ["utter_booking_no_consent"]
    assert {e["name"]: e["value"] for e in events}["booking_name"] is None


def test_submit_stores_once_gives_a_reference_and_forgets_the_details(domain, database) -> None:
    [message], events = run(ActionSubmitBooking(), FILLED, domain)
    assert message["response"] == "utter_booking_saved"
    [row] = get_store().list()
    assert row["reference"] == message["reference"] and row["name"] == FILLED["booking_name"]
    slots = {e["name"]: e["value"] for e in events if e["event"] == "slot"}
    assert slots.pop("booking_reference") == message["reference"]  # not personal: kept for "what do you know"
    assert all(value is None for value in slots.values())
    again, _ = run(ActionSubmitBooking(), FILLED, domain)
    assert again[0]["reference"] == message["reference"] and len(get_store().list()) == 1


@pytest.mark.parametrize(
    "tampered",
    [
        {"booking_consent": None},
        {"booking_contact": "not a number"},
        {"booking_date": "2000-01-01"},
        {"booking_name": None},
    ],
)
def test_submit_never_stores_unchecked_details(domain, database, tampered: dict[str, Any]) -> None:
    messages, _ = run(ActionSubmitBooking(), {**FILLED, **tampered}, domain)
    assert responses(messages) == ["utter_booking_incomplete"]
    assert get_store().list() == []


def test_the_same_contact_makes_only_a_few_requests_a_day(domain, database, monkeypatch) -> None:
    monkeypatch.setenv("MAX_REQUESTS_PER_CONTACT_PER_DAY", "2")
    first, _ = run(ActionSubmitBooking(), FILLED, domain, sender="one")
    run(ActionSubmitBooking(), {**FILLED, "booking_name": "Someone Else"}, domain, sender="two")
    refused, events = run(ActionSubmitBooking(), FILLED, domain, sender="three")
    assert responses(refused) == ["utter_booking_contact_limit"] and len(get_store().list()) == 2
    assert all(e["value"] is None for e in events if e["event"] == "slot")
    again, _ = run(ActionSubmitBooking(), FILLED, domain, sender="one")  # a retried submit is not new
    assert again[0]["reference"] == first[0]["reference"]


def test_each_request_knows_its_conversation(domain, database) -> None:
    run(ActionSubmitBooking(), FILLED, domain, sender="conversation-1")
    assert [row["conversation_id"] for row in get_store().list()] == ["conversation-1"]


def test_a_stored_iso_day_is_checked_as_that_day_not_reread_as_a_phrase() -> None:
    clinic = load_settings()
    day = date.today() + timedelta(days=20)
    while not clinic.is_open(day) or day.day == day.month:
        day += timedelta(days=1)
    said, result = validate("booking_date", day.isoformat(), {})
    assert said == [] and result["booking_date"] == day.isoformat()


def test_a_database_failure_is_told_to_the_visitor(domain, monkeypatch) -> None:
    def unavailable() -> None:
        raise OSError("database unavailable")

    monkeypatch.setattr(form, "get_store", unavailable)
    messages, events = run(ActionSubmitBooking(), FILLED, domain)
    assert responses(messages) == ["utter_booking_failed"]
    assert all(e["value"] is None for e in events)


def test_change_empties_just_that_answer(domain) -> None:
    _, events = run(
        ActionChangeBookingField(),
        FILLED,
        domain,
        entities=[{"entity": "booking_field", "value": "booking_date"}],
    )
    assert events == [{"event": "slot", "timestamp": None, "name": "booking_date", "value": None}]


def test_change_without_a_known_field_asks_which(domain) -> None:
    messages, events = run(
        ActionChangeBookingField(),
        FILLED,
        domain,
        entities=[{"entity": "booking_field", "value": "booking_consent"}],
    )
    assert responses(messages) == ["utter_ask_which_field"] and events == []


def test_cancel_stops_the_form_and_drops_everything(domain) -> None:
    messages, events = run(ActionCancelBooking(), FILLED, domain)
    assert responses(messages) == ["utter_booking_cancelled"]
    assert events[0] == {"event": "active_loop", "timestamp": None, "name": None}
    assert {e["name"] for e in events[1:]} >= set(FILLED)


def test_a_scar_description_is_stored_even_if_it_reads_like_an_faq() -> None:
    said, result = validate("booking_scar", "the scar from my mastectomy", {})
    assert said == [] and result["booking_scar"] == "the scar from my mastectomy"


def test_a_question_at_the_scar_step_is_answered_not_stored(domain) -> None:
    dispatcher = CollectingDispatcher()
    message = {
        "text": "how does it work?",
        "intent": {"name": "faq", "confidence": 0.99},
        "entities": [],
        "response_selector": {"faq": {"response": {"intent_response_key": "faq/how_it_works"}}},
    }
    result = ValidateBookingForm().validate_booking_scar(
        "how does it work?",
        dispatcher,
        Tracker("v", {}, message, [], False, None, {}, "action_listen"),
        domain,
    )
    assert responses(dispatcher.messages) == ["utter_faq/how_it_works"] and result == {"booking_scar": None}


def test_a_period_fills_the_day_and_the_structured_availability(domain, database) -> None:
    said, result = validate("booking_date", "weekdays after 2pm", {})
    assert said == []
    availability = result["booking_availability"]
    assert availability["words"] == "weekdays after 2pm"
    assert availability["weekdays"] == ["monday", "tuesday", "wednesday", "thursday", "friday"]
    assert result["booking_time"] == "after 2pm" and result["booking_date"] == availability["earliest"]
    slots = {**FILLED, **result}
    [summary], _ = run(ActionBookingSummary(), slots, domain)
    assert summary["day"].startswith("weekdays from ")
    [saved], _ = run(ActionSubmitBooking(), slots, domain)
    [row] = get_store().list()
    assert (row["availability"], row["weekdays"], row["time_of_day"], row["flexible"]) == (
        "weekdays after 2pm",
        "monday,tuesday,wednesday,thursday,friday",
        "after 2pm",  # as the visitor meant it, never widened to "afternoon"
        False,
    )
    assert str(row["preferred_date"]) == availability["earliest"] and row["latest_date"] is None


def test_flexible_is_stored_as_flexible_from_the_next_open_day(domain, database) -> None:
    _, result = validate("booking_date", "I'm flexible", {})
    assert result["booking_availability"]["flexible"] is True
    [summary], _ = run(ActionBookingSummary(), {**FILLED, **result}, domain)
    assert summary["day"] == f"any day from {form.readable(TOMORROW)}"  # issue 24: read back plainly
    run(ActionSubmitBooking(), {**FILLED, **result}, domain)
    [row] = get_store().list()
    assert row["flexible"] is True and row["availability"] == "I'm flexible"


@pytest.mark.parametrize("typed", ["whenever suits", "the end of the month", "early next month"])
def test_month_periods_and_whenever_are_stored_with_what_was_read_back(typed, domain, database) -> None:
    """Issue 24: "the end of the month" was refused; what the visitor is read back is what staff read."""
    said, result = validate("booking_date", typed, {})
    assert said == [] and result["booking_availability"]["words"] == typed
    [summary], _ = run(ActionBookingSummary(), {**FILLED, **result}, domain)
    run(ActionSubmitBooking(), {**FILLED, **result}, domain)
    [row] = get_store().list()
    assert (row["availability"], row["understood"], str(row["preferred_date"])) == (
        typed,
        summary["day"],
        result["booking_date"],
    )
    assert row["flexible"] is (typed == "whenever suits")
    assert (row["latest_date"] is None) is (typed == "whenever suits")


def test_a_past_day_is_refused_naming_it(domain) -> None:
    """Issue 24: "last monday" was taken as next Monday; the visitor is told which day has passed."""
    dispatcher = CollectingDispatcher()
    result = ValidateBookingForm().validate_booking_date("last monday", dispatcher, tracker({}), domain)
    [message] = dispatcher.messages
    today = form.now_at_clinic().date()
    monday = today - timedelta(days=(today.weekday() - 1) % 7 + 1)
    assert message["response"] == "utter_invalid_date_past" and message["day"] == form.readable(
        monday, year=False
    )
    text = domain["responses"]["utter_invalid_date_past"][0]["text"].format(**message)
    assert (
        text == f"Sorry, {form.readable(monday, year=False)} has passed. Which day from tomorrow suits you?"
    )
    assert result["booking_date"] is None and result["booking_availability"] is None


@pytest.mark.parametrize(
    "typed, intent, taken",
    [
        ("not bothered", "deny", True),
        ("no preference", "deny", True),
        ("no", "deny", False),
        ("yes", "affirm", False),
    ],
)
def test_a_day_answer_read_as_yes_or_no_is_still_the_answer(typed: str, intent: str, taken: bool) -> None:
    slots = {"requested_slot": "booking_date"}
    latest = Tracker(
        "visitor",
        slots,
        {"text": typed, "intent": {"name": intent}, "entities": []},
        [],
        False,
        None,
        {},
        "action_listen",
    )
    extracted = ValidateBookingForm().extract_booking_date(CollectingDispatcher(), latest, {})
    assert extracted == ({"booking_date": typed} if taken else {})


def test_an_unreadable_day_forgets_any_earlier_availability() -> None:
    said, result = validate("booking_date", "the moon is blue", {"booking_availability": {"words": "x"}})
    assert said == ["utter_invalid_date"]
    assert result["booking_date"] is None and result["booking_availability"] is None


def test_an_unusual_phone_number_is_read_back_to_be_checked(domain) -> None:
    said, result = validate("booking_contact", "07911 654321", {})
    assert said == [] and result["booking_contact"] == "+447911654321"
    [summary], _ = run(ActionBookingSummary(), {**FILLED, **result}, domain)
    note = domain["responses"]["utter_check_phone"][0]["text"]
    assert summary["contact"].startswith("07911654321 ") and "please check this number" in summary["contact"]
    assert note.startswith("(please check")
    [usual], _ = run(ActionBookingSummary(), FILLED, domain)
    assert usual["contact"] == "07911 123456"


def test_the_day_question_offers_the_next_open_days_and_flexible(domain) -> None:
    [message], _ = run(form.ActionAskBookingDate(), {}, domain)
    assert message["response"] == "utter_ask_booking_date"
    titles = [b["title"] for b in message["buttons"]]
    assert len(titles) == 4 and titles[-1] == "I'm flexible"
    assert all(b["payload"] == b["title"] for b in message["buttons"])
    assert "Sunday" not in " ".join(titles)  # the example clinic is closed on Sundays


def test_the_promise_matches_the_contact_given(domain, database) -> None:
    """Issue 21: "The team will call you" was said to a visitor who gave an email address."""
    email = {**FILLED, "booking_contact": "jo@example.com"}
    for slots, promise in ((email, "email you"), (FILLED, "call you")):
        [question], _ = run(form.ActionAskBookingDate(), slots, domain)
        [saved], _ = run(ActionSubmitBooking(), slots, domain)
        assert question["contact_promise"] == promise and saved["contact_promise"] == promise
        text = domain["responses"]["utter_booking_saved"][0]["text"].format(
            **saved, clinic_name="", clinic_phone=""
        )
        assert f"They will {promise} within" in text


# ---- "leave a message" (actions/live_chat.py): the same form, as a callback request
CALLBACK = {
    "booking_kind": "callback",
    "booking_name": "Sam O'Neill",
    "booking_contact": "sam@example.com",
    "booking_question": "Can I have it while breastfeeding?",
    "booking_consent": True,
}


def test_a_callback_asks_name_contact_question_and_consent_only(domain) -> None:
    ask = ValidateBookingForm().required_slots
    domain_slots = domain["forms"]["booking_form"]["required_slots"]
    callback = asyncio.run(ask(domain_slots, CollectingDispatcher(), tracker(CALLBACK), domain))
    assert callback == ["booking_name", "booking_contact", "booking_question", "booking_consent"]
    consultation = asyncio.run(ask(domain_slots, CollectingDispatcher(), tracker(FILLED), domain))
    assert "booking_question" not in consultation and "booking_date" in consultation


def test_a_callback_is_summarised_stored_with_its_question_and_a_reply_time(domain, database) -> None:
    messages, _ = run(ActionBookingSummary(), CALLBACK, domain)
    assert responses(messages) == ["utter_callback_summary"]
    assert messages[0]["question"] == CALLBACK["booking_question"]
    assert [b["title"] for b in messages[0]["buttons"]] == [
        "Yes, send it",
        "Change name",
        "Change contact",
        "Change question",
    ]
    messages, events = run(ActionSubmitBooking(), CALLBACK, domain)
    assert responses(messages) == ["utter_callback_saved"] and messages[0]["reply_when"]
    row = get_store().get(messages[0]["reference"])
    assert (row["kind"], row["question"]) == ("callback", CALLBACK["booking_question"])
    assert get_store().undelivered() == []  # messages stay in the console, never sent to the booking system
    assert {"event": "slot", "name": "booking_question", "value": None, "timestamp": None} in events


@pytest.mark.parametrize("question", ["", "x", "/affirm", "y" * 1001])
def test_an_empty_or_overlong_question_is_refused(question: str) -> None:
    dispatcher = CollectingDispatcher()
    result = ValidateBookingForm().validate_booking_question(question, dispatcher, tracker(CALLBACK), {})
    assert result["booking_question"] is None
    assert responses(dispatcher.messages) == ["utter_invalid_question"]
