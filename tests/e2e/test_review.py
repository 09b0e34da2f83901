"""staff/service/review.py on a tracker store filled by real conversations with the trained assistant.

The servers run once for the module; visitors ask in-scope and off-topic questions, leave
an email and a phone number, and reject a "did you mean". Then the review is run as staff
run it, and its merge is tried on a copy of the project's data.
"""

from __future__ import annotations

import contextlib
import csv
import io
import shutil
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from common.paths import PROJECT_ROOT
from servers.launcher import Stack, StackConfig, free_port
from staff.commands import review as review_command
from staff.commands import validate as validate_command
from staff.service import review
from tests.helpers import Chat

pytestmark = pytest.mark.e2e

PARTS = ["clinic.yml", "config.yml", "domain", "data", "content", "actions", "tests/heldout", "tests/stories"]
EMAIL, PHONE = "jane.doe@example.com", "07911 123456"
PERSONAL = f"can you email the price list to {EMAIL} or call me on {PHONE}"
COST_QUESTIONS = ["how much does it cost", "how much does scar relaxation cost?"]
# Vague messages; retraining may shift which of them gets "did you mean", but not all of them.
VAGUE = ["tell me about scars", "skin", "skin stuff", "dark"]
SOMETHING_ELSE = "/out_of_scope"  # the "Something else" button under "did you mean"
FALLBACK_REPLIES = ["utter_did_you_mean", "utter_ask_rephrase", "utter_default"]
UNKNOWN_REPLIES = ["utter_out_of_scope", "utter_medical_advice"]
HANDOFF_REPLIES = ["utter_out_of_scope", "utter_medical_advice", "utter_default", "utter_contact"]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@dataclass
class Visits:
    """What the test's visitors sent and, judged by the texts they saw, what they got."""

    senders: set[str] = field(default_factory=set)
    got: Counter[str] = field(default_factory=Counter)  # answered / fallback / unknown / handed
    vague: str = ""  # the message whose "did you mean" was rejected


@dataclass
class Review:
    """What `clinic-review report` printed and wrote."""

    stdout: str
    csv_path: Path
    rows: list[dict[str, str]]
    markdown: str
    chart: Path

    def row_of(self, example: str) -> dict[str, str]:
        """The review row that lists `example`."""
        [row] = [r for r in self.rows if example in [r["example"], *r["other_examples"].split(" | ")]]
        return row

    def number(self, label: str) -> str:
        """A number as printed: for "Answered", e.g. "50% (3 of 6)"."""
        [value] = [
            line.split(": ", 1)[1]
            for line in self.stdout.splitlines()
            if line.strip().startswith(f"{label}:")
        ]
        return value


def converse(chat: Chat, expected: Callable[[str], str]) -> Visits:
    """The visitors' messages, each reply checked, so the review is judged against them."""
    visits = Visits()
    kinds = {expected(name): "fallback" for name in FALLBACK_REPLIES}
    kinds.update({expected(name): "unknown" for name in UNKNOWN_REPLIES})
    handoff = {expected(name) for name in HANDOFF_REPLIES}

    def say(sender: str, text: str) -> str:
        replies = chat.texts(sender, text)
        visits.senders.add(sender)
        visits.got[kinds.get(replies[0], "answered")] += 1
        visits.got["handed"] += bool(handoff & set(replies))
        return replies[0]

    assert say("review-faq", "what is scar relaxation?") == expected("utter_faq/what_is")
    assert say("review-faq", COST_QUESTIONS[0]) == expected("utter_out_of_scope")
    assert say("review-cost", COST_QUESTIONS[1]) == expected("utter_out_of_scope")
    assert kinds.get(say("review-personal", PERSONAL)) in ("fallback", "unknown")
    assert say("review-hello", "hello") == expected("utter_greet")
    assert say("review-hello", "what are the benefits") == expected("utter_faq/benefits")
    assert say("review-book", "book a consultation") == expected("utter_booking_intro")
    for number, text in enumerate(VAGUE):
        sender = f"review-vague-{number}"
        if say(sender, text) == expected("utter_did_you_mean"):
            assert say(sender, SOMETHING_ELSE) == expected("utter_ask_rephrase")
            visits.vague = text
            return visits
    pytest.fail(f"none of {VAGUE} was uncertain enough for 'did you mean'")


@pytest.fixture(scope="module")
def visits_and_review(
    tmp_path_factory: pytest.TempPathFactory, expected: Callable[[str], str]
) -> Iterator[tuple[Visits, Review]]:
    """Real conversations in a fresh tracker store, then the review of the last 7 days."""
    tmp = tmp_path_factory.mktemp("review")
    config = StackConfig(
        rasa_port=free_port(), action_port=free_port(), database_url=f"sqlite:///{tmp}/clinic.db"
    )
    with (tmp / "servers.log").open("w") as log, Stack(config, log):
        visits = converse(Chat(config.rasa_url), expected)
    printed = io.StringIO()
    with pytest.MonkeyPatch.context() as env, contextlib.redirect_stdout(printed):
        env.setenv("DATABASE_URL", config.database_url)
        assert review_command.main(["report", "--root", str(tmp)]) == 0
    [csv_path] = (tmp / "reports").glob("review-*.csv")
    with csv_path.open(newline="", encoding="utf-8-sig") as file:
        rows = list(csv.DictReader(file))
    yield (
        visits,
        Review(
            printed.getvalue(),
            csv_path,
            rows,
            csv_path.with_suffix(".md").read_text(encoding="utf-8"),
            csv_path.with_suffix(".png"),
        ),
    )


@pytest.fixture
def visits(visits_and_review: tuple[Visits, Review]) -> Visits:
    return visits_and_review[0]


@pytest.fixture
def report(visits_and_review: tuple[Visits, Review]) -> Review:
    return visits_and_review[1]


def test_review_file_has_the_columns_staff_fill_in(report: Review) -> None:
    assert list(report.rows[0]) == review.COLUMNS
    assert all(row["correct_intent"] == "" for row in report.rows)


def test_the_two_cost_questions_are_one_group_guessed_out_of_scope(report: Review) -> None:
    row = report.row_of(COST_QUESTIONS[0])
    assert {row["example"], row["other_examples"]} == set(COST_QUESTIONS)
    assert (row["count"], row["guessed_intent"], row["reason"]) == ("2", "out_of_scope", "unknown")
    assert report.rows[0] is row  # the most frequent first


def test_rejected_suggestion_is_listed_with_the_models_guess(
    report: Review, visits: Visits, domain: dict
) -> None:
    row = report.row_of(visits.vague)
    assert row["reason"] == "rejected suggestion"
    base = row["guessed_intent"].partition("/")[0]
    assert base in domain["intents"], row
    if base == "faq":
        assert f"utter_{row['guessed_intent']}" in domain["responses"]


def test_only_what_was_not_answered_is_listed(report: Review) -> None:
    listed = {e for r in report.rows for e in [r["example"], *r["other_examples"].split(" | ")] if e}
    assert not listed & {
        "what is scar relaxation?",
        "hello",
        "what are the benefits",
        "book a consultation",
        SOMETHING_ELSE,
    }


def test_emails_and_phone_numbers_are_masked_everywhere(report: Review) -> None:
    row = report.row_of("can you email the price list to [email] or call me on [phone]")
    assert row["reason"] in ("fallback", "unknown")
    everything = report.csv_path.read_text(encoding="utf-8-sig") + report.markdown + report.stdout
    for secret in (EMAIL, "jane.doe", PHONE, "07911", "123456"):
        assert secret not in everything


def test_numbers_match_what_visitors_saw(report: Review, visits: Visits) -> None:
    messages = sum(visits.got[kind] for kind in ("answered", "fallback", "unknown"))
    assert report.number("Conversations") == str(len(visits.senders))
    assert report.number("Visitor messages") == str(messages)
    assert report.number("Answered").endswith(f"({visits.got['answered']} of {messages})")
    assert report.number("Not understood (fallback)").endswith(f"({visits.got['fallback']} of {messages})")
    assert report.number('"I don\'t have that information"').endswith(
        f"({visits.got['unknown']} of {messages})"
    )
    assert report.number("Handed to staff (the team's details given)").endswith(
        f"({visits.got['handed']} of {messages})"
    )
    assert (report.number("Bookings started"), report.number("Bookings completed")) == ("1", "0")
    assert f"| Conversations | {len(visits.senders)} |" in report.markdown
    assert f"]({report.chart.name})" in report.markdown


def test_chart_is_a_png(report: Review) -> None:
    assert report.chart.read_bytes().startswith(PNG_SIGNATURE)


def test_an_empty_store_gives_an_empty_review(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'none.db'}")
    assert (
        review_command.main(
            ["report", "--root", str(tmp_path), "--since", "2026-01-01", "--until", "2026-01-07"]
        )
        == 0
    )
    assert "Visitor messages: 0" in capsys.readouterr().out
    assert (tmp_path / "reports" / "review-2026-01-07.csv").read_text(
        encoding="utf-8-sig"
    ).strip() == ",".join(review.COLUMNS)
    assert not (tmp_path / "none.db").exists()


# ------------------------------------------------------------------------------ merge


def project_copy(tmp_path: Path) -> Path:
    """A copy of the project's data, answers, tests, document and actions to merge into."""
    root = tmp_path / "project"
    for part in PARTS:
        source = PROJECT_ROOT / part
        if source.is_dir():
            shutil.copytree(source, root / part, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            (root / part).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, root / part)
    return root


def annotate(report: Review, path: Path, answers: dict[str, str]) -> Path:
    """The review file as staff save it: correct_intent filled in for some examples."""
    with path.open("w", newline="", encoding="utf-8-sig") as file:
        writer = csv.DictWriter(file, fieldnames=review.COLUMNS)
        writer.writeheader()
        writer.writerows({**row, "correct_intent": answers.get(row["example"], "")} for row in report.rows)
    return path


def spreadsheet_row(report: Review, example: str) -> int:
    """The row number a spreadsheet shows for a review row (the header is row 1)."""
    return report.rows.index(report.row_of(example)) + 2


def examples_of(nlu_file: Path, intent: str) -> list[str]:
    """The example questions of one intent in an NLU file."""
    [block] = [
        b for b in yaml.safe_load(nlu_file.read_text(encoding="utf-8"))["nlu"] if b.get("intent") == intent
    ]
    return [line[2:].strip() for line in block["examples"].splitlines()]


def test_merge_adds_annotated_examples_and_the_data_still_passes_the_checks(
    tmp_path: Path, report: Review, visits: Visits, capsys: pytest.CaptureFixture[str]
) -> None:
    root = project_copy(tmp_path)
    personal = report.row_of("can you email the price list to [email] or call me on [phone]")
    annotated = annotate(
        report, tmp_path / "review.csv", {visits.vague: "faq/benefits", personal["example"]: "out_of_scope"}
    )
    before = examples_of(root / "data/nlu/faq.yml", "faq/benefits")

    assert review_command.main(["merge", str(annotated), "--root", str(root)]) == 0
    out = capsys.readouterr().out
    assert examples_of(root / "data/nlu/faq.yml", "faq/benefits") == [*before, visits.vague]
    assert f'{annotated}:{spreadsheet_row(report, personal["example"])}: skipped' in out
    assert "[phone]" not in (root / "data/nlu/out_of_scope.yml").read_text(encoding="utf-8")
    assert "make validate" in out and "make train" in out
    assert validate_command.main(["--root", str(root)]) == 0, capsys.readouterr().out

    assert review_command.main(["merge", str(annotated), "--root", str(root)]) == 0  # again: no copies
    assert "Nothing new to add" in capsys.readouterr().out
    assert examples_of(root / "data/nlu/faq.yml", "faq/benefits").count(visits.vague) == 1


def test_merge_refuses_an_unknown_intent_and_changes_nothing(
    tmp_path: Path, report: Review, visits: Visits, capsys: pytest.CaptureFixture[str]
) -> None:
    root = project_copy(tmp_path)
    data = {p: p.read_bytes() for p in (root / "data").rglob("*.yml")}
    annotated = annotate(
        report, tmp_path / "review.csv", {visits.vague: "faq/benefits", COST_QUESTIONS[0]: "faq/prices"}
    )

    assert review_command.main(["merge", str(annotated), "--root", str(root)]) == 1
    out = capsys.readouterr().out
    row = spreadsheet_row(report, COST_QUESTIONS[0])
    assert f'{annotated}:{row}: "faq/prices" is not an intent of the assistant' in out
    assert "faq/benefits" in out and "Nothing was merged" in out
    assert {p: p.read_bytes() for p in (root / "data").rglob("*.yml")} == data


@pytest.mark.parametrize(
    "text, masked",
    [
        ("call me on 07911 123456", "call me on [phone]"),
        ("+44 7911 123456 after 5", "[phone] after 5"),
        ("ring (020) 7946-0000!", "ring [phone]!"),
        ("mail a.b+c@x.co.uk, thanks", "mail [email], thanks"),
        ("I had 3 sessions in 2019, 12 weeks apart", "I had 3 sessions in 2019, 12 weeks apart"),
    ],
)
def test_mask(text: str, masked: str) -> None:
    assert review.mask(text) == masked
