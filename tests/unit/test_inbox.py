"""The review inbox on conversations stored by Rasa's own SQL tracker store.

The feedback intents (issue 17: a thumbs-down after an answer, then "what was missing?")
may not exist in this domain yet, so the events are written as Rasa would store them.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from rasa.core.tracker_store import SQLTrackerStore
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import ActionExecuted, BotUttered, UserUttered
from rasa.shared.core.trackers import DialogueStateTracker

from common.paths import MODEL, PROJECT_ROOT
from staff.service import db, inbox, review

ANSWER = "Scar relaxation is a non-surgical treatment."
MISSING = "it did not say how many sessions I need"


def user(text: str, intent: str, confidence: float = 0.95) -> UserUttered:
    return UserUttered(
        text,
        {"name": intent, "confidence": confidence},
        parse_data={"intent": {"name": intent, "confidence": confidence}},
    )


def bot(text: str, response: str) -> BotUttered:
    return BotUttered(text, metadata={"utter_action": response})


def store_conversations(path: Path, conversations: dict[str, list]) -> str:
    """Save the conversations with Rasa's SQLTrackerStore; return the database URL."""
    store = SQLTrackerStore(Domain.empty(), dialect="sqlite", db=str(path))
    for sender, events in conversations.items():
        asyncio.run(store.save(DialogueStateTracker.from_events(sender, events)))
    return f"sqlite:///{path}"


@pytest.fixture
def url(tmp_path: Path) -> str:
    listen = ActionExecuted("action_listen")
    return store_conversations(
        tmp_path / "clinic.db",
        {
            "thumbs": [
                user("what is scar relaxation", "faq"),
                ActionExecuted("utter_faq"),
                bot(ANSWER, "utter_faq/what_is"),
                listen,
                user("/feedback_unhelpful", review.FEEDBACK_UNHELPFUL),
                ActionExecuted(review.ASK_FEEDBACK_MISSING),
                bot("What was missing?", review.ASK_FEEDBACK_MISSING),
                listen,
                user(MISSING, "faq", 0.4),
                ActionExecuted("utter_feedback_thanks"),
                bot("Thank you", "utter_feedback_thanks"),
                listen,
            ],
            "price": [
                user("how much does it cost", "out_of_scope"),
                ActionExecuted("utter_out_of_scope"),
                bot("I don't have that information.", "utter_out_of_scope"),
                listen,
                user("what is the price of a session", "out_of_scope"),
                ActionExecuted("utter_out_of_scope"),
                bot("I don't have that information.", "utter_out_of_scope"),
                listen,
                user("is there parking near the clinic", "out_of_scope"),
                ActionExecuted("utter_out_of_scope"),
                bot("I don't have that information.", "utter_out_of_scope"),
                listen,
            ],
        },
    )


def turns(url: str) -> list[review.Turn]:
    return review.read_turns(url, time.time() - 3600, time.time() + 60)


def test_a_thumbs_down_answer_is_in_the_inbox_with_what_the_visitor_said_was_missing(url: str) -> None:
    members = inbox.candidates(turns(url), set())
    [thumbs] = [m for m in members if m.text == "what is scar relaxation"]
    assert thumbs.reasons == {review.THUMBS_DOWN: 1}
    assert thumbs.explanations == [MISSING]
    assert MISSING not in [m.text for m in members]  # the explanation is not a question of its own
    assert not [m for m in members if m.text.startswith("/")]


def test_a_thumbs_down_answer_still_counts_as_answered(url: str) -> None:
    numbers = review.Numbers.of(turns(url))
    assert numbers.thumbs_down == 1 and numbers.outcomes["answered"] >= 1


def test_questions_are_grouped_by_meaning(url: str) -> None:
    groups = inbox.group(inbox.candidates(turns(url), set()), {})
    wordings = sorted(sorted(m.text for m in g.members) for g in groups)
    assert ["how much does it cost", "what is the price of a session"] in wordings
    assert ["is there parking near the clinic"] in wordings


def test_a_decided_question_leaves_the_inbox(url: str) -> None:
    engine = db.engine(url)
    [parking] = [m for m in inbox.candidates(turns(url), set()) if "parking" in m.text]
    inbox.mark(engine, [parking], inbox.NEW_TOPIC, "eddie")
    assert "parking" not in " ".join(m.text for m in inbox.candidates(turns(url), inbox.decided_keys(engine)))
    assert [row["text"] for row in inbox.new_topics(engine)] == ["is there parking near the clinic"]


def test_the_topics_offered_are_the_answers_titles_and_never_the_form_filling_intents() -> None:
    """Issue 21: the list next to "Add" showed affirm, inform, faq/results_time..."""
    offered = inbox.choices(PROJECT_ROOT)
    labels = [c.label for c in offered]
    assert "How long do results take?" in labels and "Who is it for?" in labels
    assert labels[-1] == inbox.OUT_OF_SCOPE_LABEL
    internal = {"affirm", "deny", "inform", "change_booking_field", "faq_followup", "cancel", "unclear"}
    assert not internal & {c.intent for c in offered}
    assert not [label for label in labels if "_" in label or "faq/" in label]
    for choice in offered:  # what the page sends names the same question, without "faq/"
        assert "faq/" not in choice.value and inbox.intent_of(choice.value) == choice.intent


def test_an_addition_nearer_another_question_is_found_with_the_trained_models_examples() -> None:
    """The case of the issue: an acne question on the back is no "who is it for?" question."""
    [nearer] = inbox.nearer_elsewhere(
        PROJECT_ROOT, ["can you treat acne scars on my back"], "faq/who_for", MODEL
    )
    assert nearer.chosen == "Who is it for?" and nearer.other == inbox.OUT_OF_SCOPE_TITLE
    fine = ["how quickly will i see a difference"]
    assert inbox.nearer_elsewhere(PROJECT_ROOT, fine, "faq/results_time", MODEL) == []
