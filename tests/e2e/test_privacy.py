"""Personal data never becomes training data or history, and erasure reaches every copy (issue 20).

Real servers on loopback (SQLite: the run's shared `live` stack) hold real conversations; the
console's services work on a git copy of the project, as the console does. The last test goes
through every path that writes to the data for one visitor, erases that person, then searches
the repository's whole history and every table of the database for their words.
"""

from __future__ import annotations

import re
import subprocess
import time
import uuid
from datetime import datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from common.clinic import load_settings
from staff.service import bookings as booking_service
from staff.service import db, inbox, numbers, review, stories
from staff.service.validate import normalise
from tests.helpers import LiveAssistant, open_day, project_copy

pytestmark = pytest.mark.e2e

REFERENCE = re.compile(r"SR-[A-Z2-7]{8}")
SCAR = "acne scar on my left cheek, about 2 years old"


@pytest.fixture(scope="module")
def servers(live: LiveAssistant) -> LiveAssistant:
    """The servers this test run shares (tests/conftest.py `live`): each test has visitors of its own."""
    return live


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """The project the console edits: a git copy."""
    return project_copy(tmp_path / "project")


def fresh(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def book(assistant: LiveAssistant, me: str, name: str, contact: str, scar: str) -> str:
    """A whole consultation request with this scar, confirmed; its reference."""
    day = open_day()
    assistant.texts(me, "book a consultation")
    for answer in [name, contact, f"{day.day} {day:%B}", "afternoon", scar, "/affirm"]:
        assistant.texts(me, answer)
    saved = " ".join(assistant.texts(me, "/affirm"))
    match = REFERENCE.search(saved)
    assert match, saved
    return match.group()


def leave_a_message(assistant: LiveAssistant, me: str, name: str, contact: str, question: str) -> str:
    """The leave-a-message form, answered and sent; what the assistant said at the end."""
    assistant.texts(me, "/leave_message")
    for answer in [name, contact, question, "/affirm"]:
        assistant.texts(me, answer)
    return " ".join(assistant.texts(me, "/affirm"))


def inbox_texts(assistant: LiveAssistant) -> list[str]:
    """Every wording the Unanswered questions inbox shows now."""
    engine = db.engine(assistant.database_url)
    groups = inbox.inbox(engine, assistant.database_url, load_settings().zone)
    return [member.text for group in groups for member in group.members]


def member(assistant: LiveAssistant, text: str) -> inbox.Member:
    """The inbox's member for this wording (it must be there)."""
    engine = db.engine(assistant.database_url)
    deadline = time.monotonic() + 15  # the server may still be saving the turn it answered
    while True:
        groups = inbox.inbox(engine, assistant.database_url, load_settings().zone)
        found = [m for g in groups for m in g.members if normalise(m.text) == normalise(text)]
        if found or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert found, f"{text!r} is not in the inbox: {[m.text for g in groups for m in g.members]}"
    return found[0]


def everything_stored(url: str) -> str:
    """Every row of every table of the database, as one text (each row after its table's name).

    Whole numbers are left out: they are row ids and counts (the shared stack's events table
    passes id 1984, which is not a date of birth); every personal detail is stored as text.
    """
    engine = sa.create_engine(url)
    try:
        names = sa.inspect(engine).get_table_names()
        with engine.connect() as conn:
            return "\n".join(
                f"{name}: {tuple(v for v in row if isinstance(v, bool) or not isinstance(v, int))!r}"
                for name in names
                for row in conn.execute(sa.text(f'SELECT * FROM "{name}"'))
            )
    finally:
        engine.dispose()


def holding(text: str, words: list[str]) -> list[str]:
    """The lines of `text` (rows, or lines of the history) that hold any of `words`, ignoring case.

    A word counts only on its own, not inside a longer run of letters and digits: "1984" must
    find a date of birth, not a timestamp (1796424780.5721984) or a random id that contains it.
    """
    found = re.compile("|".join(rf"(?<![0-9a-z]){re.escape(w.lower())}(?![0-9a-z])" for w in words))
    return [line[:300] for line in text.splitlines() if found.search(line.lower())]


def git_history(root: Path) -> str:
    """The repository's whole history with every change's text (git log -p --all)."""
    return subprocess.run(
        ["git", "log", "-p", "--all"], cwd=root, capture_output=True, text=True, check=True
    ).stdout


def test_answers_to_the_booking_form_never_reach_the_inbox_or_count_as_not_understood(
    servers: LiveAssistant,
) -> None:
    me = fresh("form")
    name, email = "Quilla Formsby", f"quilla.{uuid.uuid4().hex[:6]}@example.com"
    book(servers, me, name, email, SCAR)
    shown = " ".join(inbox_texts(servers)).lower()
    assert "acne scar on my left cheek" not in shown and "quilla" not in shown
    zone = load_settings().zone
    week = numbers.week(servers.database_url, datetime.now(zone).date(), zone)
    turns = [
        t for t in review.read_turns(servers.database_url, 0, 2e10) if t.sender == servers.conversation_id(me)
    ]
    answers = [t for t in turns if t.text in (name, SCAR)]
    assert len(answers) == 2 and all(numbers.category(t) == "answered" for t in answers)
    assert week.total.messages >= len(turns)


def test_forget_me_takes_the_inbox_decisions_on_the_visitors_words_with_it(
    servers: LiveAssistant, root: Path
) -> None:
    engine = db.engine(servers.database_url)
    me = fresh("decided")
    ignored = "can I bring my dog Biscuit along to the appointment"
    added = "do you sell gift vouchers for the treatment"
    servers.texts(me, ignored)
    servers.texts(me, added)
    inbox.mark(engine, [member(servers, ignored)], inbox.IGNORED, "erin")
    outcome = inbox.add_examples(engine, root, [member(servers, added)], inbox.OUT_OF_SCOPE, "erin")
    assert outcome.added, outcome
    assert added in (root / "data/nlu/out_of_scope.yml").read_text(encoding="utf-8")

    servers.texts(me, "forget me")
    servers.texts(me, "/affirm")
    stored = everything_stored(servers.database_url)
    assert "Biscuit" not in stored and "gift vouchers" not in stored
    # The console takes the example out of the data when it next shows the inbox.
    assert inbox.remove_erased_examples(engine, root, "erin") == 1
    assert added not in (root / "data/nlu/out_of_scope.yml").read_text(encoding="utf-8")
    last = subprocess.run(
        ["git", "log", "-1", "-p", "--format=%an%n%B"], cwd=root, capture_output=True, text=True, check=True
    ).stdout
    message, _, diff = last.partition("diff --git")
    assert "gift vouchers" not in message and "erased" in message
    changed = [line for line in diff.splitlines() if "gift vouchers" in line]
    assert len(changed) == 1 and changed[0].startswith("-") and changed[0].endswith(f"- {added}")


def test_erasing_a_person_after_every_path_that_writes_leaves_none_of_their_words_anywhere(
    servers: LiveAssistant, root: Path
) -> None:
    engine = db.engine(servers.database_url)
    clinic = load_settings()
    me = fresh("everything")
    name = "Quentin Zyxwell"
    email = f"quentin.zyxwell.{uuid.uuid4().hex[:6]}@example.com"
    phone = "07700 900461"
    scar = "zebra-striped scar on my left knee"
    personal = (
        "my name is Quentin and I was born on 3 March 1984, can I bring my dog along to the appointment"
    )
    generic = "do you offer the treatment as a gift for someone else"
    ignored = "I'm Quentin, is there a vending machine at the clinic"
    message = "could the nurse ring me about the zebra-striped knee"

    # Questions the assistant could not answer: one added, one refused, one ignored.
    servers.texts(me, generic)
    servers.texts(me, personal)
    servers.texts(me, ignored)
    outcome = inbox.add_examples(engine, root, [member(servers, personal)], inbox.OUT_OF_SCOPE, "erin")
    assert not outcome.added and outcome.skipped
    assert outcome.skipped[0][1].startswith("This question contains what looks like")
    inbox.mark(engine, [member(servers, ignored)], inbox.IGNORED, "erin")
    # The form answers (booking and leave a message), then the same words as a question.
    reference = book(servers, me, name, email, scar)
    leave_a_message(servers, me, name, phone, message)
    again = f"is a {scar} something you can treat"
    servers.texts(me, again)
    shown = inbox_texts(servers)
    assert not [t for t in shown if "zebra" in t and t != again], "form answers must never reach the inbox"
    if again in shown:  # the model may answer it; if not, its words are a stored request's
        refused = inbox.add_examples(engine, root, [member(servers, again)], inbox.OUT_OF_SCOPE, "erin")
        assert not refused.added and "consultation request" in refused.skipped[0][1]
    assert inbox.add_examples(engine, root, [member(servers, generic)], inbox.OUT_OF_SCOPE, "erin").added
    # The conversation saved as a training story and as a conversation test.
    turns = stories.conversation_turns(servers.database_url, servers.conversation_id(me))
    for test in (False, True):
        version = stories.stories_version(root)
        stories.add_story(root, f"privacy {test}", turns, test, version, "erin")

    # Reception's contact log names them too (booking_history: erased with the request).
    booking_service.set_status(store_of(servers), reference, "contacted", f"Rang Quentin on {phone}", "rita")
    assert holding(everything_stored(servers.database_url), ["Rang Quentin"])

    erasure = booking_service.erase_person(
        store_of(servers), clinic, [reference], root=root, staff_name="erin"
    )
    assert reference in erasure.requests and erasure.examples == 1

    history = git_history(root)
    stored = everything_stored(servers.database_url)
    words = [name, "Quentin", "Zyxwell", email, phone, "900461", "zebra", "3 March 1984", "1984"]
    assert holding(history, words) == []
    assert holding(stored, words) == []
    assert generic not in (root / "data/nlu/out_of_scope.yml").read_text(encoding="utf-8")


def store_of(assistant: LiveAssistant) -> booking_service.BookingStore:
    from common.records.bookings import get_store

    return get_store(assistant.database_url)
