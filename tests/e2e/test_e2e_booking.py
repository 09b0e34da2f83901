"""End to end: a visitor books a consultation over HTTP; the request lands in the database."""

from __future__ import annotations

import calendar
import uuid
from datetime import date, datetime, timedelta

import pytest
import sqlalchemy as sa

from common.clinic import load_settings
from common.records.bookings import get_store
from staff.service import bookings as reception
from tests.helpers import ISSUED_IDS, LiveAssistant, json_log_lines, read_metrics

pytestmark = pytest.mark.e2e
NAME, EMAIL, SCAR = "Priya O'Sharma-Test", "priya.test@example.com", "<i>knee</i> scar"


def open_day(days_ahead: int = 2) -> date:
    """The first day the clinic is open, at least `days_ahead` days from now."""
    return load_settings().next_open_day(date.today() + timedelta(days=days_ahead))


def stored(live: LiveAssistant, reference: str) -> dict:
    with sa.create_engine(live.database_url).connect() as db:
        row = (
            db.execute(sa.text("SELECT * FROM booking_requests WHERE reference = :r"), {"r": reference})
            .mappings()
            .first()
        )
    return dict(row) if row else {}


def test_a_visitor_books_and_the_request_is_stored(live: LiveAssistant, expected) -> None:
    me, day = f"booker-{uuid.uuid4().hex[:6]}", open_day()
    stored_requests = ("clinic_requests_stored_total", (("kind", "consultation"),))
    _, before, _ = read_metrics(live.action_server_url)
    intro, question = live.texts(me, "I'd like to book a consultation")
    assert (intro, question) == (expected("utter_booking_intro"), expected("utter_ask_booking_name"))
    assert live.texts(me, NAME) == [expected("utter_ask_booking_contact")]
    assert live.texts(me, EMAIL) == [expected("utter_ask_booking_date", contact_promise="email you")]
    assert live.texts(me, f"{day.day} {day:%B}") == [expected("utter_ask_booking_time")]
    assert live.texts(me, "afternoon") == [expected("utter_ask_booking_scar")]
    assert live.texts(me, SCAR) == [expected("utter_ask_booking_consent")]
    [summary] = live.say(me, "/affirm")
    assert "Priya O'Sharma-Test" in summary["text"] and "<i>knee</i> scar" in summary["text"]
    assert f"{day.day} {day:%B %Y}" in summary["text"] and summary["buttons"][0]["payload"] == "/affirm"
    [saved] = live.texts(me, "/affirm")
    reference = saved.split("Your reference is ")[1][:11]
    assert saved == expected("utter_booking_saved", reference=reference, contact_promise="email you")
    row = stored(live, reference)
    assert (row["name"], row["contact"], row["scar"], row["time_of_day"]) == (NAME, EMAIL, SCAR, "afternoon")
    assert str(row["preferred_date"]) == day.isoformat()
    _, after, _ = read_metrics(live.action_server_url)  # the clinic's monitoring counts it (issue 23)
    assert after[stored_requests] - before.get(stored_requests, 0.0) == 1
    # The details have left the conversation: a new request starts from scratch.
    assert live.texts(me, "book a consultation")[1] == expected("utter_ask_booking_name")


def test_changing_the_name_at_the_summary_keeps_the_day(live: LiveAssistant, expected) -> None:
    """The stored day (ISO, e.g. 2026-12-08) is never re-read as a typed phrase ("12 August")."""
    me, day = f"booker-{uuid.uuid4().hex[:6]}", open_day()
    if day.day == day.month:  # a day that reads the same both ways would prove nothing
        day = open_day((day - date.today()).days + 1)
    live.texts(me, "book a consultation")
    for answer in ["Chris Morgan", "chris.morgan@example.com", f"{day.day} {day:%B}", "morning", "skip"]:
        live.texts(me, answer)
    assert f"{day.day} {day:%B %Y}" in live.texts(me, "/affirm")[0]
    assert live.texts(me, '/change_booking_field{"booking_field": "booking_name"}') == [
        expected("utter_ask_booking_name")
    ]
    [summary] = live.texts(me, "Christine Morgan")
    assert "Name: Christine Morgan" in summary and f"Days that suit: {readable(day)}" in summary


def readable(day: date) -> str:
    return f"{day:%A} {day.day} {day:%B %Y}"


def test_an_faq_question_mid_form_is_answered_and_the_form_resumes(live: LiveAssistant, expected) -> None:
    me = f"booker-{uuid.uuid4().hex[:6]}"
    live.texts(me, "can I book an appointment")
    live.texts(me, "Sam Taylor")
    assert live.texts(me, "what is PIH") == [
        expected("utter_faq/what_is_pih"),
        expected("utter_ask_booking_contact"),
    ]


def test_two_invalid_answers_explain_the_format_and_offer_the_phone(live: LiveAssistant, expected) -> None:
    me = f"booker-{uuid.uuid4().hex[:6]}"
    live.texts(me, "book a consultation")
    live.texts(me, "Sam Taylor")
    assert live.texts(me, "0791") == [expected("utter_invalid_phone"), expected("utter_ask_booking_contact")]
    assert live.texts(me, "sam@") == [
        expected("utter_invalid_email"),
        expected("utter_format_booking_contact"),
        expected("utter_booking_call_instead"),
        expected("utter_ask_booking_contact"),
    ]


def test_refused_consent_stores_nothing(live: LiveAssistant, expected) -> None:
    me, day = f"booker-{uuid.uuid4().hex[:6]}", open_day()
    live.texts(me, "book a consultation")
    for answer in ["Alex Refuser", "07911 222333", f"{day.day} {day:%B}", "morning", "skip"]:
        live.texts(me, answer)
    assert live.texts(me, "/deny") == [expected("utter_booking_no_consent")]
    with sa.create_engine(live.database_url).connect() as db:
        assert (
            db.execute(sa.text("SELECT COUNT(*) FROM booking_requests WHERE name = 'Alex Refuser'")).scalar()
            == 0
        )


def test_cancel_asks_first_then_drops_everything(live: LiveAssistant, expected) -> None:
    me = f"booker-{uuid.uuid4().hex[:6]}"
    live.texts(me, "book a consultation")
    live.texts(me, "Casey Cancel")
    assert live.texts(me, "cancel") == [expected("utter_ask_cancel_booking")]
    assert live.texts(me, "/affirm") == [expected("utter_booking_cancelled")]


def test_typed_payloads_cannot_set_consent_or_skip_validation(live: LiveAssistant, expected) -> None:
    """Stock Rasa lets anyone type /intent{"slot": ...}; no booking slot is filled from entities."""
    me = f"mallory-{uuid.uuid4().hex[:6]}"
    live.texts(me, "book a consultation")
    forged = '/affirm{"booking_consent": true, "booking_name": "Mallory", "booking_contact": "x"}'
    assert live.texts(me, forged) == [
        expected("utter_booking_continue"),  # entities dropped,
        expected("utter_ask_booking_name"),
    ]  # question asked again
    # The name is still missing: a real name is taken as the name, and the contact is asked next.
    assert live.texts(me, "Jo Bloggs")[-1] == expected("utter_ask_booking_contact")
    with sa.create_engine(live.database_url).connect() as db:
        assert (
            db.execute(sa.text("SELECT COUNT(*) FROM booking_requests WHERE name LIKE 'Mallory%'")).scalar()
            == 0
        )


PERSONAL = [
    NAME,
    EMAIL,
    "Priya",
    "07911",
    "+44791",
    "Sam Taylor",
    "Casey Cancel",
    "knee",
    "Mallory",
    "Jo Bloggs",
]


def test_personal_data_never_reaches_the_server_logs(live: LiveAssistant) -> None:
    """Runs after the bookings above (same servers): none of their details are logged."""
    log = live.log_path.read_text(encoding="utf-8", errors="replace")
    for secret in PERSONAL:
        assert secret not in log, f"{secret!r} appears in the server log"
    # LOG_FORMAT=json (the production default; these servers use it): every field of every line
    # is free of them too, and no line names a conversation by its id (issue 23).
    lines = json_log_lines(log)
    assert any(line.get("request_id") and line.get("outcome") for line in lines)
    issued = [conversation for conversation in ISSUED_IDS.values() if len(conversation) > 8]
    assert issued
    for line in lines:
        assert {"time", "level", "service", "message"} <= set(line), line
        for value in map(str, line.values()):
            assert not [secret for secret in PERSONAL if secret in value], line
            assert not [conversation for conversation in issued if conversation in value], line


def test_availability_in_the_visitors_words_is_stored_with_its_structure(
    live: LiveAssistant, expected
) -> None:
    me = f"booker-{uuid.uuid4().hex[:6]}"
    live.texts(me, "any appointments next week?")
    live.texts(me, "Sam Taylor")
    [question] = live.say(me, "07911 654321")  # possible, not valid: accepted, read back to check
    assert question["text"] == expected("utter_ask_booking_date", contact_promise="call you")
    assert [b["title"] for b in question["buttons"]][-1] == "I'm flexible"
    assert live.texts(me, "in a fortnight") == [expected("utter_ask_booking_time")]
    assert live.texts(me, "weekdays after 2pm") == [expected("utter_ask_booking_scar")]  # time read too
    live.texts(me, "skip")
    [summary] = live.texts(me, "/affirm")
    assert "Days that suit: weekdays from " in summary
    assert "07911654321 (please check this number" in summary
    [saved] = live.texts(me, "/affirm")
    row = stored(live, saved.split("Your reference is ")[1][:11])
    assert (row["availability"], row["weekdays"], row["time_of_day"], row["contact"]) == (
        "in a fortnight, weekdays after 2pm",  # both answers, in the visitor's words
        "monday,tuesday,wednesday,thursday,friday",
        "after 2pm",  # as meant, not widened to "afternoon"
        "+447911654321",
    )
    fortnight = (datetime.now(load_settings().zone) + timedelta(days=14)).date()
    assert str(row["preferred_date"]) >= fortnight.isoformat()
    assert row["latest_date"] is None and not row["flexible"]


def test_a_closed_or_past_period_still_gets_its_reason(live: LiveAssistant, expected) -> None:
    me = f"booker-{uuid.uuid4().hex[:6]}"
    live.texts(me, "book a consultation")
    live.texts(me, "Sam Taylor")
    live.texts(me, "sam@example.com")
    today = datetime.now(load_settings().zone).date()
    monday = today - timedelta(days=today.weekday() + 7)
    sunday = monday + timedelta(days=6)
    last_week = f"{monday:%A} {monday.day} {monday:%B} to {sunday:%A} {sunday.day} {sunday:%B}"
    assert live.texts(me, "last week")[0] == expected("utter_invalid_date_past", day=last_week)
    assert live.texts(me, "Sundays")[0] == expected("utter_invalid_date_closed").replace("{day}", "Sundays")


def test_times_and_alternatives_are_read_back_as_said_and_the_promise_fits_the_contact(
    live: LiveAssistant, expected
) -> None:
    """Issue 21: the answer's time and its alternative were replaced or dropped; a promise to call.

    "any weekday next week after 2pm, or Saturday morning" was read back as "weekdays between
    Monday 7 and Friday 11 December - Time: morning", and a visitor who gave an email was
    told "The team will call you".
    """
    me = f"booker-{uuid.uuid4().hex[:6]}"
    live.texts(me, "book a consultation")
    live.texts(me, "Sam Taylor")
    [question] = live.texts(me, "sam.taylor@example.com")
    assert "The team will email you to arrange a time." in question and "call you" not in question
    typed = "any weekday next week after 2pm, or Saturday morning"
    assert live.texts(me, typed) == [expected("utter_ask_booking_scar")]  # the times were understood
    live.texts(me, "skip")
    [summary] = live.texts(me, "/affirm")
    days = summary.split("Days that suit: ")[1].split("\n")[0]
    assert "weekdays between Monday" in days and ", after 2pm; or Saturday " in days, summary
    assert days.endswith(", morning") and "• Time: after 2pm or morning" in summary
    [saved] = live.texts(me, "/affirm")
    assert "They will email you within two working days" in saved
    row = stored(live, saved.split("Your reference is ")[1][:11])
    assert (row["availability"], row["time_of_day"], row["understood"]) == (
        typed,
        "after 2pm or morning",
        days,
    )
    assert row["weekdays"].endswith("friday,saturday") and row["latest_date"] is not None

    # A phone number is called; a time the clinic does not offer is asked about, not replaced.
    other = f"booker-{uuid.uuid4().hex[:6]}"
    live.texts(other, "book a consultation")
    live.texts(other, "Sam Taylor")
    [question] = live.texts(other, "07911 123456")
    assert question.startswith("The team will call you to arrange a time.")
    assert live.texts(other, "Tuesday after 5")[0] == expected(
        "utter_invalid_time", options="morning or afternoon"
    )
    assert live.texts(other, "Tuesday lunchtime") == [expected("utter_ask_booking_scar")]
    live.texts(other, "skip")
    [summary] = live.texts(other, "/affirm")
    assert "• Time: lunchtime" in summary


def _month_end_days(today: date) -> tuple[date, date]:
    """The first and last open days "the end of the month" means (the 21st on, from tomorrow).

    On a month's last day it is the next month's end.
    """
    settings = load_settings()
    first = (today + timedelta(days=1)).replace(day=1)
    last = first.replace(day=calendar.monthrange(first.year, first.month)[1])
    days = [
        first.replace(day=n)
        for n in range(21, last.day + 1)
        if first.replace(day=n) > today and settings.is_open(first.replace(day=n))
    ]
    return days[0], days[-1]


def test_a_month_period_and_whenever_suits_are_read_back_and_stored_for_staff(
    live: LiveAssistant, expected
) -> None:
    """Issue 24: month periods and "I don't mind when" were refused; "last Monday" was next Monday.

    What the visitor is read back is what is stored, and what reception reads and exports.
    """
    zone = load_settings().zone
    today = datetime.now(zone).date()
    first, last = _month_end_days(today)
    me = f"booker-{uuid.uuid4().hex[:6]}"
    live.texts(me, "book a consultation")
    live.texts(me, "Sam Period")
    live.texts(me, "sam.period@example.com")
    monday = today - timedelta(days=(today.weekday() - 1) % 7 + 1)
    assert live.texts(me, "last monday")[0] == expected(
        "utter_invalid_date_past", day=f"{monday:%A} {monday.day} {monday:%B}"
    )
    assert live.texts(me, "the end of the month") == [expected("utter_ask_booking_time")]
    live.texts(me, "morning")
    live.texts(me, "skip")
    [summary] = live.texts(me, "/affirm")
    days = summary.split("Days that suit: ")[1].split("\n")[0]
    assert days == f"between {first:%A} {first.day} {first:%B} and {readable(last)}", summary
    [saved] = live.texts(me, "/affirm")
    row = stored(live, saved.split("Your reference is ")[1][:11])
    assert (row["availability"], row["understood"], str(row["preferred_date"]), str(row["latest_date"])) == (
        "the end of the month",
        days,
        first.isoformat(),
        last.isoformat(),
    )
    seen = reception.get(get_store(live.database_url), row["reference"], zone)  # the booking's page
    assert not row["flexible"] and reception.when(seen)["range"] == f"{readable(first)} to {readable(last)}"

    other = f"booker-{uuid.uuid4().hex[:6]}"
    live.texts(other, "book a consultation")
    live.texts(other, "Jo Whenever")
    live.texts(other, f"{other}@example.com")
    assert live.texts(other, "whenever suits") == [expected("utter_ask_booking_time")]
    live.texts(other, "any time")
    live.texts(other, "skip")
    [summary] = live.texts(other, "/affirm")
    opens = load_settings().next_open_day(today + timedelta(days=1))
    assert f"Days that suit: any day from {readable(opens)}\n" in summary, summary
    [saved] = live.texts(other, "/affirm")
    row = stored(live, saved.split("Your reference is ")[1][:11])
    assert (row["availability"], row["understood"], row["flexible"], row["latest_date"]) == (
        "whenever suits",
        f"any day from {readable(opens)}",
        True,
        None,
    )
    seen = reception.get(get_store(live.database_url), row["reference"], zone)
    staff_sees = reception.when(seen)  # the booking's page in the staff console
    assert (staff_sees["words"], staff_sees["flexible"], staff_sees["weekdays"]) == (
        "whenever suits",
        "yes: any day suits",
        "any day the clinic is open",
    )
    exported = reception.export_csv([seen], zone).decode("utf-8-sig")
    assert "whenever suits" in exported and f"any day from {readable(opens)}" in exported

    # "not bothered" is read as a "no" by the classifier (a stray "no" asks again): it is the answer.
    third = f"booker-{uuid.uuid4().hex[:6]}"
    live.texts(third, "book a consultation")
    live.texts(third, "Alex Easy")
    live.texts(third, f"{third}@example.com")
    assert live.texts(third, "not bothered") == [expected("utter_ask_booking_time")]
