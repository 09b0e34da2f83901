"""The project's NLU components decide what the visitor gets in risky cases."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from rasa.shared.nlu.training_data.message import Message

from common.paths import PROJECT_ROOT
from components.deflection import DeflectionAwareFallbackClassifier
from components.faq_confidence import FaqConfidenceGuard
from components.pattern_override import PatternIntentOverride


def pipeline_config(intent: str) -> dict[str, Any]:
    """The configuration config.yml gives the pattern override for `intent`."""
    pipeline = yaml.safe_load((PROJECT_ROOT / "config.yml").read_text())["pipeline"]
    return next(c for c in pipeline if c.get("intent") == intent)


def classified(text: str, intent: str, confidence: float = 0.9, answers: list | None = None) -> Message:
    """A message as the classifiers leave it: an intent and, for faq, ranked answers."""
    data: dict[str, Any] = {
        "text": text,
        "intent": {"name": intent, "confidence": confidence},
        "intent_ranking": [{"name": intent, "confidence": confidence}],
    }
    if answers is not None:
        ranking = [{"intent_response_key": f"faq/{key}", "confidence": c} for key, c in answers]
        data["response_selector"] = {
            "faq": {
                "ranking": ranking,
                "response": {
                    "intent_response_key": ranking[0]["intent_response_key"],
                    "confidence": ranking[0]["confidence"],
                },
            }
        }
    return Message(data=data)


@pytest.fixture(scope="module")
def urgent() -> PatternIntentOverride:
    return PatternIntentOverride(pipeline_config("urgent_symptoms"))


@pytest.fixture(scope="module")
def no_words() -> PatternIntentOverride:
    return PatternIntentOverride(pipeline_config("unclear"))


@pytest.mark.parametrize(
    "text",
    [
        "there's pus coming out of my scar",
        "my scar is oozing and smells",
        "I've got a fever since the treatment",
        "the redness is spreading up my arm",
        "it won't stop bleeding",
        "my wound has split open",
        "my stitches burst last night",
        "I'm in severe pain",
        "my lips are swelling up",
        "I think my scar is infected",
    ],
)
def test_urgent_symptoms_override_any_prediction(urgent: PatternIntentOverride, text: str) -> None:
    message = urgent.process([classified(text, "faq", 0.99)])[0]
    assert message.get("intent")["name"] == "urgent_symptoms"
    assert message.get("intent_ranking")[0]["name"] == "urgent_symptoms"


@pytest.mark.parametrize(
    "text",
    [
        "how does scar relaxation work",
        "what causes pigmentation",
        "how long until I see results",
        '/faq{"faq_topic":"benefits"}',
    ],
)
def test_ordinary_questions_keep_their_intent(urgent: PatternIntentOverride, text: str) -> None:
    assert urgent.process([classified(text, "faq")])[0].get("intent")["name"] == "faq"


@pytest.mark.parametrize("text", ["", "   ", "😀😀😀", "?!...", "👍 🎉"])
def test_messages_without_words_are_unclear(no_words: PatternIntentOverride, text: str) -> None:
    assert no_words.process([classified(text, "greet")])[0].get("intent")["name"] == "unclear"


@pytest.mark.parametrize("text", ["hi 😀", "¿cuánto cuesta?", "ok"])
def test_messages_with_words_are_left_alone(no_words: PatternIntentOverride, text: str) -> None:
    assert no_words.process([classified(text, "greet")])[0].get("intent")["name"] == "greet"


def guard() -> FaqConfidenceGuard:
    config = next(
        c
        for c in yaml.safe_load((PROJECT_ROOT / "config.yml").read_text())["pipeline"]
        if c["name"].endswith("FaqConfidenceGuard")
    )
    return FaqConfidenceGuard({**FaqConfidenceGuard.get_default_config(), **config})


def test_confident_faq_answer_is_kept() -> None:
    message = guard().process(
        [classified("what is it", "faq", 0.99, [("what_is", 0.95), ("benefits", 0.03)])]
    )[0]
    assert message.get("intent")["name"] == "faq"


def test_weak_faq_answer_falls_back_even_if_the_intent_is_certain() -> None:
    message = guard().process(
        [classified("who won the cup", "faq", 0.99, [("benefits", 0.3), ("what_is", 0.2)])]
    )[0]
    assert message.get("intent")["name"] == "nlu_fallback"
    assert message.get("intent_ranking")[1]["name"] == "faq"  # kept for "did you mean"


def test_ambiguous_faq_answer_falls_back() -> None:
    message = guard().process(
        [classified("dark", "faq", 0.99, [("what_is_pih", 0.52), ("pih_causes", 0.46)])]
    )[0]
    assert message.get("intent")["name"] == "nlu_fallback"


def test_other_intents_are_not_touched_by_the_faq_guard() -> None:
    assert guard().process([classified("hi", "greet", 0.99)])[0].get("intent")["name"] == "greet"


@pytest.fixture(scope="module")
def fallback() -> DeflectionAwareFallbackClassifier:
    """The fallback classifier as config.yml configures it."""
    step = next(
        c
        for c in yaml.safe_load((PROJECT_ROOT / "config.yml").read_text())["pipeline"]
        if c["name"].endswith("DeflectionAwareFallbackClassifier")
    )
    return DeflectionAwareFallbackClassifier(
        {**DeflectionAwareFallbackClassifier.get_default_config(), **step}
    )


def ranked(*intents: tuple) -> Message:
    """A message as the intent classifier leaves it, with this ranking."""
    ranking = [{"name": n, "confidence": c} for n, c in intents]
    return Message(data={"text": "x", "intent": dict(ranking[0]), "intent_ranking": ranking})


@pytest.mark.parametrize(
    "intents, expected",
    [
        # Likely off-topic or personal-medical: the visitor is told the document does not say.
        ([("out_of_scope", 0.55), ("faq", 0.40)], "out_of_scope"),
        ([("medical_advice", 0.50), ("out_of_scope", 0.45)], "medical_advice"),
        # Not likely enough, or an intent that answers something: "did you mean...?" as before.
        ([("out_of_scope", 0.45), ("faq", 0.40)], "nlu_fallback"),
        ([("faq", 0.55), ("out_of_scope", 0.40)], "nlu_fallback"),
        ([("greet", 0.60), ("thanks", 0.30)], "nlu_fallback"),
        ([("faq", 0.90), ("out_of_scope", 0.05)], "faq"),
    ],
)
def test_fallback_lets_a_likely_deflection_through(
    fallback: DeflectionAwareFallbackClassifier, intents: list, expected: str
) -> None:
    assert fallback.process([ranked(*intents)])[0].get("intent")["name"] == expected
