"""Checks and normalises each answer of the booking form.

Pure functions: each returns the value to store or raises `InvalidAnswer` with a reason
that names a response (`utter_invalid_<reason>`) telling the visitor what was wrong.
The submit action runs them again, so nothing reaches the database unchecked.
"""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta

from actions.booking.availability import (
    MAX_DAYS_AHEAD,
    Availability,
    NoOpenDay,
    NotUnderstood,
    clinic_time,
    parse_availability,
    passed,
    read,
    readable,
    time_phrases,
)
from common.clinic import ClinicSettings
from common.contacts import (  # noqa: F401 - the form's checks, one place to import them from
    InvalidAnswer,
    contact_type,
    normalise_spaces,
    parse_contact,
    phone_needs_checking,
    readable_phone,
)

MAX_NAME_CHARS = 80
MAX_SCAR_CHARS = 200
SKIP_WORDS = {"skip", "no", "none", "nothing", "n/a", "na", "no thanks", "rather not say", "-"}
# What no name contains: a typed payload ("/inform", '{"booking_name": ...}'), markup or
# code characters, or a web address ("https://...", "www.", "evil.example/win").
_NOT_A_NAME = re.compile(r"^/|[{}\[\]<>|\\=`]|://|\bwww\.|(?<![\w.])[\w-]+\.[a-z]{2,}(?=$|[/\s?#])")
_ISO_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")
_TIMES_OF_DAY: dict[str, str] = {
    "morning": "morning",
    "am": "morning",
    "a.m.": "morning",
    "mornings": "morning",
    "early": "morning",
    "afternoon": "afternoon",
    "pm": "afternoon",
    "p.m.": "afternoon",
    "afternoons": "afternoon",
    "after lunch": "afternoon",
    "evening": "evening",
    "evenings": "evening",
    "any": "any time",
    "anytime": "any time",
    "any time": "any time",
    "either": "any time",
    "don't mind": "any time",
    "dont mind": "any time",
    "whenever": "any time",
}
_WEEKDAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]


def parse_name(text: str) -> str:
    """A person's name as typed (any script, apostrophes and hyphens kept).

    Not a name: no letters, digits, "@", more than 8 words or MAX_NAME_CHARS characters, a
    typed payload, markup or code characters, or a web address.
    """
    name = normalise_spaces(text)
    if not name or not any(c.isalpha() for c in name):
        raise InvalidAnswer("name")
    if len(name) > MAX_NAME_CHARS or len(name.split()) > 8 or "@" in name or any(c.isdigit() for c in name):
        raise InvalidAnswer("name")
    if _NOT_A_NAME.search(name):
        raise InvalidAnswer("name")
    return name


def parse_time_of_day(text: str, settings: ClinicSettings) -> str:
    """The time that suits, as the visitor meant it: "morning", "after 2pm", "lunchtime", "any time".

    Any time named must fall in one of the clinic's times of day (clinic.yml times_of_day), or
    InvalidAnswer("time") asks again; an answer that also names days ("weekdays after 2pm") is
    refused here so that the form reads it as days and a time.
    """
    words = normalise_spaces(text).lower().strip(" .!")
    if words in _TIMES_OF_DAY and _TIMES_OF_DAY[words] in (*settings.times_of_day, "any time"):
        return _TIMES_OF_DAY[words]
    refused = InvalidAnswer("time", options=" or ".join(settings.times_of_day))
    times, rest = time_phrases(words)
    if times:
        if rest or any(not set(t.periods()) & set(settings.times_of_day) for t in times):
            raise refused
        return " or ".join(t.label for t in times)
    value = _TIMES_OF_DAY.get(words) or next(
        (v for k, v in _TIMES_OF_DAY.items() if re.search(rf"\b{re.escape(k)}\b", words)), None
    )
    if value is None or (value != "any time" and value not in settings.times_of_day):
        raise refused
    return value


def check_day(day: date, settings: ClinicSettings, now: datetime) -> date:
    """The day, if it can be booked: after today, within MAX_DAYS_AHEAD, the clinic open."""
    today = clinic_time(now, settings).date()
    try:
        passed(day, day, today)
    except NoOpenDay as problem:  # "Monday 30 November has passed": named, asked again
        raise InvalidAnswer(problem.reason, **problem.details) from problem
    if day > today + timedelta(days=MAX_DAYS_AHEAD):
        raise InvalidAnswer("date_far")
    if not settings.is_open(day):
        raise InvalidAnswer("date_closed", day=readable(day, year=False))
    return day


def reads_as_days(text: str, settings: ClinicSettings, now: datetime) -> bool:
    """Whether an answer names days or says any day suits ("not bothered"), rather than a bare yes or no."""
    try:
        reading = read(text, settings, clinic_time(now, settings))
    except NotUnderstood:
        return False
    return reading.earliest is not None or reading.flexible or bool(reading.weekdays)


def parse_date(text: str, settings: ClinicSettings, now: datetime) -> Availability:
    """When the visitor is free (actions/booking/availability.py), or InvalidAnswer saying why not.

    An ISO date (2026-12-08, as the form stores the day and re-checks it when it starts
    again) is that day, whatever the clinic's date order: never "12 August".
    """
    if _ISO_DAY.fullmatch(text.strip()):
        try:
            day = date.fromisoformat(text.strip())
        except ValueError as error:  # e.g. 2026-13-45
            raise InvalidAnswer("date") from error
        return Availability(readable(check_day(day, settings, now)), day, exact=True)
    try:
        availability = parse_availability(text, settings, now)
    except NotUnderstood as error:
        raise InvalidAnswer("date") from error
    except NoOpenDay as problem:
        raise InvalidAnswer(problem.reason, **problem.details) from problem
    return availability


MAX_QUESTION_CHARS = 1000


def parse_question(text: str) -> str:
    """The visitor's message to the team: some words, at most MAX_QUESTION_CHARS characters."""
    question = normalise_spaces(text)
    if len(question) < 2 or len(question) > MAX_QUESTION_CHARS or question.startswith("/"):
        raise InvalidAnswer("question")
    return question


def parse_scar(text: str) -> str:
    """Optional short free text; "skip" (and the like) means nothing to add."""
    scar = normalise_spaces(text)
    if scar.lower().strip(".! ") in SKIP_WORDS:
        return ""
    if len(scar) > MAX_SCAR_CHARS:
        raise InvalidAnswer("scar")
    return scar
