"""When a visitor is free for the team's call back, from what they actually say.

A consultation request is a call back: the team arranges the time, so the form asks which days
suit and keeps the visitor's own words plus a structured preference the team can act on:
the earliest day, the last day of a range (or none: open-ended), the weekdays that suit, the
time of day, and whether the visitor is flexible.

Days and dates ("14 December", "12/14/2026", "the 15th", "next Tuesday", "in 2 weeks time") are
recognised by dateparser's `search_dates` (a kept library, already a dependency; the comparison
with Recognizers-Text, ctparse, parsedatetime and timefhuman is in reports/date-parsers.md).
What no candidate resolved is read here, from a small vocabulary: flexibility ("asap",
"I'm flexible", "whenever suits", "no preference"), weekdays ("weekdays", "Tuesday or
Wednesday"), periods ("next week", "early January", "this weekend"), periods relative to a
month ("the end of the month", "early next month", "the first week of January", "mid-month",
"later this month"), relative days ("a week on Monday", "Monday week", "friday after next",
"in a fortnight": about then, so from the next open day when that day is closed), days gone
("last Monday", "this past Friday": refused, naming the day), bounds ("after Christmas",
"from the 10th", "between the 8th and the 12th") and times ("after 2pm", "mornings").
Days are the clinic's, in its time zone.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import asdict, dataclass, field, replace
from datetime import date, datetime, timedelta
from typing import Any

from dateparser.search import search_dates

from common.clinic import WEEKDAYS, ClinicSettings
from common.days import WORKING_WEEK, readable, weekday_phrase

MAX_DAYS_AHEAD = 180

_SHORT_DAYS = {
    "mon": "monday",
    "tue": "tuesday",
    "tues": "tuesday",
    "wed": "wednesday",
    "weds": "wednesday",
    "thu": "thursday",
    "thur": "thursday",
    "thurs": "thursday",
    "fri": "friday",
    "sat": "saturday",
    "sun": "sunday",
}
_DAY = r"(monday|tuesday|wednesday|thursday|friday|saturday|sunday)"
_MONTHS = {name.lower(): number for number, name in enumerate(calendar.month_name) if name}
_MONTHS.update({name.lower(): number for number, name in enumerate(calendar.month_abbr) if name})
_MONTHS["sept"] = 9
_MONTH = r"(" + "|".join(sorted(_MONTHS, key=len, reverse=True)) + r")\.?"
_HOLIDAYS = {  # (month, day) of the days visitors plan around
    "christmas eve": (12, 24),
    "christmas day": (12, 25),
    "christmas": (12, 25),
    "xmas": (12, 25),
    "boxing day": (12, 26),
    "new year's eve": (12, 31),
    "new years eve": (12, 31),
    "new year's day": (1, 1),
    "new years day": (1, 1),
    "new year's": (1, 1),
    "new years": (1, 1),
    "new year": (1, 1),
}
_HOLIDAY = r"(" + "|".join(re.escape(h) for h in sorted(_HOLIDAYS, key=len, reverse=True)) + r")"
# "As soon as possible": any day, the sooner the better (read back so).
_ASAP = re.compile(
    r"\b(asap|a\.s\.a\.p|as soon as (?:possible|you can|poss)|soonest|earliest|first available"
    r"|next available)\b",
    re.IGNORECASE,
)
_BY_YOU = (
    r"(?: (?:works?|suits?|is (?:good|best|fine|easiest|ok(?:ay)?))(?: for)?(?: you| the team| them| u)?)?"
)
# "I don't mind when": any open day, stored as flexible and read back as "any day from ...".
_ANY_DAY = re.compile(
    r"\b(whenever"
    + _BY_YOU
    + r"|any ?(?:day|time|date)s?(?: (?:that|which))?"
    + _BY_YOU
    + r"|whatever"
    + _BY_YOU
    + r"|flexible|(?:don'?t|do not) (?:mind|care)(?: when| which day| what day)?"
    r"|(?:doesn'?t|does not|don'?t|won'?t) matter|not bothered|no preferences?|not fussy|i'?m easy"
    r"|(?:it'?s )?up to (?:you|u|the team|them)|(?:you|u) (?:choose|pick|decide)|your (?:choice|call)"
    r"|any of (?:them|those|these|the days)|all (?:days|dates|of them)(?: are| is)? (?:fine|good|ok(?:ay)?)"
    r"|anything|either)\b",
    re.IGNORECASE,
)
_FLEXIBLE = re.compile(f"{_ASAP.pattern}|{_ANY_DAY.pattern}", re.IGNORECASE)
_FILLER = re.compile(
    r"\b(i'?m|i am|i'?d|i would|prefer(?:ably)?|ideally|please|thanks|thank you|would be|would suit"
    r"|suits?|good|great|best|free|available|works?|for me|fine|ok(?:ay)?|probably|maybe|possibly"
    r"|sometime|some time|any|on|a|an|at|or so|really|either|if possible|i may|may be|might be|could be"
    r"|can do|be|or|and|then|but|also|just|only|is|are|of them|i|you|me|to me|it|that|tbh|pls|plz|at all"
    r"|honestly|to be honest|totally|towards?|around|about|during)\b",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Availability:
    """When a visitor can be called: their words and the structured preference.

    With alternatives ("weekdays next week after 2pm, or Saturday morning") each is kept in
    `alternatives` with its own days and time, and the fields above span them all: the
    earliest first day, the last day (None if one is open-ended), every weekday and time named.
    """

    words: str
    earliest: date
    latest: date | None = None  # last day of a range; None: open-ended (or one exact day)
    weekdays: tuple[str, ...] = ()  # only these days of the week; empty: any open day
    time_of_day: str | None = None  # as the visitor meant it: "morning", "after 2pm", "lunchtime"
    flexible: bool = False  # "asap", "any day", "I'm flexible"
    exact: bool = False  # one exact day ("14 December")
    alternatives: tuple[Availability, ...] = ()  # two or more, each with its own days and time

    def to_slot(self) -> dict[str, Any]:
        """The preference as JSON for a slot (dates as ISO strings)."""
        values = {key: value for key, value in asdict(self).items() if key != "alternatives"}
        values["earliest"] = self.earliest.isoformat()
        values["latest"] = self.latest.isoformat() if self.latest else None
        values["weekdays"] = list(self.weekdays)
        values["alternatives"] = [one.to_slot() for one in self.alternatives]
        return values

    @classmethod
    def from_slot(cls, values: dict[str, Any]) -> Availability:
        """The preference back from its slot value (raises on anything malformed)."""
        return cls(
            words=str(values["words"]),
            earliest=date.fromisoformat(values["earliest"]),
            latest=date.fromisoformat(values["latest"]) if values.get("latest") else None,
            weekdays=tuple(str(d) for d in values.get("weekdays") or ()),
            time_of_day=values.get("time_of_day") or None,
            flexible=bool(values.get("flexible")),
            exact=bool(values.get("exact")),
            alternatives=tuple(cls.from_slot(one) for one in values.get("alternatives") or ()),
        )

    def refined_by(self, later: Availability) -> Availability:
        """This preference narrowed by what the visitor added at the time question.

        "in a fortnight", then "weekdays after 2pm": from the fortnight on, weekdays, after 2pm.
        A time alone keeps the days as they were; the words keep both answers.
        """
        words = f"{self.words}, {later.words}"
        if not later.weekdays or self.alternatives or later.alternatives:
            return replace(self, words=words, time_of_day=later.time_of_day)
        return replace(  # "in a fortnight" + "weekdays": weekdays from that day on
            self,
            words=words,
            earliest=max(self.earliest, later.earliest),
            weekdays=later.weekdays,
            time_of_day=later.time_of_day,
            flexible=False,
            exact=False,
        )

    def describe(self) -> str:
        """The days read back in plain words, e.g. "weekdays from Friday 4 December 2026".

        Alternatives are read back each with its own time: "weekdays between Monday 7 and
        Friday 11 December 2026, after 2pm; or Saturday 12 December 2026, morning".
        """
        if self.alternatives:
            return "; or ".join(one.understood() for one in self.alternatives)
        if self.exact:
            return readable(self.earliest)
        days = weekday_phrase(self.weekdays)
        if self.latest is not None:
            span = f"between {readable(self.earliest, year=False)} and {readable(self.latest)}"
            return f"{days} {span}" if days else span
        if self.flexible and not days and self.soonest:
            return f"any day - the sooner the better (from {readable(self.earliest)})"
        return f"{days or 'any day'} from {readable(self.earliest)}"

    @property
    def soonest(self) -> bool:
        """Whether the visitor asked for the soonest day ("asap"), not just any day ("whenever")."""
        return bool(_ASAP.search(_normalise(self.words)))

    def understood(self) -> str:
        """Everything understood, days and times: what staff read beside the visitor's words."""
        if self.alternatives or not self.time_of_day:
            return self.describe()
        return f"{self.describe()}, {self.time_of_day}"


@dataclass
class _Reading:
    """What has been understood of an answer so far."""

    earliest: date | None = None
    latest: date | None = None
    weekdays: tuple[str, ...] = ()
    times: list[TimeOfDay] = field(default_factory=list)
    flexible: bool = False
    exact: bool = False
    counted: bool = False  # a day counted in weeks ("in a fortnight"): about then, not that very day
    notes: list[str] = field(default_factory=list)

    @property
    def time_of_day(self) -> str | None:
        """The times named, as meant ("after 2pm", "morning or lunchtime"), or None."""
        return " or ".join(t.label for t in self.times) or None


class NotUnderstood(ValueError):
    """The answer names no day, period, weekday or flexibility that could be read."""


class NoOpenDay(ValueError):
    """The answer is understood, but the clinic is not open then; `reason` says why."""

    def __init__(self, reason: str, **details: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.details = details


def next_weekday(after: date, weekday: str) -> date:
    """The first `weekday` strictly after `after`."""
    days = (WEEKDAYS.index(weekday) - after.weekday() - 1) % 7 + 1
    return after + timedelta(days=days)


# Common misspellings and short forms of the words the vocabulary reads, and other ways of
# saying the same period ("mid-month": the middle of the month).
_TYPOS: list[tuple[str, str]] = [
    (r"\bteh\b", "the"),
    (r"\b(?:mnth|monht|mounth|mont|mth)\b", "month"),
    (r"\bbegin+ing\b", "beginning"),
    (r"\bnxt\b", "next"),
    (r"\bwhen ?(?:ever|evr|ver|evar)\b", "whenever"),
    (r"\bflex(?:able|ibel|ibile|i)\b", "flexible"),
    (r"\bpref(?:erance|rence|ernce|erence|s)?\b", "preference"),
    (r"\b(?:doesnt|dosent|dosnt|doesn't)\b", "doesn't"),
    (r"\bdont\b", "don't"),
    (r"\bim\b", "i'm"),
    (r"\bend of month\b|\bmonth ?-?end\b", "end of the month"),
    (r"\bmid ?-?(this|next|the) month\b", r"middle of \1 month"),
    (r"\bmid ?-?month\b", "middle of the month"),
    (r"\b(any ?(?:time|day)|whenever|anything|sometime) past\b", r"\1 after"),  # not a day gone
]


def _normalise(text: str) -> str:
    text = " ".join(str(text).lower().replace("’", "'").split())
    text = re.sub(r"\b(" + "|".join(_SHORT_DAYS) + r")\b\.?", lambda m: _SHORT_DAYS[m.group(1)], text)
    text = re.sub(r"\bfortnight'?s?\b", "2 weeks", text)
    text = re.sub(r"\b(\d+) ?weeks?'? ?time\b", r"\1 weeks", text)
    text = re.sub(r"\b(?:a|one) weeks?'? ?time\b", "1 weeks", text)
    for typed, meant in _TYPOS:
        text = re.sub(typed, meant, text)
    return text


# The parts of the day the clinic's times (clinic.yml times_of_day) are named by, in hours.
_PERIODS = {"morning": (0, 12), "afternoon": (12, 17), "evening": (17, 24)}
_CLOCK = r"(\d{1,2})(?:[:.](\d\d))?(?: ?(a\.?m\.?|p\.?m\.?|o'?clock))?"
_NOT_A_DATE = (
    r"(?! ?(?:st|nd|rd|th)\b)(?! ?[/-]\d)(?!\d)(?! (?:of )?" + _MONTH + r")"
    r"(?! (?:weeks?|days?|months?|years?|hours?|mins?|minutes?)\b)"
)
# Named times: the pattern, the time as staff read it (None: the words as typed), its hours.
_NAMED_TIMES: list[tuple[str, str | None, tuple[int, int]]] = [
    (r"\b(?:first thing|early (?:in the )?mornings?|early on)\b", None, (0, 10)),
    (r"\bbefore (?:work|school|the school run)\b", None, (0, 9)),
    (r"\bbefore (?:lunch|noon|midday)\b", "morning", (0, 12)),
    (r"\b(?:late (?:in the )?mornings?)\b", None, (10, 12)),
    (r"\b(?:in the |on |this |during the )?mornings?\b", "morning", (0, 12)),
    (r"\bafter (?:lunch|noon|midday)\b", "afternoon", (12, 17)),
    (
        r"\b(?:at |over |during |around )?lunch ?(?:time|hour|break)?s?\b"
        r"|\b(?:around |at )?(?:noon|midday)\b",
        "lunchtime",
        (12, 14),
    ),
    (r"\bearly (?:in the )?afternoons?\b", None, (12, 15)),
    (r"\blate (?:in the )?afternoons?\b", None, (15, 17)),
    (r"\b(?:in the |on |this |during the )?afternoons?\b", "afternoon", (12, 17)),
    (r"\bafter (?:school|the school run)\b", None, (15, 24)),
    (r"\bafter work\b", None, (17, 24)),
    (r"\b(?:end of the (?:working )?day)\b", None, (15, 17)),
    (r"\b(?:in the |on |this )?evenings?\b|\btonight\b", "evening", (17, 24)),
]


@dataclass(frozen=True)
class TimeOfDay:
    """A time the visitor named, as they meant it ("after 2pm"), and the hours it covers."""

    label: str
    start: int  # first hour (0-23)
    end: int  # hour it ends (1-24)

    def periods(self) -> tuple[str, ...]:
        """The parts of the day ("morning", "afternoon", "evening") these hours reach into."""
        return tuple(
            name for name, (first, last) in _PERIODS.items() if self.start < last and first < self.end
        )


def _hour(number: str, minutes: str | None, suffix: str | None) -> tuple[int, str] | None:
    """A clock time as a 24-hour hour and as people write it ("2pm", "10:30am"); None if no time."""
    hour = int(number)
    if hour > 23 or (minutes and int(minutes) > 59):
        return None
    suffix = (suffix or "").replace(".", "")
    if suffix == "pm" and hour < 12:
        hour += 12
    elif suffix == "am" and hour == 12:
        hour = 0
    elif not suffix.endswith("m") and 1 <= hour <= 6:  # "after 5", "at 3 o'clock": the afternoon
        hour += 12
    shown = hour % 12 or 12
    written = f"{shown}{':' + minutes if minutes and minutes != '00' else ''}{'am' if hour < 12 else 'pm'}"
    return hour, "noon" if hour == 12 and not minutes else written


def _take_clock_times(text: str, found: list[tuple[int, TimeOfDay]]) -> str:
    """Clock times: "after 2pm", "before 11", "between 2 and 4pm", "around 3", "10am"."""
    between = re.compile(r"\bbetween " + _CLOCK + r" ?(?:and|-|to) ?" + _CLOCK + _NOT_A_DATE)
    for match in list(between.finditer(text)):
        if not (match.group(3) or match.group(6)):
            continue  # "between the 8th and the 12th" / "between 8 and 12": days, not hours
        second = _hour(match.group(4), match.group(5), match.group(6))
        first = _hour(match.group(1), match.group(2), match.group(3) or match.group(6))
        if first and second and first[0] < second[0]:
            label = f"between {first[1]} and {second[1]}"
            found.append((match.start(), TimeOfDay(label, first[0], second[0])))
            text = text.replace(match.group(0), " " * len(match.group(0)), 1)
    bounded = re.compile(
        r"\b(after|from|any ?time after|not before|before|by|until|till|no later than|around|about|at|for)"
        r" " + _CLOCK + _NOT_A_DATE
    )
    for match in list(bounded.finditer(text)):
        word, suffix = match.group(1), match.group(4)
        if word in {"at", "for", "by", "from", "until", "till"} and not suffix:
            continue  # "at 3" may be a day; only "at 3pm" is a time for these
        hour = _hour(match.group(2), match.group(3), suffix)
        if hour is None or (word in {"after", "before"} and not suffix and int(match.group(2)) > 12):
            continue
        if word in {"after", "from", "any time after", "anytime after", "not before"}:
            time_of_day = TimeOfDay(f"{'from' if word == 'from' else 'after'} {hour[1]}", hour[0], 24)
        elif word in {"before", "by", "until", "till", "no later than"}:
            said = word if word in {"by", "until", "till"} else "before"
            time_of_day = TimeOfDay(f"{said} {hour[1]}", 0, max(hour[0], 1))
        else:
            time_of_day = TimeOfDay(f"{'at' if word == 'at' else 'around'} {hour[1]}", hour[0], hour[0] + 1)
        found.append((match.start(), time_of_day))
        text = text.replace(match.group(0), " " * len(match.group(0)), 1)
    for match in list(re.finditer(r"\b(\d{1,2})(?:[:.](\d\d))? ?(am|a\.m\.|pm|p\.m\.)(?=\W|$)", text)):
        hour = _hour(match.group(1), match.group(2), match.group(3))  # a bare "2pm", "10:30am"
        if hour:
            found.append((match.start(), TimeOfDay(hour[1], hour[0], hour[0] + 1)))
            text = text.replace(match.group(0), " " * len(match.group(0)), 1)
    return text


def _take_time_of_day(text: str, reading: _Reading) -> str:
    """Read and remove every time of day ("afternoon", "after 2pm", "lunchtime", "before work").

    Each is kept as the visitor meant it, in the order said: never replaced by another.
    """
    found: list[tuple[int, TimeOfDay]] = []
    text = _take_clock_times(text, found)
    for pattern, label, (start, end) in _NAMED_TIMES:
        for match in list(re.finditer(pattern, text)):
            words = re.sub(
                r"^(?:in the|on|this|during the|at|over|during|around) ", "", match.group(0).strip()
            )
            found.append((match.start(), TimeOfDay(label or words, start, end)))
            text = text.replace(match.group(0), " " * len(match.group(0)), 1)
    seen: list[TimeOfDay] = []
    for _, time_of_day in sorted(found, key=lambda item: item[0]):
        if time_of_day.label not in {t.label for t in seen}:
            seen.append(time_of_day)
    reading.times = [*reading.times, *seen]
    return text


def _take_weekdays(text: str, reading: _Reading, today: date) -> str:
    """Read weekday patterns: "weekdays", "any weekday", "weekends", "Tuesdays", "Tue or Wed"."""
    if re.search(r"\b(?:week ?days?|during the week|mon(?:day)? ?(?:-|to|through) ?fri(?:day)?)\b", text):
        reading.weekdays = WORKING_WEEK
        return re.sub(
            r"\b(?:any )?(?:week ?days?|during the week)\b|\bmonday ?(?:-|to|through) ?friday\b", " ", text
        )
    if re.search(r"\b(?:any |at )?weekends\b", text):
        reading.weekdays = ("saturday", "sunday")
        return re.sub(r"\b(?:any |at )?weekends\b", " ", text)
    plural = re.findall(_DAY + r"s\b", text)
    named = re.findall(_DAY + r"\b", text)
    relative = re.search(r"\b(next|this|coming|a week on|after next|week)\b", text)
    several = len(set(named)) > 1 and re.search(r"\b(or|and|/|,)\b|[/,]", text)
    if plural or (several and not relative and not re.search(r"\d", text)):
        days = sorted(set(plural + named), key=WEEKDAYS.index)
        reading.weekdays = tuple(days)
        return re.sub(_DAY + r"s?\b", " ", text)
    return text


def _month_range(month: int, today: date, part: str | None) -> tuple[date, date]:
    """The next `month` from today (this year's if not over), or its early/mid/late part."""
    year = today.year if month >= today.month else today.year + 1
    return _month_days(date(year, month, 1), part, today)


def _holiday(name: str, today: date) -> date:
    month, day = _HOLIDAYS[name]
    candidate = date(today.year, month, day)
    return candidate if candidate >= today else date(today.year + 1, month, day)


_ORDINALS = {"first": 1, "1st": 1, "second": 2, "2nd": 2, "third": 3, "3rd": 3, "fourth": 4, "4th": 4}
_ORDINAL = r"(first|1st|second|2nd|third|3rd|fourth|4th|last|final)"
# Which month: "the month" (this one, or the next once its part has passed), "this month",
# "next month", or a month's name.
_WHICH_MONTH = r"(?:(the|this|next) month|" + _MONTH + r")"
# "the end of", "the second half of", "the last day of": parts of a month named with "of".
_PART_OF = (
    r"(?:the )?(?:beginning|start|middle|end|(?:first|second|latter|last|back) (?:half|part)"
    r"|(?:first|last) day) of"
)
# A day of a month by its number: "the 10th of the month", "on the 21st of this month", "15th next month".
_DAY_OF_MONTH = re.compile(
    r"\b(?:the )?(\d{1,2})(?:st|nd|rd|th)? (?:of |in )?(?:the )?(this|next|the) month\b"
)
# Words that exclude a day ("not Monday", "any day except Friday"): never read as that day.
_EXCLUDING = re.compile(r"\b(?:not|except|excluding|apart from|other than|can'?t|cannot|can not)\b")
# A part of a month: "early", "the end of", "later in", "by the end of"...
_MONTH_PART = re.compile(
    r"\b(?:(by|before|until|till|no later than) )?(?:(?:sometime|some time|any ?time|at|in|around|about"
    r"|towards?|during|for) )*(?:the )?(early|late|later|later on|the rest of|rest of|" + _PART_OF + r")?"
    r" ?(?:in |on |of )?(?:the )?(?:(this|next|the) month)\b"
)


def _month_of(which: str | None, name: str | None, today: date, step: int = 0) -> date:
    """The first day of the month meant: `which` "this"/"the"/"next" month, or a month's `name`."""
    if name:
        number = _MONTHS[name.rstrip(".")]
        return date(today.year if number >= today.month else today.year + 1, number, 1)
    months = today.year * 12 + today.month - 1 + (1 if which == "next" else 0) + step
    return date(months // 12, months % 12 + 1, 1)


def _month_days(first: date, part: str | None, today: date) -> tuple[date, date]:
    """The days of the month starting `first` that `part` means ("early": 1-10, "mid": 11-20...)."""
    last = first.replace(day=calendar.monthrange(first.year, first.month)[1])
    part = re.sub(r"^the ", "", part or "")
    if part in {"early", "beginning of", "start of"}:
        return first, first.replace(day=10)
    if part in {"mid", "mid-", "middle of"}:
        return first.replace(day=11), first.replace(day=20)
    if part in {"first half of", "first part of"}:
        return first, first.replace(day=15)
    if re.fullmatch(r"(?:second|latter|last|back) (?:half|part) of", part):
        return first.replace(day=16), last
    if part in {"first day of", "last day of"}:
        return (first, first) if part.startswith("first") else (last, last)
    if part in {"late", "end of"}:
        return first.replace(day=21), last
    if part in {"later", "later on", "rest of", "by"}:  # from today to the month's end
        return max(first, today), last
    return first, last


def _take_month_period(text: str, reading: _Reading, today: date) -> str:
    """Periods relative to a month: "end of the month", "the first week of January", "mid next month".

    "The month" is this one; once the part meant has passed ("mid-month" on the 28th), the
    next month's. "This month" is always this one, so a part of it that is over is refused.
    """
    numbered = _DAY_OF_MONTH.search(text)
    if numbered:  # "the 10th of the month", "15th next month": that one day
        number, which = int(numbered.group(1)), numbered.group(2)
        for step in (0, 1):
            first = _month_of(which, None, today, step)
            if not 1 <= number <= calendar.monthrange(first.year, first.month)[1]:
                raise NotUnderstood(text)
            if which != "the" or first.replace(day=number) > today:
                break
        reading.earliest, reading.exact = first.replace(day=number), True
        return text.replace(numbered.group(0), " ")
    ordinal_day = re.search(
        r"\b(?:the )?" + _ORDINAL + " " + _DAY + r" (?:of|in) (?:the )?" + _WHICH_MONTH, text
    )
    if ordinal_day:
        first = _month_of(ordinal_day.group(3), ordinal_day.group(4), today)
        days = [
            first + timedelta(days=n)
            for n in range(calendar.monthrange(first.year, first.month)[1])
            if WEEKDAYS[(first + timedelta(days=n)).weekday()] == ordinal_day.group(2)
        ]
        count = _ORDINALS.get(ordinal_day.group(1))
        reading.earliest, reading.exact = (days[count - 1] if count else days[-1]), True
        return text.replace(ordinal_day.group(0), " ")
    week = re.search(r"\b(?:the )?" + _ORDINAL + r" week (?:of|in) (?:the )?" + _WHICH_MONTH, text)
    if week:
        which, name = week.group(2), week.group(3)
        for step in (0, 1):
            first = _month_of(which, name, today, step)
            last = first.replace(day=calendar.monthrange(first.year, first.month)[1])
            count = _ORDINALS.get(week.group(1))
            start = first + timedelta(weeks=count - 1) if count else last - timedelta(days=6)
            end = start + timedelta(days=6)
            if which != "the" or end > today:
                break
        reading.earliest, reading.latest = start, end
        return text.replace(week.group(0), " ")
    part = _MONTH_PART.search(text)
    if part:
        bound, which = part.group(1), part.group(3)
        said = "by" if bound and (part.group(2) or "").endswith("end of") else part.group(2)
        for step in (0, 1):
            start, end = _month_days(_month_of(which, None, today, step), said, today)
            if which != "the" or end > today:
                break
        if (said or "").endswith("day of"):  # "the last day of the month": that one day
            reading.earliest, reading.exact = start, True
        else:
            reading.earliest, reading.latest = start, end
        return text.replace(part.group(0), " ")
    return text


def _take_period(text: str, reading: _Reading, today: date) -> str:
    """Read periods and relative days no library resolved: weeks, months, holidays, "Monday week"."""
    monday = today - timedelta(days=today.weekday())
    before = text
    text = _take_month_period(text, reading, today)
    if text != before:
        return text
    gone = (
        re.search(  # not "last Friday of the month", nor "any time past Friday" (after it)
            r"\b(?:last|this past|previous|preceding) " + _DAY + r"\b(?! (?:of|in)\b)"
            r"|\b" + _DAY + r" (?:just gone|just passed|gone|that (?:has )?(?:just )?(?:gone|passed))\b",
            text,
        )
        or re.match(r"\s*(?:on )?(?:the )?past " + _DAY + r"\b", text)
    )
    if gone:  # "last Monday", "this past Friday": a day that has passed (refused, naming it)
        weekday = gone.group(1) or gone.group(2)
        reading.earliest = next_weekday(today - timedelta(days=8), weekday)
        reading.exact = True
        return text.replace(gone.group(0), " ")
    weeks = [
        (r"\b(?:the )?week after next\b", monday + timedelta(weeks=2), 7),
        (r"\bnext week\b(?!end)", monday + timedelta(weeks=1), 7),
        (r"\blast week\b", monday - timedelta(weeks=1), 7),
        (
            r"\bthis week\b|\bthe rest of (?:this|the) week\b|\blater this week\b",
            today + timedelta(days=1),
            None,
        ),
    ]
    for pattern, start, length in weeks:
        if re.search(pattern, text):
            reading.earliest = start
            reading.latest = (start + timedelta(days=length - 1)) if length else monday + timedelta(days=6)
            return re.sub(pattern, " ", text)
    weekend = re.search(r"\b(this|next|the)? ?weekend\b", text)
    if weekend:
        saturday = next_weekday(today - timedelta(days=1), "saturday")
        if weekend.group(1) == "next":
            saturday += timedelta(weeks=1)
        reading.earliest, reading.latest = saturday, saturday + timedelta(days=1)
        return text.replace(weekend.group(0), " ")
    month = re.search(
        r"\b(early|late|mid-?|" + _PART_OF + r")? ?(?:in )?" + _MONTH + r"(?! ?\d)\b",
        text,
    )
    if month and month.group(2) == "may" and not month.group(1) and "in may" not in text:
        month = None  # "I may be free": the verb, not the month
    if month and not re.search(r"\d+(?:st|nd|rd|th)? (?:of )?" + _MONTH, text):
        reading.earliest, reading.latest = _month_range(_MONTHS[month.group(2)], today, month.group(1))
        return text.replace(month.group(0), " ")
    for pattern in (r"\ba week on " + _DAY, _DAY + r" week\b", _DAY + r" after next\b"):
        found = re.search(pattern, text)
        if found:
            reading.earliest = next_weekday(today, found.group(1)) + timedelta(weeks=1)
            reading.exact = True
            return text.replace(found.group(0), " ")
    found = re.search(r"\b(?:next|this coming|this|coming|on) " + _DAY, text)
    if found:
        reading.earliest = next_weekday(today, found.group(1))
        reading.exact = True
        return text.replace(found.group(0), " ")
    return text


def _find_day(text: str, settings: ClinicSettings, now: datetime) -> date | None:
    """One day named in `text` (a date, weekday, holiday or relative day), by dateparser."""
    holiday = re.search(_HOLIDAY, text)
    if holiday:
        return _holiday(holiday.group(1), now.date())
    only_day = re.fullmatch(r"\s*" + _DAY + r"\s*", text)
    if only_day:
        return next_weekday(now.date(), only_day.group(1))
    if not re.search(r"[a-z0-9]", text):
        return None
    base = now.replace(tzinfo=None)
    orders = [settings.date_order, *(o for o in ("DMY", "MDY") if o != settings.date_order)]
    for order in orders:  # the clinic's order first; 12/14/2026 only reads one way
        found = search_dates(
            text,
            languages=["en"],
            settings={"PREFER_DATES_FROM": "future", "DATE_ORDER": order, "RELATIVE_BASE": base},
        )
        if found:
            return found[0][1].date()
    return None


def _take_bounds(text: str, reading: _Reading, settings: ClinicSettings, now: datetime) -> str:
    """Bounds: "after X", "from X (onwards)", "before X", "between X and Y", "X to Y"."""
    between = re.search(r"\b(?:between|from)\s+(.+?)\s+(?:and|to|until|till|-)\s+(.+)$", text) or re.search(
        r"^(.+?)\s+(?:to|until|till|-)\s+(.+)$", text
    )
    if between:
        first = _find_day(between.group(1), settings, now)
        last = _find_day(between.group(2), settings, now)
        if first and last and last >= first:
            reading.earliest, reading.latest = first, last
            return text.replace(between.group(0), " ")
    after = re.search(r"\b(after|from|any ?time after|not before|starting)\s+(.+?)(?:\s+onwards?)?$", text)
    if after:
        day = _find_day(after.group(2), settings, now)
        if day:
            reading.earliest = day + timedelta(days=1) if "after" in after.group(1) else day
            return text.replace(after.group(0), " ")
    onwards = re.search(r"^(.+?)\s+(?:onwards?|or later|and after)$", text)
    if onwards:
        day = _find_day(onwards.group(1), settings, now)
        if day:
            reading.earliest = day
            return text.replace(onwards.group(0), " ")
    before = re.search(r"\b(before|by|no later than|until|till)\s+(.+)$", text)
    if before:
        day = _find_day(before.group(2), settings, now)
        if day:
            last = day - timedelta(days=1) if before.group(1) == "before" else day
            reading.earliest, reading.latest = now.date() + timedelta(days=1), last
            return text.replace(before.group(0), " ")
    return text


# All a day is named by, when counted in weeks: "in a fortnight" (read as "in 2 weeks"), "in a week".
_COUNTED_WEEKS = re.compile(r"(?:in|after)\s+(?:(?:an?|one|two|three|four|five|six|\d+)\s+)?weeks?")


def read(text: str, settings: ClinicSettings, now: datetime) -> _Reading:
    """Understand an answer without judging it against the clinic's days (NotUnderstood if nothing)."""
    today = now.date()
    reading = _Reading()
    rest = _normalise(text)
    rest = _take_time_of_day(rest, reading)
    if _FLEXIBLE.search(rest):
        reading.flexible = True
        rest = _FLEXIBLE.sub(" ", rest)
    if _EXCLUDING.search(rest):  # the visitor names what does not suit: asked again, never booked
        raise NotUnderstood(text)
    rest = _take_weekdays(rest, reading, today)
    rest = _take_period(rest, reading, today)
    if reading.earliest is None:
        rest = _take_bounds(rest, reading, settings, now)
    holiday = re.search(_HOLIDAY, rest) if reading.earliest is None else None
    if holiday:
        reading.earliest, reading.exact = _holiday(holiday.group(1), today), True
    if reading.earliest is None:
        leftover = _FILLER.sub(" ", re.sub(r"[^\w'/.-]+", " ", rest)).strip(" .,-")
        if leftover:
            day = _find_day(leftover, settings, now)
            if day is None:
                raise NotUnderstood(text)
            reading.earliest, reading.exact = day, True
            reading.counted = bool(_COUNTED_WEEKS.fullmatch(" ".join(leftover.split())))
    if reading.earliest is None and not (reading.flexible or reading.weekdays or reading.time_of_day):
        raise NotUnderstood(text)
    return reading


def passed(first: date, last: date, today: date) -> None:
    """Refuse days that are over, naming them: NoOpenDay "date_past" or, for today, "date_today"."""
    if last == today:
        raise NoOpenDay("date_today", day=readable(today, year=False))
    if last < today:
        days = (
            readable(first, year=False)
            if first == last
            else f"{readable(first, year=False)} to {readable(last, year=False)}"
        )
        raise NoOpenDay("date_past", day=days)


def _passed_this_year(day: date, today: date) -> date | None:
    """The same day a year earlier if it passed within MAX_DAYS_AHEAD days ("30 November" on 3 December)."""
    try:
        earlier = day.replace(year=day.year - 1)
    except ValueError:  # 29 February
        return None
    return earlier if today - timedelta(days=MAX_DAYS_AHEAD) <= earlier < today else None


def clinic_time(now: datetime, settings: ClinicSettings) -> datetime:
    """The moment at the clinic: days ("tomorrow", "the end of the month") are the clinic's days."""
    return now.astimezone(settings.zone) if now.tzinfo is not None else now


def _judge(reading: _Reading, words: str, settings: ClinicSettings, now: datetime) -> Availability:
    """What was read, judged against the clinic's open days and times (NoOpenDay says why not)."""
    today = now.date()
    tomorrow = today + timedelta(days=1)
    for time_of_day in reading.times:
        if not set(time_of_day.periods()) & set(settings.times_of_day):
            raise NoOpenDay("time", options=" or ".join(settings.times_of_day))
    horizon = today + timedelta(days=MAX_DAYS_AHEAD)
    if reading.exact and reading.earliest is not None:
        day = reading.earliest
        if day > horizon and not re.search(r"\d{4}", words):
            day = _passed_this_year(day, today) or day  # "30 November" on 3 December: this year's
        passed(day, day, today)
        if day > horizon:
            raise NoOpenDay("date_far")
        if settings.is_open(day):
            return Availability(words, day, time_of_day=reading.time_of_day, exact=True)
        if not reading.counted:
            raise NoOpenDay("date_closed", day=readable(day, year=False))
        reading = replace(reading, exact=False)  # "in a fortnight" on a Sunday: from then on
    earliest = max(reading.earliest or tomorrow, tomorrow)
    latest = reading.latest
    if latest is not None:
        passed(reading.earliest or latest, latest, today)
    if earliest > horizon:
        raise NoOpenDay("date_far")
    end = min(latest or horizon, horizon)
    weekdays = reading.weekdays
    open_days = [
        earliest + timedelta(days=n)
        for n in range((end - earliest).days + 1)
        if settings.is_open(earliest + timedelta(days=n))
        and (not weekdays or WEEKDAYS[(earliest + timedelta(days=n)).weekday()] in weekdays)
    ]
    if not open_days:
        if weekdays and latest is None:
            raise NoOpenDay("date_closed", day=weekday_phrase(weekdays))
        raise NoOpenDay("date_range_closed")
    first = open_days[0]
    if latest is not None:
        latest = open_days[-1]  # "next week" ends on the clinic's last open day of it
    if latest is not None and first == latest:
        return Availability(words, first, time_of_day=reading.time_of_day, exact=True)
    return Availability(
        words,
        first,
        latest=latest,
        weekdays=weekdays,
        time_of_day=reading.time_of_day,
        flexible=reading.flexible,
    )


_OR = re.compile(r"\s*([,;]?)\s*\bor\b(?:\s+else\b)?\s*", re.IGNORECASE)


def _alternatives(text: str, settings: ClinicSettings, now: datetime) -> list[tuple[str, _Reading]]:
    """The answer's alternatives ("weekdays after 2pm, or Saturday morning"), each with its reading.

    One item when the answer has none: "Tuesday or Wednesday" (days of one preference) and
    "mornings or afternoons" (times of the same days) are read as a whole. Alternatives are
    told apart by a comma before "or", by each having its own time, or by each being a period
    ("the end of the month or early next month"). A part that names only
    a time belongs to the days before it. NotUnderstood if an alternative cannot be read,
    so nothing the visitor offered is dropped without asking.
    """
    words = " ".join(str(text).split())
    pieces = _OR.split(words)
    if len(pieces) < 3:
        return [(words, read(words, settings, now))]
    parts, separated = [pieces[0]], False
    for comma, part in zip(pieces[1::2], pieces[2::2], strict=True):
        separated = separated or bool(comma)
        parts.append(part)
    readings: list[tuple[str, _Reading | None]] = []
    for part in parts:
        try:
            readings.append((part, read(part, settings, now)))
        except NotUnderstood:
            readings.append((part, None))
    merged: list[tuple[str, _Reading | None]] = []
    waiting: tuple[str, _Reading] | None = None  # "mornings or afternoons next week": a time first
    for part, reading in readings:
        only_a_time = reading is not None and bool(reading.times) and reading.earliest is None
        only_a_time = only_a_time and not (reading.weekdays or reading.flexible)
        if only_a_time and merged and merged[-1][1] is not None:
            before_words, before = merged[-1]
            before.times = [*before.times, *(t for t in reading.times if t not in before.times)]
            merged[-1] = (f"{before_words} or {part}", before)
        elif only_a_time and not merged and waiting is None:
            waiting = (part, reading)
        else:
            if waiting is not None and reading is not None:
                reading.times = [*waiting[1].times, *(t for t in reading.times if t not in waiting[1].times)]
                part, waiting = f"{waiting[0]} or {part}", None
            merged.append((part, reading))
    if waiting is not None:
        merged.insert(0, waiting)
    timed = {r.time_of_day for _, r in merged if r is not None and r.times}
    periods = all(r is not None and r.latest is not None for _, r in merged)  # "end of May or early June"
    if len(merged) < 2 or not (separated or len(timed) > 1 or periods):
        return [(words, read(words, settings, now))]
    if any(reading is None for _, reading in merged):
        raise NotUnderstood(text)
    return [(part, reading) for part, reading in merged if reading is not None]


def parse_availability(text: str, settings: ClinicSettings, now: datetime) -> Availability:
    """The visitor's availability from their words, judged against the clinic's open days and times.

    Raises NotUnderstood, or NoOpenDay with the reason ("date_past", "date_far", "date_closed"
    with the day, "date_range_closed" with the period, "time" with the clinic's times).
    """
    words = " ".join(str(text).split())
    now = clinic_time(now, settings)
    parts = [_judge(reading, part, settings, now) for part, reading in _alternatives(text, settings, now)]
    if len(parts) == 1:
        return replace(parts[0], words=words)
    for n in range(1, len(parts)):  # "next week after 2pm, or Saturday": that week's Saturday
        before, bare = parts[n - 1], time_phrases(parts[n].words)[1]
        if parts[n].exact and before.latest and re.fullmatch(_DAY, _normalise(bare)):
            monday = before.earliest - timedelta(days=before.earliest.weekday())
            day = monday + timedelta(days=WEEKDAYS.index(_normalise(bare)))
            if day > now.date() and settings.is_open(day) and day <= monday + timedelta(days=6):
                parts[n] = replace(parts[n], earliest=day)
    open_ended = any(p.latest is None and not p.exact for p in parts)
    any_day = any(not p.exact and not p.weekdays for p in parts)
    weekdays = {d for p in parts for d in p.weekdays} | {
        WEEKDAYS[p.earliest.weekday()] for p in parts if p.exact
    }
    times = [t for p in parts if p.time_of_day for t in [p.time_of_day]]
    return Availability(
        words,
        min(p.earliest for p in parts),
        latest=None if open_ended else max(p.latest or p.earliest for p in parts),
        weekdays=() if any_day else tuple(sorted(weekdays, key=WEEKDAYS.index)),
        time_of_day=" or ".join(dict.fromkeys(times)) or None,
        flexible=any(p.flexible for p in parts),
        alternatives=tuple(parts),
    )


def time_phrases(text: str) -> tuple[list[TimeOfDay], str]:
    """The times of day named in an answer and what is left of it (for the time question)."""
    reading = _Reading()
    rest = _take_time_of_day(_normalise(text), reading)
    return reading.times, _FILLER.sub(" ", re.sub(r"[^\w'/.-]+", " ", rest)).strip(" .,-")


def next_open_days(settings: ClinicSettings, today: date, count: int = 3) -> list[date]:
    """The next `count` days the clinic is open, from tomorrow."""
    days: list[date] = []
    day = today
    while len(days) < count:
        day = settings.next_open_day(day + timedelta(days=1))
        days.append(day)
    return days
