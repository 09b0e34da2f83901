"""Every booking answer a visitor might type: what is accepted, stored as what, or why not."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime
from zoneinfo import ZoneInfo

import pytest

from actions.booking.validators import (
    InvalidAnswer,
    parse_contact,
    parse_date,
    parse_name,
    parse_scar,
    parse_time_of_day,
    phone_needs_checking,
    readable_phone,
)
from common.clinic import load_settings

SETTINGS = replace(
    load_settings(),
    opening_days=("monday", "tuesday", "wednesday", "thursday", "friday"),
    closed_dates=("2026-12-25",),
    times_of_day=("morning", "afternoon"),
)
NOW = datetime(2026, 11, 25, 10, 0, tzinfo=ZoneInfo("Europe/London"))  # a Wednesday


@pytest.mark.parametrize(
    "typed, stored",
    [
        ("Jane Smith", "Jane Smith"),
        ("  siobhán   o'neill ", "siobhán o'neill"),
        ("Mary-Jane St. John", "Mary-Jane St. John"),
        ("J.R. Smith", "J.R. Smith"),
        ("Robert'); DROP TABLE booking_requests;--", "Robert'); DROP TABLE booking_requests;--"),
        ("李小龍", "李小龍"),
    ],
)
def test_names_are_stored_as_typed(typed: str, stored: str) -> None:
    assert parse_name(typed) == stored


@pytest.mark.parametrize(
    "typed",
    [
        "",
        "   ",
        "12345",
        "jane@example.com",
        "😀",
        "x" * 81,
        "one two three four five six seven eight nine",
        "/inform",
        "/affirm",
        '/inform{"booking_name": "Mallory"}',
        '{"booking_name": "Mallory"}',
        "[Mallory]",
        "<b>Jo</b>",
        "Jo | Smith",
        "name=Jo",
        "https://evil.example/x",
        "http://evil.example",
        "www.evil.example",
        "see evil.example/win",
        "visit evil.example now",
    ],
)
def test_non_names_are_refused(typed: str) -> None:
    with pytest.raises(InvalidAnswer) as problem:
        parse_name(typed)
    assert problem.value.reason == "name"


@pytest.mark.parametrize(
    "typed, stored",
    [
        ("07911 123456", "+447911123456"),
        ("+44 (0)7911-123-456", "+447911123456"),
        ("020 7123 4567", "+442071234567"),
        ("Jane.Smith@Example.COM", "Jane.Smith@example.com"),
        (" t.brown@example.org ", "t.brown@example.org"),
    ],
)
def test_contacts_are_normalised(typed: str, stored: str) -> None:
    assert parse_contact(typed, SETTINGS) == stored


@pytest.mark.parametrize(
    "typed, reason",
    [
        ("0791", "phone"),
        ("call me maybe", "phone"),
        ("0791 123 456 789 012", "phone"),  # too long to be any number
        ("jane@", "email"),
        ("jane@example", "email"),
        ("@example.com", "email"),
        ("a@b@c.com", "email"),
    ],
)
def test_bad_contacts_say_which_kind_was_wrong(typed: str, reason: str) -> None:
    with pytest.raises(InvalidAnswer) as problem:
        parse_contact(typed, SETTINGS)
    assert problem.value.reason == reason


def test_a_possible_but_unusual_number_is_accepted_and_flagged_for_checking() -> None:
    """A mobile-length number with an unknown prefix: the visitor checks it at the summary."""
    for typed, stored in [("07911 654321", "+447911654321"), ("07700 900123", "+447700900123")]:
        assert parse_contact(typed, SETTINGS) == stored
        assert phone_needs_checking(stored, SETTINGS)
        assert readable_phone(stored, SETTINGS) == typed.replace(" ", "")
    assert not phone_needs_checking("+447911123456", SETTINGS)
    assert readable_phone("+447911123456", SETTINGS) == "07911 123456"
    assert not phone_needs_checking("jane@example.com", SETTINGS)


def test_a_us_clinic_reads_local_numbers_as_us() -> None:
    assert parse_contact("(212) 555-0199", replace(SETTINGS, country="US")) == "+12125550199"


@pytest.mark.parametrize(
    "typed, day, time_of_day",
    [
        ("tomorrow", date(2026, 11, 26), None),
        ("next Tuesday", date(2026, 12, 1), None),
        ("tuesday", date(2026, 12, 1), None),
        ("14 Dec", date(2026, 12, 14), None),
        ("14/12", date(2026, 12, 14), None),
        ("tomorrow afternoon", date(2026, 11, 26), "afternoon"),
        ("Monday morning", date(2026, 11, 30), "morning"),
        ("in two weeks", date(2026, 12, 9), None),
        ("weekdays after 2pm", date(2026, 11, 26), "after 2pm"),
    ],
)
def test_natural_language_dates(typed: str, day: date, time_of_day: str | None) -> None:
    availability = parse_date(typed, SETTINGS, NOW)
    assert (availability.earliest, availability.time_of_day, availability.words) == (day, time_of_day, typed)


@pytest.mark.parametrize(
    "typed, reason",
    [
        ("yesterday", "date_past"),
        ("today", "date_today"),
        ("1 Jan 2020", "date_past"),
        ("Saturday", "date_closed"),
        ("25 December", "date_closed"),
        ("in two years", "date_far"),
        ("the moon is blue", "date"),
        ("Saturdays", "date_closed"),
        ("this weekend", "date_range_closed"),
        ("last week", "date_past"),
        ("weekday evenings", "time"),
        ("", "date"),
    ],
)
def test_dates_that_cannot_be_booked_say_why(typed: str, reason: str) -> None:
    with pytest.raises(InvalidAnswer) as problem:
        parse_date(typed, SETTINGS, NOW)
    assert problem.value.reason == reason


@pytest.mark.parametrize(
    "typed, day", [("2026-12-08", date(2026, 12, 8)), ("2026-12-15", date(2026, 12, 15))]
)
def test_an_iso_date_is_that_day_whatever_the_clinics_date_order(typed: str, day: date) -> None:
    """What the form stores (and re-checks when it starts again) is never read as 12 August."""
    assert SETTINGS.date_order == "DMY"
    availability = parse_date(typed, SETTINGS, NOW)
    assert (availability.earliest, availability.exact, availability.time_of_day) == (day, True, None)


def test_an_iso_date_is_checked_like_any_other() -> None:
    with pytest.raises(InvalidAnswer) as problem:
        parse_date("2026-11-01", SETTINGS, NOW)
    assert problem.value.reason == "date_past"


def test_a_closed_day_is_named_in_the_reply() -> None:
    with pytest.raises(InvalidAnswer) as problem:
        parse_date("Saturday", SETTINGS, NOW)
    assert problem.value.details == {"day": "Saturday 28 November"}


@pytest.mark.parametrize(
    "typed, stored",
    [
        ("Morning", "morning"),
        ("pm", "afternoon"),
        ("after lunch", "afternoon"),
        ("any time", "any time"),
        ("I don't mind", "any time"),
        ("afternoons are best", "afternoon"),
    ],
)
def test_times_of_day(typed: str, stored: str) -> None:
    assert parse_time_of_day(typed, SETTINGS) == stored


@pytest.mark.parametrize("typed", ["evening", "midnight", "3"])
def test_times_the_clinic_does_not_offer_are_refused(typed: str) -> None:
    with pytest.raises(InvalidAnswer) as problem:
        parse_time_of_day(typed, SETTINGS)
    assert problem.value.reason == "time" and problem.value.details == {"options": "morning or afternoon"}


@pytest.mark.parametrize(
    "typed, stored",
    [
        ("skip", ""),
        ("No", ""),
        ("c-section scar", "c-section scar"),
        ("<script>alert(1)</script>", "<script>alert(1)</script>"),
    ],
)
def test_scar_is_optional_free_text(typed: str, stored: str) -> None:
    assert parse_scar(typed) == stored


def test_scar_description_is_kept_short() -> None:
    with pytest.raises(InvalidAnswer):
        parse_scar("x" * 201)


@pytest.mark.parametrize(
    "typed, reason, day",
    [
        ("last monday", "date_past", "Monday 23 November"),
        ("this past Friday", "date_past", "Friday 20 November"),
        ("2026-11-23", "date_past", "Monday 23 November"),
        ("23 November", "date_past", "Monday 23 November"),
        ("today", "date_today", "Wednesday 25 November"),
        ("2026-11-25", "date_today", "Wednesday 25 November"),
    ],
)
def test_a_day_that_has_passed_is_named_in_the_reply(typed: str, reason: str, day: str) -> None:
    """Issue 24: "last monday" was taken as the next Monday; now the visitor is told it has passed."""
    with pytest.raises(InvalidAnswer) as problem:
        parse_date(typed, SETTINGS, NOW)
    assert (problem.value.reason, problem.value.details) == (reason, {"day": day})


@pytest.mark.parametrize(
    "typed, first, last, read_back",
    [
        (
            "end of the month",
            date(2026, 11, 26),
            date(2026, 11, 30),
            "between Thursday 26 November and Monday 30 November 2026",
        ),
        (
            "early next month",
            date(2026, 12, 1),
            date(2026, 12, 10),
            "between Tuesday 1 December and Thursday 10 December 2026",
        ),
        (
            "the first week of december",
            date(2026, 12, 1),
            date(2026, 12, 7),
            "between Tuesday 1 December and Monday 7 December 2026",
        ),
        (
            "mid-month",
            date(2026, 12, 11),
            date(2026, 12, 18),
            "between Friday 11 December and Friday 18 December 2026",
        ),
        ("whenever suits", date(2026, 11, 26), None, "any day from Thursday 26 November 2026"),
        ("no preference", date(2026, 11, 26), None, "any day from Thursday 26 November 2026"),
    ],
)
def test_month_periods_and_any_day_are_accepted_and_read_back(
    typed: str, first: date, last: date | None, read_back: str
) -> None:
    """Issue 24: these were refused ("Sorry, I couldn't work out which days you mean")."""
    availability = parse_date(typed, SETTINGS, NOW)
    assert (availability.earliest, availability.latest, availability.describe()) == (first, last, read_back)
    assert availability.flexible == (last is None) and availability.words == typed


def test_the_clinics_day_decides_what_has_passed_near_midnight() -> None:
    """23:30 UTC on Wednesday 25 November is already Thursday in Sydney: Thursday is today there."""
    sydney = replace(SETTINGS, timezone="Australia/Sydney")
    late = datetime(2026, 11, 25, 13, 30, tzinfo=ZoneInfo("UTC"))  # 00:30 on the 26th in Sydney
    with pytest.raises(InvalidAnswer) as problem:
        parse_date("2026-11-26", sydney, late)
    assert (problem.value.reason, problem.value.details) == ("date_today", {"day": "Thursday 26 November"})
    assert parse_date("tomorrow", sydney, late).earliest == date(2026, 11, 27)
