"""Personal data in visitors' words: screened out of the training data, taken away by erasure (issue 20).

Conversations are stored with Rasa's own SQL tracker store in a real SQLite file; additions
go to a git copy of the project, as the console's do.
"""

from __future__ import annotations

import asyncio
import csv
import subprocess
import time
from datetime import date
from pathlib import Path

import pytest
from rasa.core.tracker_store import SQLTrackerStore
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import (
    ActionExecuted,
    ActiveLoop,
    BotUttered,
    ConversationPaused,
    ConversationResumed,
    SlotSet,
    UserUttered,
)
from rasa.shared.core.trackers import DialogueStateTracker

from common.names import FALLBACK_INTENT
from common.personal_data import Screen
from common.records import conversations, tables
from common.records.bookings import BookingRequest, BookingStore
from staff.commands import review as review_command
from staff.service import content, db, inbox, numbers, review, stories
from tests.helpers import project_copy

SCAR = "acne scar on my left cheek, about 2 years old"
MESSAGE = "please ring me about the keloid on my earlobe"
LISTEN = ActionExecuted("action_listen")


def user(text: str, intent: str, guess: str = "inform") -> UserUttered:
    ranking = [{"name": intent, "confidence": 0.3}, {"name": guess, "confidence": 0.2}]
    parse = {"intent": {"name": intent, "confidence": 0.3}, "intent_ranking": ranking, "text": text}
    return UserUttered(text, {"name": intent, "confidence": 0.3}, parse_data=parse)


def unknown(text: str) -> list:
    """A question the assistant does not have the answer to."""
    return [
        user(text, "out_of_scope"),
        ActionExecuted("utter_out_of_scope"),
        BotUttered("I don't have that information.", metadata={"utter_action": "utter_out_of_scope"}),
        LISTEN,
    ]


def form_answer(text: str, slot: str) -> list:
    """An answer to a form's question that the model did not understand (as Rasa stores it)."""
    return [
        SlotSet("requested_slot", slot),
        LISTEN,
        user(text, FALLBACK_INTENT),
        ActionExecuted("booking_form"),
    ]


def store_conversations(path: Path, stored: dict[str, list]) -> str:
    store = SQLTrackerStore(Domain.empty(), dialect="sqlite", db=str(path))
    for sender, events in stored.items():
        asyncio.run(store.save(DialogueStateTracker.from_events(sender, events)))
    return f"sqlite:///{path}"


@pytest.fixture
def url(tmp_path: Path) -> str:
    return store_conversations(
        tmp_path / "clinic.db",
        {
            "booker": [
                user("book a consultation", "book_consultation"),
                ActionExecuted("action_offer_booking"),
                ActionExecuted("booking_form"),
                ActiveLoop("booking_form"),
                *form_answer("Quilla Formsby", "booking_name"),
                *form_answer(SCAR, "booking_scar"),
                *form_answer(MESSAGE, "booking_question"),
                ActiveLoop(None),
                LISTEN,
                *unknown("do you sell gift vouchers for the treatment"),
                *unknown("can I bring my dog Biscuit along"),
                *unknown("my name is Quilla, can you check my file"),
            ],
            "other": unknown("do you sell gift vouchers for the treatment"),
            "live": [
                *unknown("is there parking near the clinic"),
                user("can I talk to a person", "live_chat"),
                ActionExecuted("action_request_live_chat"),
                ConversationPaused(),
                user("it's Zebedee Pausewell, the scar under my chin", FALLBACK_INTENT),
                ConversationResumed(),
                LISTEN,
                *unknown("do you have a waiting room"),
            ],
        },
    )


def turns(url: str) -> list[review.Turn]:
    return review.read_turns(url, time.time() - 3600, time.time() + 60)


def member(url: str, text: str) -> inbox.Member:
    [found] = [m for m in inbox.candidates(turns(url), set()) if m.text == text]
    return found


def test_answers_to_a_form_never_reach_the_inbox_or_count_as_not_understood(url: str) -> None:
    texts = [m.text for m in inbox.candidates(turns(url), set())]
    assert SCAR not in texts and "Quilla Formsby" not in texts and MESSAGE not in texts
    assert "can I bring my dog Biscuit along" in texts  # questions after the form still do
    answers = [t for t in turns(url) if t.text in (SCAR, "Quilla Formsby", MESSAGE)]
    assert len(answers) == 3 and {numbers.category(t) for t in answers} == {"answered"}
    assert review.Numbers.of(turns(url)).outcomes[review.FALLBACK] == 0


def test_what_a_visitor_writes_to_staff_in_a_live_chat_never_reaches_the_inbox(url: str) -> None:
    texts = [m.text for m in inbox.candidates(turns(url), set())]
    assert "it's Zebedee Pausewell, the scar under my chin" not in texts
    assert {"is there parking near the clinic", "do you have a waiting room"} <= set(texts)


@pytest.mark.parametrize(
    ("text", "what"),
    [
        ("can you mail it to jo.bloggs@example.com", "an email address"),
        ("call me on 07911 123456", "a phone number"),
        ("ring +44 20 7946 0018 please", "a phone number"),
        ("I was born on 3 March 1984", "a date"),
        ("is it ok on 12/03/1990", "a date"),
        ("my name is anna, do you treat keloids", "someone's name"),
        ("Hi, I'm Anna, is it painful", "someone's name"),
    ],
)
def test_personal_data_is_refused_with_a_plain_reason(text: str, what: str) -> None:
    reason = Screen().reason(text)
    assert reason is not None and what in reason
    assert reason.endswith("it cannot be added to the assistant's examples")
    assert not any(word in reason for word in ("intent", "nlu", "yml", "_", "review_decisions"))


@pytest.mark.parametrize(
    "text",
    [
        "how much does it cost",
        "I'm worried about my scar",
        "how many sessions do I need",
        "is it safe in 2024",
        "can 3 sessions cost 300 pounds",
        "call me back about prices",
    ],
)
def test_ordinary_questions_pass_the_screen(text: str) -> None:
    assert Screen().reason(text) is None


def test_the_words_of_a_stored_request_are_refused_and_scrubbed() -> None:
    screen = Screen.of(
        "GB",
        [{"name": "Quentin Zyxwell", "contact": "+447700900461", "scar": "zebra-striped scar on my knee"}],
    )
    for text in ("is zyxwell here", "is a zebra striped scar on my knee treatable", "call 7700 900461"):
        assert screen.reason(text) is not None, text
    assert "zebra" not in screen.scrub("is a zebra-striped scar on my knee treatable")
    assert screen.reason("do you treat knee scars") is None


def test_the_inbox_refuses_personal_data_and_the_words_of_stored_requests(url: str, tmp_path: Path) -> None:
    root = project_copy(tmp_path / "project")
    engine = db.engine(url)
    BookingStore(url, secret=b"x" * 32).save(
        BookingRequest("Jo Biscuit", "jo@example.com", "email", date(2026, 12, 9), "morning", "a scar"), "s"
    )
    before = (root / "data/nlu/out_of_scope.yml").read_text(encoding="utf-8")
    for text, why in [
        ("my name is Quilla, can you check my file", "someone's name"),
        ("can I bring my dog Biscuit along", "consultation request"),
    ]:
        outcome = inbox.add_examples(engine, root, [member(url, text)], inbox.OUT_OF_SCOPE, "erin")
        assert not outcome.added and why in outcome.skipped[0][1], outcome
    assert (root / "data/nlu/out_of_scope.yml").read_text(encoding="utf-8") == before


def test_erasing_a_conversation_takes_its_decisions_and_added_examples(url: str, tmp_path: Path) -> None:
    root = project_copy(tmp_path / "project")
    engine = db.engine(url)
    added = "do you sell gift vouchers for the treatment"
    inbox.mark(engine, [member(url, "can I bring my dog Biscuit along")], inbox.IGNORED, "erin")
    assert inbox.add_examples(engine, root, [member(url, added)], inbox.OUT_OF_SCOPE, "erin").added

    conversations.erase(engine, ["booker"])
    with engine.connect() as conn:
        left = [tuple(r) for r in conn.execute(tables.review_decisions.select())]
    assert [(r[2], r[3]) for r in left] == [("", conversations.ERASED_DECISION)]
    assert inbox.remove_erased_examples(engine, root, "erin") == 1
    assert added not in (root / "data/nlu/out_of_scope.yml").read_text(encoding="utf-8")
    assert inbox.decided_keys(engine) == set()
    message = subprocess.run(
        ["git", "log", "-1", "--format=%an %B"], cwd=root, capture_output=True, text=True, check=True
    ).stdout
    assert message.startswith("erin ") and "gift" not in message and "erased" in message
    # An editor's undo from History cannot put the erased visitor's words back.
    sha = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True
    ).stdout.strip()
    with pytest.raises(content.Refused, match="cannot be undone"):
        content.undo(root, sha, "erin")
    assert added not in (root / "data/nlu/out_of_scope.yml").read_text(encoding="utf-8")


def test_a_story_from_a_conversation_keeps_no_form_answer_or_personal_words(url: str) -> None:
    kept = " ".join(turn.text for turn in stories.conversation_turns(url, "booker"))
    assert "Quilla" not in kept and "acne scar" not in kept and "earlobe" not in kept
    assert "check my file" in kept  # the question itself stays, with an example name


def test_clinic_review_merge_refuses_personal_data_and_the_words_of_stored_requests(
    url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    root = project_copy(tmp_path / "project")
    monkeypatch.setenv("DATABASE_URL", url)
    BookingStore(url, secret=b"x" * 32).save(
        BookingRequest("Jo Biscuit", "jo@example.com", "email", date(2026, 12, 9), "morning", "a scar"), "s"
    )
    sheet = tmp_path / "review.csv"
    with sheet.open("w", newline="", encoding="utf-8-sig") as file:
        writer = csv.DictWriter(file, fieldnames=review.COLUMNS)
        writer.writeheader()
        for example in ("I'm Anna, is it painful", "can Biscuit come too", "do you sell gift vouchers"):
            writer.writerow({"count": 1, "example": example, "correct_intent": "out_of_scope"})
    assert review_command.main(["merge", str(sheet), "--root", str(root)]) == 0
    printed = capsys.readouterr().out
    kept = (root / "data/nlu/out_of_scope.yml").read_text(encoding="utf-8")
    assert "do you sell gift vouchers" in kept and "Anna" not in kept and "Biscuit" not in kept
    assert "what looks like someone's name" in printed and "consultation request" in printed


def test_a_reply_to_did_you_mean_is_not_a_form_answer(tmp_path: Path) -> None:
    url = store_conversations(
        tmp_path / "clinic.db",
        {
            "vague": [
                user("skin", FALLBACK_INTENT),
                ActionExecuted("action_two_stage_fallback"),
                ActiveLoop("action_two_stage_fallback"),
                BotUttered("Did you mean...?", metadata={"utter_action": "utter_did_you_mean"}),
                LISTEN,
                user("/out_of_scope", "out_of_scope"),
                ActionExecuted("action_two_stage_fallback"),
                BotUttered("Could you say it another way?", metadata={"utter_action": "utter_ask_rephrase"}),
                ActiveLoop(None),
                LISTEN,
            ]
        },
    )
    assert [(t.text, t.in_form, t.outcome) for t in turns(url)] == [
        ("skin", False, review.FALLBACK),
        ("/out_of_scope", False, review.FALLBACK),
    ]
