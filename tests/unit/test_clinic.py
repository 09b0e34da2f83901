"""clinic.yml: staff mistakes are reported clearly instead of shown to visitors."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from common.clinic import load_settings, read_settings
from common.paths import CLINIC_YML
from staff.service import clinic_hours
from staff.service.yamlfile import open_yaml

LONDON = ZoneInfo("Europe/London")
WEEK = 'opening_hours: {monday: "09:00-17:00"}\n'


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "clinic.yml"
    path.write_text(text)
    return path


def test_the_shipped_settings_are_complete() -> None:
    settings = load_settings()
    assert settings.phone and settings.email and settings.emergency_number


def test_a_missing_value_is_named(tmp_path: Path) -> None:
    path = write(
        tmp_path, 'name: A\nphone: ""\nemail: a@b.test\naddress: y\nemergency_number: "999"\n' + WEEK
    )
    with pytest.raises(ValueError, match="phone"):
        read_settings(path)


def test_a_misspelt_setting_is_named(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        'name: A\nphone: "1"\nemail: a@b.test\naddress: y\n'
        'emergency_number: "999"\nphonenumber: "2"\n' + WEEK,
    )
    with pytest.raises(ValueError, match="phonenumber"):
        read_settings(path)


def with_hours(tmp_path: Path, week: str) -> Path:
    """The shipped clinic.yml with its opening_hours replaced by `week` (YAML lines)."""
    text = CLINIC_YML.read_text(encoding="utf-8")
    text = re.sub(r"(?ms)^opening_hours:.*?(?=^# How many minutes)", week, text)
    return write(tmp_path, text)


def test_the_hours_the_assistant_states_are_those_live_chat_is_offered_in(tmp_path: Path) -> None:
    """The reported contradiction: "Monday to Friday 9am to 5pm" stated, a live chat offered at 20:00."""
    path = with_hours(
        tmp_path,
        "opening_hours:\n"
        + "".join(f'  {day}: "08:00-20:30"\n' for day in ("monday", "tuesday", "wednesday", "thursday"))
        + '  friday: "09:00-17:00"\n',
    )
    clinic = read_settings(path)
    monday_evening = datetime(2026, 12, 7, 20, 0, tzinfo=LONDON)
    assert clinic.live_chat_at(monday_evening)
    assert clinic.hours == "Monday to Thursday 8am to 8:30pm, Friday 9am to 5pm"
    assert not clinic.live_chat_at(datetime(2026, 12, 11, 20, 0, tzinfo=LONDON))  # Friday evening
    shipped = read_settings(CLINIC_YML)
    assert shipped.hours == "Monday to Friday 9am to 5pm, Saturday 10am to 1pm"
    assert not shipped.live_chat_at(monday_evening)


def test_a_day_open_without_live_chat_and_when_live_chat_is_next(tmp_path: Path) -> None:
    path = with_hours(
        tmp_path,
        'opening_hours:\n  monday: "09:00-17:00"\n  tuesday: {hours: "09:00-17:00", live_chat: false}\n'
        '  wednesday: "09:00-12:30"\n',
    )
    clinic = read_settings(path)
    assert clinic.hours == "Monday and Tuesday 9am to 5pm, Wednesday 9am to 12:30pm"
    assert clinic.live_chat_hours == "Monday 9am to 5pm, Wednesday 9am to 12:30pm"
    tuesday = datetime(2026, 12, 8, 10, tzinfo=LONDON)
    assert clinic.open_at(tuesday) and not clinic.live_chat_at(tuesday)
    assert clinic.next_live_chat(tuesday) == datetime(2026, 12, 9, 9, tzinfo=LONDON)
    assert clinic.next_live_chat(tuesday.replace(day=7, hour=8)) == datetime(2026, 12, 7, 9, tzinfo=LONDON)
    assert replace(clinic, opening_hours=()).next_live_chat(tuesday) is None


@pytest.mark.parametrize(
    ("week", "problem"),
    [
        ('hours: "Monday to Friday 9am to 5pm"\nopening_hours: {monday: "09:00-17:00"}\n', "delete the line"),
        ("opening_hours: {}\n", "at least one day"),
        ('opening_hours: {monday: {hours: "09:00-17:00", live_chat: sometimes}}\n', "live_chat: false"),
        ('opening_hours: {monday: {hours: "5pm"}}\n', "is not like"),
    ],
)
def test_hours_written_wrongly_are_refused_with_a_clear_message(
    tmp_path: Path, week: str, problem: str
) -> None:
    with pytest.raises(ValueError, match=problem):
        read_settings(with_hours(tmp_path, week))


def hours_form(**days: tuple[str, str, bool]) -> clinic_hours.HoursChange:
    """The form's hours part: the given days, the rest closed; a wait of 3 minutes, 5 waiting."""
    week = [clinic_hours.DayHours(day, *days.get(day, ("", "", True))) for day in clinic_hours.WEEKDAYS]
    return clinic_hours.HoursChange(week, "3", "5")


def test_the_hours_form_names_each_mistake_in_plain_words() -> None:
    change = hours_form(monday=("17:00", "09:00", True), tuesday=("09:00", "", True), friday=("9", "5", True))
    change.wait_minutes, change.max_waiting = "0", "lots"
    *_, problems = clinic_hours.check(change)
    assert problems == [
        "Monday: the closing time must be after the opening time.",
        "Tuesday: give both the opening and the closing time, or neither (closed).",
        "Friday: write each time as hours and minutes, for example 09:00 or 17:30.",
        "Minutes a visitor waits for someone: write a number of minutes above 0, at most 60.",
        "Visitors who may wait at once: write a whole number from 1 to 100.",
    ]
    assert clinic_hours.check(hours_form())[-1] == ["Opening hours: give the hours of at least one day."]


def test_saved_hours_keep_clinic_yml_s_comments_and_read_back_the_same(tmp_path: Path) -> None:
    path = write(tmp_path, CLINIC_YML.read_text(encoding="utf-8"))
    rows = clinic_hours.week_rows(read_yaml(path))
    assert [(r.day, r.opens, r.closes, r.live_chat) for r in rows[4:]] == [
        ("friday", "09:00", "17:00", True),
        ("saturday", "10:00", "13:00", True),
        ("sunday", "", "", True),
    ]
    change = hours_form(
        monday=("8:30", "17:00", True), saturday=("10:00", "13:00", False), sunday=("11:00", "15:00", True)
    )
    yml = open_yaml(path, "clinic.yml")
    assert clinic_hours.apply(yml.data, change) == ["opening hours"]
    path.write_text(yml.text(), encoding="utf-8")
    text = path.read_text(encoding="utf-8")
    assert "# The clinic's hours, in its timezone" in text and 'monday: "08:30-17:00"' in text
    assert 'saturday: {hours: "10:00-13:00", live_chat: false}' in text
    clinic = read_settings(path)
    assert clinic.hours == "Monday 8:30am to 5pm, Saturday 10am to 1pm, Sunday 11am to 3pm"
    assert clinic.live_chat_off == ("saturday",)


def read_yaml(path: Path) -> dict:
    import yaml

    return yaml.safe_load(path.read_text(encoding="utf-8"))
