"""Compare a candidate model with the live one, in plain words, and decide whether it may go live.

Both models answer the held-out questions (tests/heldout/: never training data) and the
candidate runs the conversation tests (tests/stories/, with Rasa's own test machinery, the
same as `rasa test core`). The report says how many questions each answers right, every
question whose answer changes (before -> after), every new wrong answer, and every failing
conversation test as the visitor's message and what the assistant did. `gate` lists why a
candidate may not be published (empty: it may).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from common import yamlio
from common.followup import resolve as resolve_follow_up
from common.names import FALLBACK_INTENT, RETRIEVAL_INTENT

FOLLOW_UP_INTENT = "faq_followup"
HELDOUT_QUESTIONS = Path("tests") / "heldout" / "nlu.yml"
HELDOUT_FIRST_TURNS = Path("tests") / "heldout" / "conversations.yml"
CONVERSATION_TESTS = Path("tests") / "stories"
# What the assistant does for each intent that is not an FAQ answer, as staff would say it.
PLAIN_INTENTS = {
    "affirm": "takes it as a yes",
    "deny": "takes it as a no",
    "ask_address": "gives the clinic's address",
    "ask_contact": "gives the clinic's contact details",
    "ask_for_person": "offers a person from the clinic (or to leave a message)",
    "ask_hours": "gives the opening hours",
    "book_consultation": "starts a consultation request",
    "bot_challenge": "says it is an automated assistant",
    "goodbye": "says goodbye",
    "greet": "greets the visitor",
    "help": "says what it can help with",
    "medical_advice": "says it cannot give personal medical advice",
    "out_of_scope": 'says "I don\'t have that information"',
    "thanks": "says you're welcome",
    "urgent_symptoms": "points to urgent medical help",
    FALLBACK_INTENT: "asks the visitor to rephrase",
}
PLAIN_ACTIONS = {
    "action_listen": "waited for the visitor",
    "action_answer_faq": "gave an FAQ answer",
    "action_answer_followup": "answered a follow-up question",
    "action_two_stage_fallback": "asked the visitor to rephrase",
    "action_default_fallback": "said it did not understand",
}


def effective_label(parse: dict[str, Any]) -> str:
    """The label the visitor effectively gets: `faq/<answer key>` for FAQs, else the intent.

    A follow-up (`faq_followup`) is resolved as at the start of a conversation, with no earlier
    answer (common/followup.py): the topic it gets, "I don't have that information", or a
    request to rephrase (counted as the fallback).
    """
    intent = parse["intent"]["name"]
    if intent == FOLLOW_UP_INTENT:
        topic = resolve_follow_up(parse.get("text") or "", None)
        if topic is None:
            return FALLBACK_INTENT
        return topic if topic == "out_of_scope" else f"{RETRIEVAL_INTENT}/{topic}"
    if intent != RETRIEVAL_INTENT:
        return intent
    return parse["response_selector"][RETRIEVAL_INTENT]["response"]["intent_response_key"]


def load_heldout(path: Path) -> list[tuple[str, str]]:
    """(text, gold label) of every held-out example; FAQ labels are `faq/<key>`."""
    from rasa.shared.nlu.training_data.formats.rasa_yaml import RasaYAMLReader

    return [(m.get("text"), m.get_full_intent()) for m in RasaYAMLReader().read(path).intent_examples]


def heldout_questions(root: Path) -> list[tuple[str, str]]:
    """The held-out questions and what each should get: tests/heldout/nlu.yml and the first turns."""
    questions = load_heldout(root / HELDOUT_QUESTIONS)
    turns = yamlio.load((root / HELDOUT_FIRST_TURNS).read_text(encoding="utf-8")) or {}
    for pairs in (turns.get("first_turn") or {}).values():
        questions += [(text, label) for label, text in pairs]
    return questions


@dataclass
class Change:
    """A held-out question whose answer differs between the live model and the candidate."""

    question: str
    expected: str
    before: str
    after: str


@dataclass
class FailedTest:
    """A conversation test the candidate fails, at its first wrong step."""

    name: str
    visitor: str
    expected: str
    did: str


@dataclass
class Comparison:
    """What the live model and the candidate answer, and what changes."""

    questions: int
    live_right: int
    candidate_right: int
    changes: list[Change]
    new_wrong: list[Change]
    tests: int
    failed_tests: list[FailedTest] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # the checks' findings (ungrounded answers...)
    live_sha256: str = ""

    def as_dict(self) -> dict[str, Any]:
        """The comparison as JSON-ready data (stored with the training run)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Comparison:
        """The comparison stored by `as_dict`."""
        values = dict(data)
        values["changes"] = [Change(**c) for c in data.get("changes", [])]
        values["new_wrong"] = [Change(**c) for c in data.get("new_wrong", [])]
        values["failed_tests"] = [FailedTest(**t) for t in data.get("failed_tests", [])]
        return cls(**values)


def gate(comparison: Comparison) -> list[str]:
    """Why the candidate may not go live, in plain words (empty: it may)."""
    reasons = []
    if comparison.problems:
        reasons.append(
            f"The checks found {len(comparison.problems)} problem(s) in the answers or data "
            "(such as an answer the clinic's document does not support): fix them first."
        )
    if comparison.new_wrong:
        reasons.append(
            f"It answers {len(comparison.new_wrong)} held-out question(s) wrongly that the live "
            "model answers rightly."
        )
    if comparison.candidate_right < comparison.live_right:
        reasons.append(
            f"It answers fewer held-out questions rightly ({comparison.candidate_right} of "
            f"{comparison.questions}) than the live model ({comparison.live_right})."
        )
    if comparison.failed_tests:
        reasons.append(f"It fails {len(comparison.failed_tests)} conversation test(s).")
    return reasons


def compare(
    questions: Sequence[tuple[str, str]], live: Sequence[str], candidate: Sequence[str], describe: Any
) -> Comparison:
    """The comparison of two models' labels for the same questions; `describe` words a label."""
    changes, new_wrong = [], []
    for (text, gold), before, after in zip(questions, live, candidate):
        if before == after:
            continue
        change = Change(text, describe(gold), describe(before), describe(after))
        changes.append(change)
        if before == gold and after != gold:
            new_wrong.append(change)
    return Comparison(
        questions=len(questions),
        live_right=sum(p == g for (_, g), p in zip(questions, live)),
        candidate_right=sum(p == g for (_, g), p in zip(questions, candidate)),
        changes=changes,
        new_wrong=new_wrong,
        tests=0,
    )


class Describer:
    """Words for labels and actions, from the project's answers (button titles and texts)."""

    def __init__(self, titles: dict[str, str], responses: dict[str, Any]) -> None:
        self.titles = titles
        self.responses = responses

    def label(self, label: str) -> str:
        """What a visitor gets for this label ("the answer 'What is a scar?'", "starts a consultation")."""
        if label.startswith(f"{RETRIEVAL_INTENT}/"):
            key = label.split("/", 1)[1]
            return f'the answer "{self.titles.get(key, key.replace("_", " "))}"'
        return PLAIN_INTENTS.get(label, label.replace("_", " "))

    def action(self, name: str | None) -> str:
        """What the assistant did, as a visitor would see it."""
        if not name:
            return "nothing"
        if name in PLAIN_ACTIONS:
            return PLAIN_ACTIONS[name]
        variations = self.responses.get(name)
        if variations and isinstance(variations, list) and variations[0].get("text"):
            text = " ".join(str(variations[0]["text"]).split())
            return f'said "{text[:120]}{"..." if len(text) > 120 else ""}"'
        return name.removeprefix("action_").removeprefix("utter_").replace("_", " ")


def load_agent(model: Path) -> Any:
    """A trained model in this process, without Rasa's per-message debug log."""
    from rasa.core.agent import Agent
    from rasa.utils.common import configure_logging_and_warnings
    from rasa.utils.log_utils import configure_structlog

    from servers import model_load

    configure_logging_and_warnings(logging.WARNING)
    configure_structlog(logging.WARNING)
    model_load.install()  # the dialogue model built for prediction in seconds (as the Rasa server does)
    return Agent.load(str(model))


async def _labels(agent: Any, texts: Sequence[str]) -> list[str]:
    return [effective_label(await agent.parse_message(text)) for text in texts]


def labels(agent: Any, texts: Sequence[str]) -> list[str]:
    """What `agent` effectively answers to each text."""
    return asyncio.run(_labels(agent, texts))


def _first_failure(tracker: Any, describe: Describer) -> FailedTest:
    """The first wrong step of a failed test story, as the visitor's message and what happened."""
    from rasa.core.test import WronglyClassifiedUserUtterance, WronglyPredictedAction
    from rasa.shared.core.events import UserUttered

    visitor = "(the start of the conversation)"
    for event in tracker.events:
        if isinstance(event, WronglyClassifiedUserUtterance):
            said = event.text or event.intent_name or ""
            intended = event.intent.get("full_retrieval_intent_name") or event.intent_name or ""
            return FailedTest(
                tracker.sender_id,
                said,
                describe.label(intended),
                f"understood it as: {describe.label(event.predicted_intent or '')}",
            )
        if isinstance(event, UserUttered):
            visitor = event.text or event.intent_name or visitor
        if isinstance(event, WronglyPredictedAction):
            return FailedTest(
                tracker.sender_id,
                visitor,
                describe.action(event.action_name),
                describe.action(event.action_name_prediction),
            )
    return FailedTest(tracker.sender_id, visitor, "(see the test)", "(not what the test expects)")


async def _conversation_tests(agent: Any, stories: Path, describe: Describer) -> tuple[int, list[FailedTest]]:
    from rasa.core.test import _collect_story_predictions, _create_data_generator

    # As `rasa test core --e2e` (tests/e2e/test_conversations.py): each story's visitor text is
    # classified too, not only the actions after its labelled intent.
    trackers = _create_data_generator(str(stories), agent, None, True).generate_story_trackers()
    evaluation, _, _ = await _collect_story_predictions(trackers, agent, use_e2e=True)
    return len(trackers), [_first_failure(t, describe) for t in evaluation.failed_stories]


def conversation_tests(agent: Any, root: Path, describe: Describer) -> tuple[int, list[FailedTest]]:
    """How many conversation tests there are, and those `agent` fails (Rasa's `rasa test core --e2e`)."""
    return asyncio.run(_conversation_tests(agent, root / CONVERSATION_TESTS, describe))
