"""The week's numbers for the Today page: what visitors' messages got, per day.

Computed from the same turns as `make review` (staff/service/review.py), so the console and the
report count alike.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from staff.service import review

# What each visitor message got, in the order the chart stacks them, with staff's words.
CATEGORIES = {
    "answered": "Answered",
    "did_you_mean": '"Did you mean...?"',
    "not_understood": "Not understood",
    "unknown": '"I don\'t have that information"',
}
WEEK = 7


def category(turn: review.Turn) -> str:
    """answered, did_you_mean, not_understood or unknown (no reply counts as not understood)."""
    outcome = turn.outcome
    if outcome == "answered":
        return "answered"
    if outcome == review.UNKNOWN:
        return "unknown"
    return "did_you_mean" if turn.replies & review.DID_YOU_MEAN else "not_understood"


@dataclass
class Day:
    """One day's figures."""

    day: date
    numbers: review.Numbers
    categories: Counter[str]


@dataclass
class Week:
    """Seven days' figures, oldest day first, and the week's totals."""

    days: list[Day]
    total: review.Numbers
    categories: Counter[str]

    @property
    def last(self) -> Day:
        """The week's last day (the day asked for)."""
        return self.days[-1]


def week(url: str, last: date, zone: ZoneInfo) -> Week:
    """The numbers of the seven clinic days ending with `last`."""
    first = last - timedelta(days=WEEK - 1)
    start = datetime.combine(first, time(), zone).timestamp()
    end = datetime.combine(last + timedelta(days=1), time(), zone).timestamp()
    turns = review.read_turns(url, start, end)
    days = []
    for offset in range(WEEK):
        day = first + timedelta(days=offset)
        of_day = [t for t in turns if datetime.fromtimestamp(t.time, zone).date() == day]
        days.append(Day(day, review.Numbers.of(of_day), Counter(category(t) for t in of_day)))
    return Week(days, review.Numbers.of(turns), Counter(category(t) for t in turns))
