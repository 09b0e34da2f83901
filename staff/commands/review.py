"""Learn from real conversations: what visitors asked that the assistant could not answer.

    make review                                    (clinic-review report [--since ...] [--until ...])
    make merge FILE=reports/review-YYYY-MM-DD.csv  (clinic-review merge FILE)

`report` reads the conversations (DATABASE_URL, default var/clinic.db) of a date range (the
last 7 days unless told) and writes, in reports/: review-<until>.csv (the messages that
ended in a fallback, an "I don't know" or a rejected "did you mean", grouped by wording),
review-<until>.md (the period's numbers) and review-<until>.png (a chart per day). Staff
fill in the correct_intent column; `merge` adds those examples to the training data in
data/nlu. Emails and phone numbers are masked in everything the review writes or prints.
"""

from __future__ import annotations

import argparse
import csv
import sys
from collections import defaultdict
from collections.abc import Sequence
from datetime import date, datetime, time, timedelta
from pathlib import Path

from common import settings
from common.clinic import load_settings
from common.paths import PROJECT_ROOT, relative
from staff.service.review import (
    DAYS,
    Numbers,
    known_examples,
    read_turns,
    refusal,
    review_rows,
    row_examples,
    screen,
    training_files,
    write_additions,
    write_chart,
    write_csv,
    write_markdown,
)
from staff.service.validate import load, normalise


def report(root: Path, since: date, until: date) -> int:
    """Write the review file, the numbers and the chart for since..until; print a summary."""
    zone = load_settings().zone
    start = datetime.combine(since, time(), zone).timestamp()
    end = datetime.combine(until + timedelta(days=1), time(), zone).timestamp()
    turns = read_turns(settings.current().database_url, start, end)
    rows = review_rows(turns)
    numbers = Numbers.of(turns)
    out = root / "reports"
    out.mkdir(parents=True, exist_ok=True)
    csv_path, chart, summary = (out / f"review-{until}.{ext}" for ext in ("csv", "png", "md"))
    write_csv(rows, csv_path)
    write_chart(turns, [since + timedelta(days=n) for n in range((until - since).days + 1)], zone, chart)
    write_markdown(numbers, rows, since, until, csv_path, chart, summary)
    print(f"Conversations from {since} to {until}:")
    for label, value in numbers.lines():
        print(f"  {label}: {value}")
    print(f"\nMost frequent of the {len(rows)} group(s) to review:")
    for row in rows[:5]:
        print(
            f"  {row.count} x \"{row.example}\" ({row.reason}; the assistant guessed "
            f"{row.guessed_intent or 'nothing'})"
        )
    print(
        f"\nWrote {csv_path}, {summary} and {chart}.\nFill in correct_intent in the CSV, "
        f"then run: make merge FILE={relative(csv_path)}"
    )
    return 0


def read_review(path: Path) -> list[dict[str, str]] | None:
    """The rows of an annotated review file (None, with a message, if it cannot be read)."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as file:
            reader = csv.DictReader(file)
            rows = list(reader)
            header = reader.fieldnames or []
    except FileNotFoundError:
        print(f"{path}: there is no such file - check the name (make review writes them in reports/)")
        return None
    except UnicodeDecodeError:
        print(f'{path}: the file is not UTF-8 - in your spreadsheet, save it as "CSV UTF-8"')
        return None
    missing = [c for c in ("example", "other_examples", "correct_intent") if c not in header]
    if missing:
        print(
            f"{path}: the columns {', '.join(missing)} are missing - save the review file as "
            "CSV with commas, keeping its first row as it was"
        )
        return None
    return rows


def merge(path: Path, root: Path) -> int:
    """Add the annotated examples of a review file to the training data under `root`."""
    project, problems = load(root)
    if problems:
        print("\n".join(map(str, problems)))
        print("Fix these first (`make validate` shows them too), then merge again.")
        return 1
    rows = read_review(path)
    if rows is None:
        return 1
    files = training_files(project)
    known, heldout = known_examples(project)
    private = screen()
    additions: dict[str, list[str]] = defaultdict(list)
    refused = []
    for number, row in enumerate(rows, start=2):  # row 1 is the header, as a spreadsheet shows
        intent = (row.get("correct_intent") or "").strip().lower()
        where = f"{path}:{number}"
        if not intent:
            continue
        if intent not in files:
            refused.append(
                f'{where}: "{intent}" is not an intent of the assistant - write one '
                "of the intents listed below, or leave the cell empty to skip the row"
            )
            continue
        for text in row_examples(row):
            why = refusal(text, known, heldout, private)
            if why:
                print(f'{where}: skipped "{text}": {why}')
                continue
            additions[intent].append(text)
            known[normalise(text)] = intent
    if refused:
        print("\n".join(refused))
        print(f"Intents you can use: {', '.join(sorted(files))}")
        print("Nothing was merged: correct these rows (or empty their cell) and merge again.")
        return 1
    if not additions:
        print("Nothing new to add.")
        return 0
    write_additions(root, files, additions)
    for intent, texts in additions.items():
        print(f"Added {len(texts)} example(s) to {intent} in {files[intent]}")
    print(
        "Next: run `make validate` to check the data, then `make train` to teach the "
        "assistant, then restart `make run`."
    )
    return 0


def day(text: str) -> date:
    """A --since/--until value."""
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a date: write it as YYYY-MM-DD, " "e.g. 2026-11-25"
        ) from None


def main(argv: Sequence[str] | None = None) -> int:
    """Run `report` or `merge`; 1 if something needs fixing first."""
    parser = argparse.ArgumentParser(
        prog="clinic-review", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--root", type=Path, default=PROJECT_ROOT, help="the project folder (default: this one)"
    )
    commands = parser.add_subparsers(dest="command", required=True)
    report_command = commands.add_parser(
        "report", parents=[common], help="write the review file, numbers and chart"
    )
    report_command.add_argument(
        "--since", type=day, help=f"first day (default: {DAYS - 1} days before --until)"
    )
    report_command.add_argument("--until", type=day, help="last day (default: today)")
    merge_command = commands.add_parser(
        "merge", parents=[common], help="add the annotated examples to data/nlu"
    )
    merge_command.add_argument("file", type=Path, help="the review file, e.g. reports/review-2026-11-25.csv")
    args = parser.parse_args(argv)
    root = args.root.resolve()
    if args.command == "merge":
        return merge(args.file, root)
    until = args.until or datetime.now(load_settings().zone).date()
    since = args.since or until - timedelta(days=DAYS - 1)
    if since > until:
        parser.error(f"--since ({since}) is after --until ({until})")
    return report(root, since, until)


if __name__ == "__main__":
    sys.exit(main())
