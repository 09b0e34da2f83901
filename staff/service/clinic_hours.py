"""The clinic's hours on the Clinic details page: one row per day, checked, written to clinic.yml.

The hours are one setting (clinic.yml's opening_hours, common/clinic.py): the assistant states
them and offers live chat only within them, so staff set both here at once. Each day has an
opening and a closing time (both empty: closed) and whether live chat is offered that day. The
live chat's wait and how many visitors may wait at once are set here too. Every mistake is
refused with a sentence naming the day or field, in staff's words; nothing is written then.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import time
from typing import Any

from ruamel.yaml.comments import CommentedMap

from common.clinic import WEEKDAYS, parse_span, read_week
from staff.service.yamlfile import quoted

TIME = re.compile(r"^(\d{1,2})[:.](\d{2})$")
MAX_WAIT_MINUTES = 60
MAX_WAITING = 100
WAIT_LABEL = "Minutes a visitor waits for someone"
MAX_LABEL = "Visitors who may wait at once"


@dataclass
class DayHours:
    """One day's row of the form: opening and closing time ("" when closed), live chat or not."""

    day: str
    opens: str = ""
    closes: str = ""
    live_chat: bool = True


@dataclass
class HoursChange:
    """What the form's hours part sends: a row per day, the wait and the queue's size, as typed."""

    week: list[DayHours]
    wait_minutes: str
    max_waiting: str


def week_rows(values: dict[str, Any]) -> list[DayHours]:
    """clinic.yml's opening hours as one row per day, Monday first (a closed day's times empty)."""
    try:
        spans, off = read_week(values.get("opening_hours"))
    except ValueError:
        return [DayHours(day) for day in WEEKDAYS]
    found = dict(spans)
    rows = []
    for day in WEEKDAYS:
        if day in found:
            opening, closing = parse_span(found[day])
            rows.append(DayHours(day, f"{opening:%H:%M}", f"{closing:%H:%M}", day not in off))
        else:
            rows.append(DayHours(day))
    return rows


def _time(text: str) -> time | None:
    """A time typed as 9:00, 09:00 or 9.00 (None if it is not one)."""
    match = TIME.match(text.strip())
    if not match or int(match.group(1)) > 23 or int(match.group(2)) > 59:
        return None
    return time(int(match.group(1)), int(match.group(2)))


def check(change: HoursChange) -> tuple[dict[str, str], list[str], float, int, list[str]]:
    """The week as {day: "09:00-17:00"}, the days without live chat, the wait, the queue size, problems."""
    problems: list[str] = []
    spans: dict[str, str] = {}
    off: list[str] = []
    for row in change.week:
        name = row.day.capitalize()
        if not row.opens.strip() and not row.closes.strip():
            continue  # closed
        if not row.opens.strip() or not row.closes.strip():
            problems.append(f"{name}: give both the opening and the closing time, or neither (closed).")
            continue
        opening, closing = _time(row.opens), _time(row.closes)
        if opening is None or closing is None:
            problems.append(f"{name}: write each time as hours and minutes, for example 09:00 or 17:30.")
            continue
        if not opening < closing:
            problems.append(f"{name}: the closing time must be after the opening time.")
            continue
        spans[row.day] = f"{opening:%H:%M}-{closing:%H:%M}"
        if not row.live_chat:
            off.append(row.day)
    if not spans and not problems:
        problems.append("Opening hours: give the hours of at least one day.")
    wait = 0.0
    try:
        wait = float(change.wait_minutes.strip().replace(",", "."))
    except ValueError:
        pass
    if not 0 < wait <= MAX_WAIT_MINUTES:
        problems.append(f"{WAIT_LABEL}: write a number of minutes above 0, at most {MAX_WAIT_MINUTES}.")
    most = int(change.max_waiting.strip()) if change.max_waiting.strip().isdigit() else 0
    if not 1 <= most <= MAX_WAITING:
        problems.append(f"{MAX_LABEL}: write a whole number from 1 to {MAX_WAITING}.")
    return spans, off, wait, most, problems


def _day_value(span: str, live_chat: bool) -> Any:
    """A day as clinic.yml writes it: "09:00-17:00", or {hours: "09:00-17:00", live_chat: false}."""
    if live_chat:
        return quoted(span)
    value = CommentedMap([("hours", quoted(span)), ("live_chat", False)])
    value.fa.set_flow_style()
    return value


def apply(data: CommentedMap, change: HoursChange) -> list[str]:
    """Write the checked hours into clinic.yml's data (its layout and comments kept); what changed.

    Call `check` first: this assumes the change has no problems.
    """
    spans, off, wait, most, _ = check(change)
    changed = []
    if "hours" in data:  # the old free-text hours, now worked out from the days
        del data["hours"]
        changed.append("stated hours")
    old = data.get("opening_hours")
    try:
        before = read_week(old)
    except ValueError:
        before = ((), ())
    after = (tuple((day, spans[day]) for day in WEEKDAYS if day in spans), tuple(off))
    if (before[0], tuple(sorted(before[1]))) != (after[0], tuple(sorted(after[1]))):
        week = old if isinstance(old, CommentedMap) else CommentedMap()
        for day in list(week):
            if day not in spans:
                del week[day]
        for position, day in enumerate(d for d in WEEKDAYS if d in spans):
            value = _day_value(spans[day], day not in off)
            if day in week:
                week[day] = value
            else:
                week.insert(position, day, value)
        data["opening_hours"] = week
        changed.append("opening hours")
    wait_value: float | int = int(wait) if wait == int(wait) else wait
    if data.get("live_chat_wait_minutes") != wait_value:
        data["live_chat_wait_minutes"] = wait_value
        changed.append("live chat wait")
    if data.get("live_chat_max_waiting") != most:
        data["live_chat_max_waiting"] = most
        changed.append("visitors waiting at once")
    return changed
