"""The clinic's details (clinic.yml): the one file staff edit, never code."""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import date, datetime, time, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from common import settings as deployment
from common import yamlio

REQUIRED = ("name", "phone", "email", "address", "emergency_number")
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
# Worked out from opening_hours when clinic.yml is read, never written in it.
DERIVED = ("live_chat_off",)
HOURS_MOVED = (
    "clinic.yml: the opening hours the assistant states are now worked out from opening_hours "
    '(e.g. monday: "09:00-17:00"); delete the line "hours: ..."'
)


def clock(moment: time | datetime) -> str:
    """A time as visitors read it: 9am, 5:30pm."""
    hour = moment.hour % 12 or 12
    minutes = f":{moment.minute:02d}" if moment.minute else ""
    return f"{hour}{minutes}{'am' if moment.hour < 12 else 'pm'}"


def day_names(days: list[str]) -> str:
    """Consecutive days in words: "Monday", "Monday and Tuesday", "Monday to Friday"."""
    first, last = days[0].capitalize(), days[-1].capitalize()
    if len(days) == 1:
        return first
    return f"{first} and {last}" if len(days) == 2 else f"{first} to {last}"


def describe_week(spans: dict[str, str]) -> str:
    """Hours per day in words, neighbouring days with the same hours together.

    {"monday": "09:00-17:00", ..., "friday": "09:00-17:00", "saturday": "10:00-13:00"} gives
    "Monday to Friday 9am to 5pm, Saturday 10am to 1pm"; no day at all gives "".
    """
    groups: list[tuple[list[str], str]] = []
    previous = None
    for day in WEEKDAYS:
        span = spans.get(day)
        if span is None:
            previous = None
            continue
        if previous is not None and groups[-1][1] == span:
            groups[-1][0].append(day)
        else:
            groups.append(([day], span))
        previous = day
    parts = []
    for days, span in groups:
        opening, closing = parse_span(span)
        parts.append(f"{day_names(days)} {clock(opening)} to {clock(closing)}")
    return ", ".join(parts)


@dataclass(frozen=True)
class ClinicSettings:
    """Contact details, opening days and booking options shown to visitors."""

    name: str
    phone: str
    email: str
    address: str
    emergency_number: str
    booking_link: str = ""
    country: str = "GB"
    timezone: str = "Europe/London"
    date_order: str = "DMY"
    opening_days: tuple[str, ...] = WEEKDAYS[:5]
    closed_dates: tuple[str, ...] = ()
    times_of_day: tuple[str, ...] = ("morning", "afternoon")
    booking_webhook_url: str = ""
    retention_days: int = 90
    # The clinic's hours, the one setting ("monday": "09:00-17:00"; a day not listed: closed):
    # the hours the assistant states and when live chat is offered both come from it. Live chat
    # is offered during the opening hours except on the days in live_chat_off (clinic.yml
    # writes such a day as {hours: "09:00-17:00", live_chat: false}). And how long a visitor
    # waits for someone before being offered to leave a message.
    opening_hours: tuple[tuple[str, str], ...] = ()
    live_chat_off: tuple[str, ...] = ()
    live_chat_wait_minutes: float = 3.0
    # How many visitors may wait for someone at once (more are offered to leave a message).
    live_chat_max_waiting: int = 5
    # When staff who chose it get the day's e-mail summary (HH:MM, the clinic's time zone).
    daily_summary_time: str = "08:00"
    # The clinic's document as visitors see it named under "Where is this from?".
    document_title: str = "The clinic's treatment information"

    @property
    def hours(self) -> str:
        """The opening hours as the assistant states them ("Monday to Friday 9am to 5pm, ...")."""
        return describe_week(dict(self.opening_hours))

    @property
    def live_chat_hours(self) -> str:
        """When live chat is offered, in words ("" on no day at all)."""
        return describe_week({day: span for day, span in self.opening_hours if day not in self.live_chat_off})

    @property
    def zone(self) -> ZoneInfo:
        """The clinic's time zone."""
        return ZoneInfo(self.timezone)

    def is_open(self, day: date) -> bool:
        """Whether the clinic sees patients on `day` (an opening weekday, not a holiday)."""
        return WEEKDAYS[day.weekday()] in self.opening_days and day.isoformat() not in self.closed_dates

    def hours_on(self, day: date) -> tuple[time, time] | None:
        """When the clinic's staff can chat on `day` (opening, closing), or None if not at all.

        The days are those listed in opening_hours, less the closed dates.
        """
        if day.isoformat() in self.closed_dates:
            return None
        span = dict(self.opening_hours).get(WEEKDAYS[day.weekday()])
        return parse_span(span) if span else None

    def open_at(self, moment: datetime) -> bool:
        """Whether `moment` is within the opening hours (in the clinic's time zone)."""
        local = moment.astimezone(self.zone)
        hours = self.hours_on(local.date())
        return hours is not None and hours[0] <= local.time() < hours[1]

    def live_chat_on(self, day: date) -> tuple[time, time] | None:
        """When live chat is offered on `day` (its opening hours, unless live chat is off that day)."""
        return None if WEEKDAYS[day.weekday()] in self.live_chat_off else self.hours_on(day)

    def live_chat_at(self, moment: datetime) -> bool:
        """Whether `moment` is within live-chat hours (in the clinic's time zone)."""
        local = moment.astimezone(self.zone)
        hours = self.live_chat_on(local.date())
        return hours is not None and hours[0] <= local.time() < hours[1]

    def next_live_chat(self, moment: datetime) -> datetime | None:
        """When live chat is next offered after `moment` (later today, or a coming day; None: never)."""
        local = moment.astimezone(self.zone)
        for offset in range(15):
            day = local.date() + timedelta(days=offset)
            hours = self.live_chat_on(day)
            if hours is not None:
                start = datetime.combine(day, hours[0], self.zone)
                if start > local:
                    return start
        return None

    def next_opening(self, moment: datetime) -> datetime | None:
        """The next time the clinic opens after `moment` (None if no hours are set)."""
        local = moment.astimezone(self.zone)
        for offset in range(1, 15):
            day = local.date() + timedelta(days=offset)
            hours = self.hours_on(day)
            if hours is not None:
                return datetime.combine(day, hours[0], self.zone)
        return None

    def next_open_day(self, start: date) -> date:
        """`start`, or the first day after it on which the clinic is open."""
        day = start
        while not self.is_open(day):
            day += timedelta(days=1)
        return day


def _is_date(text: str) -> bool:
    """Whether `text` is a date written as YYYY-MM-DD."""
    try:
        date.fromisoformat(text)
    except ValueError:
        return False
    return len(text) == 10


def settings_path() -> Path:
    """clinic.yml in the project, or the file named by CLINIC_SETTINGS."""
    return deployment.current().clinic_settings


def parse_span(text: str) -> tuple[time, time]:
    """A span such as 09:00-17:00 as (opening, closing); ValueError unless two times, the first earlier."""
    start, _, finish = text.replace(" ", "").partition("-")
    opening, closing = time.fromisoformat(start), time.fromisoformat(finish)
    if not opening < closing:
        raise ValueError(text)
    return opening, closing


def _clean(value: Any) -> Any:
    """Lists become tuples of lowercase strings; everything else a stripped string."""
    if isinstance(value, dict):
        return tuple((str(k).strip().lower(), str(v).strip()) for k, v in value.items())
    if isinstance(value, list | tuple):
        return tuple(str(v).strip().lower() for v in value)
    return "" if value is None else str(value).strip()


def read_week(week: Any) -> tuple[tuple[tuple[str, str], ...], tuple[str, ...]]:
    """clinic.yml's opening_hours as (day, "09:00-17:00") pairs and the days without live chat.

    Each day is "09:00-17:00" (live chat while open) or {hours: "09:00-17:00", live_chat: false}.
    ValueError, naming the day, for anything else; at least one day must be open.
    """
    example = 'e.g. monday: "09:00-17:00"'
    if not isinstance(week, dict) or not week:
        raise ValueError(f"clinic.yml: opening_hours must give the hours of at least one day, {example}")
    spans, off = [], []
    for key, value in week.items():
        day = str(key).strip().lower()
        if day not in WEEKDAYS:
            raise ValueError(f"clinic.yml: opening_hours: {key!r} is not a day of the week")
        live = True
        if isinstance(value, dict):
            extra = sorted(set(value) - {"hours", "live_chat"})
            if extra or not isinstance(value.get("live_chat", True), bool):
                raise ValueError(
                    f'clinic.yml: opening_hours: {day}: write {{hours: "09:00-17:00", live_chat: false}}'
                )
            live, value = value.get("live_chat", True), value.get("hours")
        span = "" if value is None else str(value).strip()
        try:
            parse_span(span)
        except ValueError:
            raise ValueError(
                f'clinic.yml: opening_hours: {day}: {span!r} is not like "09:00-17:00"'
            ) from None
        spans.append((day, span))
        if not live:
            off.append(day)
    order = {day: n for n, day in enumerate(WEEKDAYS)}
    return tuple(sorted(spans, key=lambda pair: order[pair[0]])), tuple(off)


def load_settings(path: Path | None = None) -> ClinicSettings:
    """clinic.yml, checked; read again whenever the file changes (its modification time or size).

    So a change saved in the staff console reaches every process that reads the file (the
    action server, the console, the demo page) at its next request: no restart, no training.
    """
    path = path or settings_path()
    stat = path.stat()
    return _cached_settings(path, stat.st_mtime_ns, stat.st_size)


@lru_cache(maxsize=4)
def _cached_settings(path: Path, mtime_ns: int, size: int) -> ClinicSettings:
    """read_settings, once per version of the file."""
    return read_settings(path)


def is_clock_time(text: str) -> bool:
    """Whether `text` is a time of day written as HH:MM (24-hour clock)."""
    hours, _, minutes = text.partition(":")
    return (
        len(hours) == 2
        and len(minutes) == 2
        and (hours + minutes).isdigit()
        and int(hours) < 24
        and int(minutes) < 60
    )


def read_settings(path: Path) -> ClinicSettings:
    """Read and check clinic.yml; a missing or misspelt value is an error, not a blank answer."""
    raw: dict[str, Any] = yamlio.load(path.read_text(encoding="utf-8")) or {}
    if "hours" in raw:
        raise ValueError(HOURS_MOVED)
    known = {f.name for f in fields(ClinicSettings)} - set(DERIVED)
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ValueError(f"clinic.yml: unknown setting(s) {unknown}; known: {sorted(known)}")
    week = raw.pop("opening_hours", None)
    values: dict[str, Any] = {key: _clean(value) for key, value in raw.items()}
    values["opening_hours"], values["live_chat_off"] = read_week(week)
    if "retention_days" in values:
        try:
            values["retention_days"] = int(values["retention_days"])
        except ValueError:
            raise ValueError("clinic.yml: retention_days must be a whole number of days") from None
    if "live_chat_wait_minutes" in values:
        try:
            values["live_chat_wait_minutes"] = float(values["live_chat_wait_minutes"])
        except ValueError:
            raise ValueError("clinic.yml: live_chat_wait_minutes must be a number of minutes") from None
    if "live_chat_max_waiting" in values:
        try:
            values["live_chat_max_waiting"] = int(values["live_chat_max_waiting"])
        except ValueError:
            raise ValueError("clinic.yml: live_chat_max_waiting must be a whole number of visitors") from None
    if "daily_summary_time" in values:  # 8:00 unquoted is a number to YAML: refused below, in words
        values["daily_summary_time"] = str(values["daily_summary_time"])
    settings = ClinicSettings(**values)
    missing = [name for name in REQUIRED if not getattr(settings, name)]
    if missing:
        raise ValueError(f"clinic.yml: please fill in {missing}")
    wrong_days = sorted(set(settings.opening_days) - set(WEEKDAYS))
    if wrong_days:
        raise ValueError(f"clinic.yml: opening_days {wrong_days} are not days of the week")
    wrong_dates = [day for day in settings.closed_dates if not _is_date(day)]
    if wrong_dates:
        raise ValueError(f"clinic.yml: closed_dates {wrong_dates} are not dates written as YYYY-MM-DD")
    if settings.live_chat_wait_minutes <= 0:
        raise ValueError("clinic.yml: live_chat_wait_minutes must be above 0")
    if settings.live_chat_max_waiting <= 0:
        raise ValueError("clinic.yml: live_chat_max_waiting must be above 0")
    if not is_clock_time(settings.daily_summary_time):
        raise ValueError("clinic.yml: daily_summary_time must be a time of day written as HH:MM, e.g. 08:00")
    for name in ("booking_link", "booking_webhook_url"):
        if getattr(settings, name) and not getattr(settings, name).startswith(("https://", "http://")):
            raise ValueError(f"clinic.yml: {name} must be a web address starting with https://")
    try:
        ZoneInfo(settings.timezone)
    except (ZoneInfoNotFoundError, ValueError) as error:
        raise ValueError(f"clinic.yml: unknown timezone {settings.timezone!r}") from error
    return settings
