"""Days in words, as visitors and staff read them: "Monday 14 December 2026", "Tuesdays or Wednesdays".

The booking form reads a request's days back to the visitor with these (actions/booking/), and
the console shows staff the same words (staff/service/bookings.py), so the two never differ.
"""

from __future__ import annotations

from datetime import date

from common.clinic import WEEKDAYS

WORKING_WEEK = WEEKDAYS[:5]


def readable(day: date, year: bool = True) -> str:
    """A day as visitors read it: "Monday 14 December 2026" (or without the year)."""
    return f"{day:%A} {day.day} {day:%B}" + (f" {day.year}" if year else "")


def weekday_phrase(weekdays: tuple[str, ...]) -> str:
    """Weekdays in words: "weekdays", "Tuesdays or Wednesdays", or "" for any day."""
    if not weekdays:
        return ""
    if tuple(weekdays) == WORKING_WEEK:
        return "weekdays"
    if tuple(weekdays) == ("saturday", "sunday"):
        return "weekends"
    indexes = [WEEKDAYS.index(d) for d in weekdays]
    if len(indexes) > 2 and indexes == list(range(indexes[0], indexes[0] + len(indexes))):
        return f"{weekdays[0].capitalize()} to {weekdays[-1].capitalize()}"  # "Monday to Saturday"
    names = [f"{d.capitalize()}s" for d in weekdays]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]
