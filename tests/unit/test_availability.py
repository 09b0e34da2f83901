"""The day question's answers as visitors phrase them (devtools/availability/phrases.yml), read back."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime, timedelta
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
        ("I'm flexible", "any day from Friday 4 December 2026"),  # issue 24: not "the sooner"
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
        ("yesterday", "date_past", {"day": "Wednesday 2 December"}),
        ("last week", "date_past", {"day": "Monday 23 November to Sunday 29 November"}),
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


@pytest.mark.parametrize("typed", ["in a fortnight", "in 2 weeks time", "in two weeks"])
def test_a_day_counted_in_weeks_that_the_clinic_is_closed_means_from_then_on(typed: str) -> None:
    """On a Sunday, "in a fortnight" is a Sunday too: the visitor means about then, not that day."""
    sunday = NOW + timedelta(days=3)
    availability = parse_availability(typed, SETTINGS, sunday)
    assert (availability.earliest, availability.latest) == (date(2026, 12, 21), None)
    assert not availability.exact
    assert availability.describe() == "any day from Monday 21 December 2026"
    assert parse_availability(typed, SETTINGS, NOW).exact  # an open day stays that day
    for named in ("Sunday 20 December", "Sunday 20 December, in 2 weeks", "in two weeks on the 20th"):
        with pytest.raises(NoOpenDay) as closed:  # a Sunday named is still refused, naming it
            parse_availability(named, SETTINGS, sunday)
        assert closed.value.reason == "date_closed", named


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


# ---- Issue 24: periods relative to the month, "I don't mind when", past days named relatively.
# Said on Thursday 3 December 2026 (NOW) to the Monday-to-Saturday clinic closed on 25 and 26
# December and 1 January, unless another moment is given.
MONDAY_30_NOVEMBER_LATE = datetime(2026, 11, 30, 23, 30, tzinfo=ZoneInfo("Europe/London"))
MONDAY_28_DECEMBER = datetime(2026, 12, 28, 9, 0, tzinfo=ZoneInfo("Europe/London"))


@pytest.mark.parametrize(
    "typed, first, last",
    [
        ("end of the month", "2026-12-21", "2026-12-31"),
        ("the end of the month", "2026-12-21", "2026-12-31"),
        ("towards the end of the month pls", "2026-12-21", "2026-12-31"),
        ("end of this month", "2026-12-21", "2026-12-31"),
        ("end of month", "2026-12-21", "2026-12-31"),
        ("at the end of teh mnth", "2026-12-21", "2026-12-31"),
        ("end of next month", "2027-01-21", "2027-01-30"),
        ("early next month", "2027-01-02", "2027-01-09"),
        ("begining of next month", "2027-01-02", "2027-01-09"),
        ("start of next month", "2027-01-02", "2027-01-09"),
        ("the first week of January", "2027-01-02", "2027-01-07"),
        ("first week of jan", "2027-01-02", "2027-01-07"),
        ("1st week of next month", "2027-01-02", "2027-01-07"),
        ("the 2nd week of january", "2027-01-08", "2027-01-14"),
        ("the last week of december", "2026-12-28", "2026-12-31"),
        ("last week of the month", "2026-12-28", "2026-12-31"),
        ("mid-month", "2026-12-11", "2026-12-19"),
        ("mid month", "2026-12-11", "2026-12-19"),
        ("middle of the month", "2026-12-11", "2026-12-19"),
        ("around the middle of the month", "2026-12-11", "2026-12-19"),
        ("mid next month", "2027-01-11", "2027-01-20"),
        ("the middle of next month", "2027-01-11", "2027-01-20"),
        ("later this month", "2026-12-04", "2026-12-31"),
        ("later in the month", "2026-12-04", "2026-12-31"),
        ("sometime later this month", "2026-12-04", "2026-12-31"),
        ("the rest of the month", "2026-12-04", "2026-12-31"),
        ("before the end of the month", "2026-12-04", "2026-12-31"),
        ("by the end of the month", "2026-12-04", "2026-12-31"),
        ("any day at the end of the month", "2026-12-21", "2026-12-31"),
        ("end of the month, mornings", "2026-12-21", "2026-12-31"),
        ("the last friday of january", "2027-01-29", None),
        ("second half of the month", "2026-12-16", "2026-12-31"),
        ("first half of next month", "2027-01-02", "2027-01-15"),
        ("the last day of the month", "2026-12-31", None),
        ("end of the month or early next month", "2026-12-21", "2027-01-09"),
        ("any time past friday", "2026-12-05", None),  # after Friday, not a Friday gone
    ],
)
def test_periods_relative_to_the_month_are_the_clinics_open_days_in_them(
    typed: str, first: str, last: str | None
) -> None:
    availability = parse_availability(typed, SETTINGS, NOW)
    assert (availability.earliest, availability.latest) == (day(first), day(last))
    assert availability.words == typed and Availability.from_slot(availability.to_slot()) == availability


@pytest.mark.parametrize(
    "typed, first",
    [
        ("the 10th of the month", "2026-12-10"),
        ("on the 21st of this month", "2026-12-21"),
        ("15th next month", "2027-01-15"),
        ("the 5th of next month", "2027-01-05"),
        ("the 2nd of the month", "2027-01-02"),  # "the month"'s 2nd is over: next month's
    ],
)
def test_a_day_of_the_month_named_by_its_number_is_that_day(typed: str, first: str) -> None:
    """Never the whole month: the visitor named one day."""
    availability = parse_availability(typed, SETTINGS, NOW)
    assert (availability.earliest, availability.latest) == (day(first), None)


@pytest.mark.parametrize(
    "typed",
    [
        "not monday",
        "any day except friday",
        "whenever, just not next week",
        "doesn't matter as long as it's not a friday",
        "anything apart from tuesday",
        "any day other than the 10th",
    ],
)
def test_a_day_the_visitor_cannot_do_is_not_taken_as_the_day_they_want(typed: str) -> None:
    """A day named as not suiting ("not Monday") is never booked: the question is asked again."""
    with pytest.raises(NotUnderstood):
        parse_availability(typed, SETTINGS, NOW)


@pytest.mark.parametrize(
    "typed, now, first, last",
    [
        # The last evening of November: "the month" is over, so it is December's end that suits.
        ("end of the month", MONDAY_30_NOVEMBER_LATE, "2026-12-21", "2026-12-31"),
        ("early next month", MONDAY_30_NOVEMBER_LATE, "2026-12-01", "2026-12-10"),
        ("next month", MONDAY_30_NOVEMBER_LATE, "2026-12-01", "2026-12-31"),
        ("the first week of the month", MONDAY_30_NOVEMBER_LATE, "2026-12-01", "2026-12-07"),
        # Mid-month has passed by the 28th: the middle of the next month.
        ("mid-month", MONDAY_28_DECEMBER, "2027-01-11", "2027-01-20"),
        ("end of the month", MONDAY_28_DECEMBER, "2026-12-29", "2026-12-31"),
        ("next month", MONDAY_28_DECEMBER, "2027-01-02", "2027-01-30"),
    ],
)
def test_month_periods_at_the_month_boundary(typed: str, now: datetime, first: str, last: str) -> None:
    availability = parse_availability(typed, SETTINGS, now)
    assert (availability.earliest, availability.latest) == (day(first), day(last))


def test_a_period_of_this_month_that_is_over_says_so() -> None:
    """On its last evening, what is left of "this month" is today."""
    with pytest.raises(NoOpenDay) as problem:
        parse_availability("later this month", SETTINGS, MONDAY_30_NOVEMBER_LATE)
    assert (problem.value.reason, problem.value.details) == ("date_today", {"day": "Monday 30 November"})
    with pytest.raises(NoOpenDay) as problem:
        parse_availability("early this month", SETTINGS, MONDAY_28_DECEMBER)
    assert (problem.value.reason, problem.value.details) == (
        "date_past",
        {"day": "Tuesday 1 December to Thursday 10 December"},
    )


def test_the_day_is_the_clinics_whatever_the_time_zone_of_the_moment_given() -> None:
    """01:30 on Tuesday 1 December in Sydney is still 30 November in London (UTC)."""
    sydney = replace(SETTINGS, timezone="Australia/Sydney")
    moment = datetime(2026, 11, 30, 14, 30, tzinfo=ZoneInfo("UTC"))
    assert parse_availability("tomorrow", sydney, moment).earliest == date(2026, 12, 2)
    assert parse_availability("end of the month", sydney, moment).earliest == date(2026, 12, 21)
    with pytest.raises(NoOpenDay) as problem:  # 23:30 on 30 November in Sydney: the month is over
        parse_availability("later this month", sydney, moment.replace(hour=12))
    assert (problem.value.reason, problem.value.details) == ("date_today", {"day": "Monday 30 November"})
    after_midnight = parse_availability("later this month", sydney, moment.replace(hour=13, minute=30))
    assert (after_midnight.earliest, after_midnight.latest) == (date(2026, 12, 2), date(2026, 12, 31))
    london = datetime(2026, 11, 30, 23, 59, tzinfo=ZoneInfo("Europe/London"))
    assert parse_availability("tomorrow", SETTINGS, london).earliest == date(2026, 12, 1)


FLEXIBLE = [
    "whenever",
    "Whenever suits",
    "whenever suits you",
    "whenevr",
    "when ever is good",
    "any day",
    "anyday",
    "any day is fine",
    "I'm flexible",
    "im flexable",
    "I'm easy",
    "doesn't matter",
    "doesnt matter",
    "it does not matter to me",
    "anytime that works for you",
    "any time that suits you",
    "no preference",
    "no pref",
    "no preferance really",
    "not bothered",
    "up to you",
    "you choose",
    "whatever suits you",
    "whatever works for the team",
    "i dont mind when",
    "I don't mind!",
    "don't care tbh",
    "any of them",
    "all days are fine",
]


@pytest.mark.parametrize("typed", FLEXIBLE)
def test_i_dont_mind_when_is_stored_as_flexible_and_read_back_plainly(typed: str) -> None:
    availability = parse_availability(typed, SETTINGS, NOW)
    assert availability.flexible and not availability.exact and not availability.weekdays
    assert (availability.earliest, availability.latest) == (date(2026, 12, 4), None)
    assert availability.describe() == "any day from Friday 4 December 2026"
    assert Availability.from_slot(availability.to_slot()) == availability


@pytest.mark.parametrize("typed", ["asap", "as soon as possible", "first available"])
def test_as_soon_as_possible_still_says_the_sooner_the_better(typed: str) -> None:
    availability = parse_availability(typed, SETTINGS, NOW)
    assert availability.flexible
    assert availability.describe() == "any day - the sooner the better (from Friday 4 December 2026)"


@pytest.mark.parametrize(
    "typed, passed",
    [
        ("last monday", "Monday 30 November"),
        ("Last Monday morning", "Monday 30 November"),
        ("this past friday", "Friday 27 November"),
        ("past wednesday", "Wednesday 2 December"),
        ("last tues", "Tuesday 1 December"),
        ("monday just gone", "Monday 30 November"),
        ("the previous thursday", "Thursday 26 November"),
        ("30 November", "Monday 30 November"),
        ("monday 30th nov", "Monday 30 November"),
        ("30/11", "Monday 30 November"),
        ("yesterday", "Wednesday 2 December"),
        ("last week", "Monday 23 November to Sunday 29 November"),
    ],
)
def test_a_day_that_has_passed_is_refused_naming_it(typed: str, passed: str) -> None:
    with pytest.raises(NoOpenDay) as problem:
        parse_availability(typed, SETTINGS, NOW)
    assert (problem.value.reason, problem.value.details) == ("date_past", {"day": passed})


def test_today_is_refused_as_today() -> None:
    with pytest.raises(NoOpenDay) as problem:
        parse_availability("today", SETTINGS, NOW)
    assert (problem.value.reason, problem.value.details) == ("date_today", {"day": "Thursday 3 December"})
