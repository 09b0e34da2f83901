"""The day question's answers as visitors phrase them (devtools/availability/phrases.yml), read back."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime
from zoneinfo import ZoneInfo

import pytest
import yaml

from actions.booking.availability import (
    Availability,
    NoOpenDay,
    NotUnderstood,
    next_open_days,
    parse_availability,
    read,
)
from common.clinic import load_settings
from common.paths import PROJECT_ROOT

PHRASES = yaml.safe_load(
    (PROJECT_ROOT / "devtools" / "availability" / "phrases.yml").read_text(encoding="utf-8")
)
NOW = datetime.fromisoformat(PHRASES["now"]).replace(tzinfo=ZoneInfo("Europe/London"))  # a Thursday
# The clinic the phrases were written for: Monday to Saturday, closed at Christmas and New Year.
SETTINGS = replace(
    load_settings(),
    opening_days=("monday", "tuesday", "wednesday", "thursday", "friday", "saturday"),
    closed_dates=("2026-12-25", "2026-12-26", "2027-01-01"),
    times_of_day=("morning", "afternoon"),
    date_order="DMY",
)


def day(text: str | None) -> date | None:
    return date.fromisoformat(text) if text else None


@pytest.mark.parametrize("phrase", PHRASES["phrases"], ids=[p["text"] for p in PHRASES["phrases"]])
def test_each_way_of_saying_when_is_understood(phrase: dict) -> None:
    reading = read(phrase["text"], SETTINGS, NOW)
    if phrase.get("flexible") or phrase.get("weekdays"):  # the first open day that suits
        assert parse_availability(phrase["text"], SETTINGS, NOW).earliest == day(phrase["earliest"])
    else:
        assert reading.earliest == day(phrase["earliest"])
    assert reading.latest == day(phrase.get("latest"))
    assert list(reading.weekdays) == (phrase.get("weekdays") or [])
    assert reading.time_of_day == phrase.get("time_of_day")
    assert reading.flexible == bool(phrase.get("flexible"))


@pytest.mark.parametrize(
    "typed, read_back",
    [
        ("a week on Monday", "Monday 14 December 2026"),
        ("next week", "between Monday 7 December and Saturday 12 December 2026"),
        ("any weekday", "weekdays from Friday 4 December 2026"),
        ("weekdays after 2pm", "weekdays from Friday 4 December 2026"),
        ("Tuesday or Wednesday", "Tuesdays or Wednesdays from Tuesday 8 December 2026"),
        ("I'm flexible", "any day - the sooner the better (from Friday 4 December 2026)"),
        ("asap", "any day - the sooner the better (from Friday 4 December 2026)"),
        ("after Christmas", "any day from Monday 28 December 2026"),
        ("early January", "between Saturday 2 January and Saturday 9 January 2027"),
    ],
)
def test_the_summary_reads_the_preference_back_in_plain_words(typed: str, read_back: str) -> None:
    availability = parse_availability(typed, SETTINGS, NOW)
    assert availability.describe() == read_back
    assert availability.words == typed
    assert Availability.from_slot(availability.to_slot()) == availability


def test_a_range_starts_on_its_first_open_day_and_keeps_its_end() -> None:
    availability = parse_availability("next week", SETTINGS, NOW)
    assert (availability.earliest, availability.latest) == (date(2026, 12, 7), date(2026, 12, 12))
    availability = parse_availability("after Christmas", SETTINGS, NOW)
    assert (availability.earliest, availability.latest) == (date(2026, 12, 28), None)


@pytest.mark.parametrize(
    "typed, reason, details",
    [
        ("yesterday", "date_past", {}),
        ("last week", "date_past", {}),
        ("Sunday", "date_closed", {"day": "Sunday 6 December"}),
        ("Boxing Day", "date_closed", {"day": "Saturday 26 December"}),
        ("Sundays", "date_closed", {"day": "Sundays"}),
        ("in two years", "date_far", {}),
    ],
)
def test_past_and_closed_days_still_get_their_reasons(typed: str, reason: str, details: dict) -> None:
    with pytest.raises(NoOpenDay) as problem:
        parse_availability(typed, SETTINGS, NOW)
    assert (problem.value.reason, problem.value.details) == (reason, details)


@pytest.mark.parametrize("typed", ["", "the moon is blue", "hello", "???"])
def test_answers_with_no_day_in_them_are_not_guessed(typed: str) -> None:
    with pytest.raises(NotUnderstood):
        parse_availability(typed, SETTINGS, NOW)


def test_a_us_clinic_reads_slashed_dates_month_first() -> None:
    us = replace(SETTINGS, date_order="MDY")
    assert parse_availability("12/14", us, NOW).earliest == date(2026, 12, 14)
    assert parse_availability("14/12", SETTINGS, NOW).earliest == date(2026, 12, 14)


def test_the_question_offers_the_next_open_days() -> None:
    assert next_open_days(SETTINGS, NOW.date(), 3) == [
        date(2026, 12, 4),
        date(2026, 12, 5),
        date(2026, 12, 7),
    ]


def test_days_and_a_time_said_at_the_time_question_narrow_the_earlier_answer() -> None:
    from actions.booking.availability import Availability

    fortnight = Availability(words="in a fortnight", earliest=date(2026, 12, 17), exact=True)
    later = Availability(
        words="weekdays after 2pm",
        earliest=date(2026, 12, 4),
        weekdays=("monday", "tuesday", "wednesday", "thursday", "friday"),
        time_of_day="afternoon",
    )
    refined = fortnight.refined_by(later)
    assert refined.words == "in a fortnight, weekdays after 2pm"
    assert refined.earliest == date(2026, 12, 17)  # not earlier than the visitor first said
    assert refined.weekdays == later.weekdays and refined.time_of_day == "afternoon" and not refined.exact
    assert refined.describe().startswith("weekdays from ")
    evening = Availability(words="evenings", earliest=date(2026, 12, 4), time_of_day="evening")
    assert fortnight.refined_by(evening).exact and fortnight.refined_by(evening).time_of_day == "evening"


def test_the_issues_answer_keeps_its_time_and_its_alternative() -> None:
    """Issue 21: read back as "weekdays between Monday 7 and Friday 11 December - Time: morning"."""
    typed = "any weekday next week after 2pm, or Saturday morning"
    availability = parse_availability(typed, SETTINGS, NOW)
    assert availability.describe() == (
        "weekdays between Monday 7 December and Friday 11 December 2026, after 2pm;"
        " or Saturday 12 December 2026, morning"
    )
    assert availability.time_of_day == "after 2pm or morning"
    assert (availability.earliest, availability.latest) == (date(2026, 12, 7), date(2026, 12, 12))
    assert availability.weekdays[-1] == "saturday" and availability.words == typed
    assert Availability.from_slot(availability.to_slot()) == availability


@pytest.mark.parametrize(
    "typed, time_of_day",
    [
        ("Tuesday after 2pm", "after 2pm"),
        ("Tuesday lunchtime", "lunchtime"),
        ("Tuesday at lunch", "lunchtime"),
        ("Tuesday before work", "before work"),
        ("Tuesday after 3", "after 3pm"),
        ("Tuesday before 11am", "before 11am"),
        ("Tuesday between 2 and 4pm", "between 2pm and 4pm"),
        ("Tuesday 10:30am", "10:30am"),
        ("Tuesday afternoon", "afternoon"),
        ("Tuesday mornings or lunchtime", "morning or lunchtime"),
        ("next week, mornings or after 2pm", "morning or after 2pm"),
    ],
)
def test_a_time_of_day_is_kept_as_the_visitor_meant_it(typed: str, time_of_day: str) -> None:
    assert parse_availability(typed, SETTINGS, NOW).time_of_day == time_of_day


@pytest.mark.parametrize(
    "typed", ["Tuesday after 5", "weekdays after work", "Monday evening", "Friday at 7pm"]
)
def test_a_time_the_clinic_does_not_offer_is_asked_about_not_replaced(typed: str) -> None:
    with pytest.raises(NoOpenDay) as problem:
        parse_availability(typed, SETTINGS, NOW)
    assert (problem.value.reason, problem.value.details) == ("time", {"options": "morning or afternoon"})


@pytest.mark.parametrize(
    "typed, read_back",
    [
        (
            "Monday morning or Friday afternoon",
            "Monday 7 December 2026, morning; or Friday 4 December 2026, afternoon",
        ),
        ("mornings or afternoons next week", "between Monday 7 December and Saturday 12 December 2026"),
        ("Tuesday or Wednesday afternoons", "Tuesdays or Wednesdays from Tuesday 8 December 2026"),
        ("after 12 December", "any day from Monday 14 December 2026"),
    ],
)
def test_alternatives_are_kept_and_one_preference_stays_one(typed: str, read_back: str) -> None:
    assert parse_availability(typed, SETTINGS, NOW).describe() == read_back


def test_an_alternative_that_cannot_be_read_is_asked_about_not_dropped() -> None:
    with pytest.raises(NotUnderstood):
        parse_availability("next week after 2pm, or when the moon is blue", SETTINGS, NOW)
