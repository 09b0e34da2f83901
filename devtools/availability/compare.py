"""Which date/time recogniser understands visitors' answers to "Which day would suit you?".

Runs each candidate library on the phrases of phrases.yml (said on the date in its `now`) and
writes reports/date-parsers.md: a table of what each library made of each phrase, and how many
it got right. A candidate that is not installed is skipped, so the comparison can run in a
scratch environment that has them all:

    python3.10 -m venv /tmp/datecmp && /tmp/datecmp/bin/pip install "regex<2022.11" "emoji<2" \
        dateparser==1.1.8 recognizers-text-date-time ctparse parsedatetime timefhuman pyyaml

(recognizers-text 1.0.2a2 imports emoji's UNICODE_EMOJI, gone since emoji 2.0: hence "emoji<2".)
    PYTHONPATH=. /tmp/datecmp/bin/python devtools/availability/compare.py

The last column is this project's own reading (actions/booking/availability.py) for comparison.

A library "gets" a phrase when its first result names the phrase's earliest day and, for a
range, also its last day. Flexibility ("asap", "I'm flexible") and weekday patterns are not
dates: no library is expected to get them, and the form reads them itself.
"""

from __future__ import annotations

import importlib
import sys
import warnings
from collections.abc import Callable
from datetime import date, datetime, timedelta
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
PHRASES = HERE / "phrases.yml"
REPORT = HERE.parent.parent / "reports" / "date-parsers.md"

Result = tuple[date, date | None] | None  # (first day, last day of a range or None)


def _dateparser_parse(text: str, now: datetime) -> Result:
    import dateparser

    settings = {"PREFER_DATES_FROM": "future", "DATE_ORDER": "DMY", "RELATIVE_BASE": now}
    parsed = dateparser.parse(text, languages=["en"], settings=settings)
    return (parsed.date(), None) if parsed else None


def _dateparser_search(text: str, now: datetime) -> Result:
    from dateparser.search import search_dates

    settings = {"PREFER_DATES_FROM": "future", "DATE_ORDER": "DMY", "RELATIVE_BASE": now}
    found = search_dates(text, languages=["en"], settings=settings)
    return (found[0][1].date(), None) if found else None


def _recognizers(text: str, now: datetime) -> Result:
    from recognizers_date_time import Culture, recognize_datetime

    for result in recognize_datetime(text, Culture.English, reference=now):
        values = (result.resolution or {}).get("values") or []
        future = [v for v in values if _day(v.get("value") or v.get("start") or "") >= now.date()]
        if not future:
            continue
        value = future[-1]
        if "start" in value or "end" in value:
            start = _day(value.get("start") or "") if value.get("start") else now.date()
            end = _day(value["end"]) - timedelta(days=1) if value.get("end") else None
            if value.get("type") in {"datetimerange", "timerange"} and end is not None:
                end = _day(value["end"])
            return start, end
        return _day(value["value"]), None
    return None


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text[:10])
    except ValueError:
        return date.min


def _ctparse(text: str, now: datetime) -> Result:
    from ctparse import ctparse
    from ctparse.types import Interval, Time

    parsed = ctparse(text, ts=now, timeout=1)
    resolution = parsed.resolution if parsed else None
    if isinstance(resolution, Time) and resolution.year:
        return date(resolution.year, resolution.month, resolution.day), None
    if isinstance(resolution, Interval) and resolution.t_from and resolution.t_from.year:
        start = resolution.t_from
        end = resolution.t_to
        return (
            date(start.year, start.month, start.day),
            date(end.year, end.month, end.day) if end and end.year else None,
        )
    return None


def _parsedatetime(text: str, now: datetime) -> Result:
    import parsedatetime

    parsed, status = parsedatetime.Calendar().parseDT(text, sourceTime=now)
    return (parsed.date(), None) if status else None


def _timefhuman(text: str, now: datetime) -> Result:
    from timefhuman import tfhConfig, timefhuman

    found = timefhuman(text, config=tfhConfig(now=now))
    if not found:
        return None
    first = found[0] if isinstance(found, list) else found
    if isinstance(first, tuple):
        return first[0].date(), first[1].date()
    return (first.date(), None) if hasattr(first, "date") else None


def _this_project(text: str, now: datetime) -> Result:
    """The form's own reading (dateparser + the vocabulary), for comparison."""
    from dataclasses import replace

    from actions.booking.availability import read
    from common.clinic import load_settings

    reading = read(text, replace(load_settings(), date_order="DMY"), now)
    return (reading.earliest, reading.latest) if reading.earliest else None


CANDIDATES: list[tuple[str, str, str, Callable[[str, datetime], Result]]] = [
    ("dateparser.parse", "dateparser", "dateparser", _dateparser_parse),
    ("dateparser search_dates", "dateparser", "dateparser", _dateparser_search),
    ("Recognizers-Text", "recognizers_date_time", "recognizers-text-date-time", _recognizers),
    ("ctparse", "ctparse", "ctparse", _ctparse),
    ("parsedatetime", "parsedatetime", "parsedatetime", _parsedatetime),
    ("timefhuman", "timefhuman", "timefhuman", _timefhuman),
    ("this project (dateparser + vocabulary)", "actions.booking.availability", "dateparser", _this_project),
]


DECISION = [
    "## The choice",
    "",
    "**dateparser's `search_dates`** (1.1.8, already pinned beside Rasa 3.6: nothing new to install) reads"
    " the days and dates; the form's own small vocabulary (actions/booking/availability.py) reads what no"
    " candidate resolved: flexibility, weekday patterns, weeks and months as ranges, holidays,"
    ' "a week on Monday" / "Monday week" / "friday after next", "in a fortnight", and bounds'
    ' ("after", "from", "by", "between").',
    "",
    '- **Recognizers-Text** (Microsoft) got the most dated phrases, ranges above all ("next week",'
    ' "in January", "this weekend"), but its Python packages are an alpha of 2019 (1.0.2a2) that'
    " no longer imports with today's `emoji` (it needs `emoji<2`), the newer `ms-recognizers-text-*`"
    " 1.0.x packages do not import at all (no module `recognizers_text`), and in the action server it"
    " would cost about 80 MB of memory, 4 s for its first call and about 140 ms per answer (measured"
    " here), against the guard rails on memory and latency. Not a kept library for this stack.",
    '- **ctparse** (a Python port of Duckling\'s ideas) misreads "next Tuesday" and "12/14/2026"'
    ' and reads no periods; **parsedatetime** reads a point, never a range, and not "14/12";'
    " **timefhuman** ignores the reference day unless configured and reads no periods.",
    "- A newer dateparser (1.2+) was not needed: 1.1.8's `search_dates` already reads every exact form"
    " here once the vocabulary has taken out the words around the date, and an upgrade risks moving"
    " `regex` past Rasa's `<2022.11` pin (shared notes).",
    "",
    "With the vocabulary, the form reads all "
    + "phrases of phrases.yml as meant (tests/unit/test_availability.py).",
    "",
]


def expected(phrase: dict) -> tuple[date, date | None]:
    """The phrase's first and last day from phrases.yml."""
    latest = phrase.get("latest")
    return date.fromisoformat(phrase["earliest"]), date.fromisoformat(latest) if latest else None


def judged(phrase: dict, result: Result) -> bool:
    """Whether the library's result is the phrase's earliest (and, for a range, last) day."""
    if result is None or phrase.get("flexible") or phrase.get("weekdays"):
        return False
    first, last = expected(phrase)
    return result[0] == first and (last is None or result[1] == last)


def cell(result: Result, right: bool) -> str:
    """A result as the table shows it."""
    if result is None:
        return "-"
    text = f"{result[0]:%a %d %b}" + (f" to {result[1]:%a %d %b}" if result[1] else "")
    return f"**{text}**" if right else text


def main() -> None:
    """Run every installed candidate on every phrase; write and print the table."""
    data = yaml.safe_load(PHRASES.read_text(encoding="utf-8"))
    now = datetime.fromisoformat(data["now"])
    phrases = data["phrases"]
    columns = []
    for label, module, package, run in CANDIDATES:
        try:
            importlib.import_module(module)
            from importlib.metadata import version

            columns.append((f"{label} {version(package)}", run))
        except ImportError:
            print(f"skipping {label}: {module} is not installed", file=sys.stderr)
    rows, scores = [], [0] * len(columns)
    for phrase in phrases:
        first, last = expected(phrase)
        meant = f"{first:%a %d %b}" + (f" to {last:%a %d %b}" if last else "")
        if phrase.get("flexible"):
            meant = "flexible, from " + meant
        if phrase.get("weekdays"):
            meant += ", " + "/".join(d[:3] for d in phrase["weekdays"])
        cells = []
        for index, (_, run) in enumerate(columns):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                try:
                    result = run(phrase["text"], now)
                except Exception as error:  # a crash on a phrase is a miss, shown as such
                    result, cells_note = None, type(error).__name__
                    cells.append(f"error ({cells_note})")
                    continue
            right = judged(phrase, result)
            scores[index] += right
            cells.append(cell(result, right))
        rows.append(f"| {phrase['text']} | {meant} | " + " | ".join(cells) + " |")
    dated = sum(1 for p in phrases if not p.get("flexible") and not p.get("weekdays"))
    lines = [
        "# Date recognisers compared on visitors' answers",
        "",
        f"Generated by `devtools/availability/compare.py` from `devtools/availability/phrases.yml`"
        f" ({len(phrases)} phrases, said on {now:%A %d %B %Y}). Bold: the library's first result is"
        " the day (or range) meant. Flexibility and weekday patterns are not dates and count for no one.",
        "",
        "| Phrase | Meant | " + " | ".join(name for name, _ in columns) + " |",
        "|---|---|" + "---|" * len(columns),
        *rows,
        f"| **right, of {dated} dated phrases** | | " + " | ".join(str(s) for s in scores) + " |",
        "",
        *DECISION,
    ]
    REPORT.parent.mkdir(exist_ok=True)
    REPORT.write_text("\n".join(lines), encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
