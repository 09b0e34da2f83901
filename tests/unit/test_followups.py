"""Follow-up questions, "did that help?" and "what do you know about me?": what the visitor gets."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import yaml
from rasa_sdk import Action, Tracker
from rasa_sdk.executor import CollectingDispatcher

from actions.fallback import ActionDefaultAskAffirmation
from actions.faq import ActionAnswerFaq, ActionAnswerFollowup, ActionFeedbackReceived
from actions.privacy import ActionWhatYouKnow, mask_contact, mask_name
from common.followup import OUT_OF_SCOPE, refers_back, resolve
from common.paths import DATA_DIR, HELDOUT_CONVERSATIONS
from staff.service.evaluate import FOLLOW_UP_INTENT


def tracker(
    message: dict[str, Any],
    slots: dict[str, Any] | None = None,
    events: list[dict[str, Any]] | None = None,
    active_loop: str | None = None,
) -> Tracker:
    loop = {"name": active_loop} if active_loop else {}
    return Tracker("visitor", slots or {}, message, events or [], False, None, loop, "action_listen")


def run(action: Action, domain: dict[str, Any], **kwargs: Any) -> tuple[list[dict[str, Any]], list]:
    dispatcher = CollectingDispatcher()
    events = asyncio.run(action.run(dispatcher, tracker(**kwargs), domain))
    assert all(m.get("response") in domain["responses"] for m in dispatcher.messages if m.get("response"))
    return dispatcher.messages, events


def button(key: str) -> dict[str, Any]:
    return {"text": "/faq", "intent": {"name": "faq"}, "entities": [{"entity": "faq_topic", "value": key}]}


@pytest.mark.parametrize(
    "last, follow_up, meant",
    [
        ("pih_causes", "will your treatment help with that", "benefits"),
        ("what_is", "how long does it take?", "results_time"),
        ("what_is", "and for men?", "who_for"),
        ("what_is_pih", "what causes it?", "pih_causes"),
        ("what_is_scar", "why do some heal badly?", "poor_healing"),
        ("what_is_scar", "why do they go dark?", "pih_causes"),
        ("pih_causes", "what's that called?", "what_is_pih"),
        ("what_is", "tell me more", "how_it_works"),
        ("what_is_pih", "tell me more", "pih_causes"),
        ("what_is_pih", "how long does it take?", OUT_OF_SCOPE),
        ("benefits", "does it hurt though?", OUT_OF_SCOPE),
        ("what_is", "how many sessions?", OUT_OF_SCOPE),
        (None, "will it help with that", "benefits"),
        ("what_is", "banana", None),
    ],
)
def test_a_follow_up_is_read_in_the_context_of_the_last_answer(
    last: str | None, follow_up: str, meant: str | None
) -> None:
    assert resolve(follow_up, last) == meant


def follow_up_examples() -> list[str]:
    """The training examples of the follow-up intent (data/nlu/visitor.yml)."""
    nlu = yaml.safe_load((DATA_DIR / "nlu" / "visitor.yml").read_text(encoding="utf-8"))["nlu"]
    block = next(item["examples"] for item in nlu if item.get("intent") == FOLLOW_UP_INTENT)
    return [line.removeprefix("- ").strip() for line in block.splitlines() if line.strip()]


@pytest.mark.parametrize("last", ["results_time", "what_is_pih", "what_is_scar", None])
def test_every_follow_up_the_classifier_learns_gets_an_answer(last: str | None) -> None:
    """A message taught as a follow-up is one the resolver can read, else the visitor is asked to rephrase."""
    examples = follow_up_examples()
    assert len(examples) >= 20
    assert [text for text in examples if resolve(text, last) is None] == []


@pytest.mark.parametrize(
    "last, follow_up, meant",
    [
        ("pih_causes", "can you do anything for that", "benefits"),
        ("what_is_scar", "is there anything that can be done for it", "benefits"),
        ("how_it_works", "when would that start working", "results_time"),
        ("what_is_pih", "when would that start working", OUT_OF_SCOPE),
        ("pih_causes", "what do you call that", "what_is_pih"),
        ("results_time", "why does that take ages", "how_it_works"),
        ("results_time", "how come it takes weeks", "how_it_works"),
        ("how_it_works", "would it help the scar from my hernia repair", "who_for"),
    ],
)
def test_help_start_and_name_follow_ups_are_read(last: str | None, follow_up: str, meant: str) -> None:
    """Asking for help "for"/"done for" it, when it starts working, what it is called."""
    assert resolve(follow_up, last) == meant


def test_the_held_out_follow_ups_are_not_examples_of_the_resolver() -> None:
    """The held-out pairs exist and are at least 40 (tests/heldout/conversations.yml)."""
    pairs = yaml.safe_load(HELDOUT_CONVERSATIONS.read_text(encoding="utf-8"))["follow_ups"]
    assert len(pairs) >= 40 and all({"first", "then", "answer"} <= set(p) for p in pairs)


def test_an_answer_remembers_its_topic_and_asks_now_and_then_whether_it_helped(domain) -> None:
    sent, events = run(ActionAnswerFaq(), domain, message=button("what_is"))
    assert [m["response"] for m in sent] == ["utter_faq/what_is"]
    assert [b["payload"] for b in sent[0]["buttons"]] == ["/feedback_helpful", "/feedback_unhelpful"]
    slots = {e["name"]: e["value"] for e in events}
    assert slots == {"last_topic": "what_is", "faq_answers": 1}
    second, events = run(ActionAnswerFaq(), domain, message=button("benefits"), slots={"faq_answers": 1})
    assert not second[0].get("buttons") and {e["name"]: e["value"] for e in events}["faq_answers"] == 2
    fourth, _ = run(ActionAnswerFaq(), domain, message=button("benefits"), slots={"faq_answers": 3})
    assert fourth[0]["buttons"], "every third answer asks again"
    in_form, _ = run(ActionAnswerFaq(), domain, message=button("benefits"), active_loop="booking_form")
    assert not in_form[0].get("buttons"), "never in the middle of the booking form"


def test_a_follow_up_gets_the_answer_it_refers_to(domain) -> None:
    message = {"text": "will your treatment help with that", "intent": {"name": "faq_followup"}}
    sent, events = run(ActionAnswerFollowup(), domain, message=message, slots={"last_topic": "pih_causes"})
    assert [m["response"] for m in sent] == ["utter_faq/benefits"]
    assert {e["name"]: e["value"] for e in events}["last_topic"] == "benefits"


def test_a_follow_up_about_pain_or_price_is_not_answered(domain) -> None:
    message = {"text": "and does it hurt?", "intent": {"name": "faq_followup"}}
    sent, events = run(ActionAnswerFollowup(), domain, message=message, slots={"last_topic": "what_is"})
    assert [m["response"] for m in sent] == ["utter_out_of_scope"] and events == []


def test_an_unclear_follow_up_asks_to_rephrase(domain) -> None:
    message = {"text": "hmm and", "intent": {"name": "faq_followup"}}
    sent, _ = run(ActionAnswerFollowup(), domain, message=message, slots={"last_topic": "what_is"})
    assert [m["response"] for m in sent] == ["utter_ask_rephrase"]


def test_feedback_is_thanked_and_its_slot_emptied(domain) -> None:
    sent, events = run(ActionFeedbackReceived(), domain, message={"text": "the price"})
    assert [m["response"] for m in sent] == ["utter_feedback_missing_thanks"]
    assert events == [{"event": "slot", "timestamp": None, "name": "feedback_missing", "value": None}]
    assert "utter_ask_feedback_missing" in domain["responses"]
    assert {"feedback_helpful", "feedback_unhelpful"} <= set(domain["intents"])


def test_what_you_know_lists_this_conversation_masked(domain) -> None:
    events = [
        {
            "event": "user",
            "timestamp": 1_796_000_000,
            "text": "hi",
            "parse_data": {"intent": {"name": "greet"}},
        },
        {
            "event": "user",
            "timestamp": 1_796_000_060,
            "text": "/feedback_helpful",
            "parse_data": {"intent": {"name": "feedback_helpful"}},
        },
    ]
    slots = {
        "booking_name": "Jane Smith",
        "booking_contact": "+447911123456",
        "booking_scar": "c-section",
        "booking_reference": "SR-ABCDEFGH",
        "last_topic": "benefits",
        "retention_days": "90",
    }
    [message], _ = run(
        ActionWhatYouKnow(), domain, message={"text": "what do you know about me"}, slots=slots, events=events
    )
    facts = message["facts"]
    assert message["response"] == "utter_what_you_know"
    assert "the 2 message(s) you have typed" in facts
    assert "J*** S****" in facts and "Jane" not in facts
    assert "ending in 456" in facts and "7911" not in facts
    assert "c-section" not in facts and "description of your scar" in facts
    assert "SR-ABCDEFGH" in facts and "What are the benefits?" in facts
    assert "1 answer(s) you told me helped" in facts


def test_what_you_know_in_a_new_conversation(domain) -> None:
    [message], _ = run(ActionWhatYouKnow(), domain, message={"text": "what do you know about me"})
    assert message["facts"] == "• nothing yet"


def test_masks() -> None:
    assert mask_name("Siobhán O'Neill") == "S****** O******"
    assert mask_contact("jane.smith@example.com") == "j***@example.com"
    assert mask_contact("+447911123456") == "a phone number ending in 456"


def fallback_message(text: str) -> dict[str, Any]:
    return {"text": text, "intent": {"name": "nlu_fallback", "confidence": 0.4}, "entities": []}


def test_an_unclear_follow_up_is_answered_in_context_and_ends_the_fallback(domain) -> None:
    sent, events = run(
        ActionDefaultAskAffirmation(),
        domain,
        message=fallback_message("why does it happen?"),
        slots={"last_topic": "what_is_pih"},
    )
    assert [m["response"] for m in sent] == ["utter_faq/pih_causes"]
    assert events[-1] == {"event": "active_loop", "timestamp": None, "name": None}


def test_an_unclear_follow_up_about_pain_is_not_answered(domain) -> None:
    sent, _ = run(
        ActionDefaultAskAffirmation(),
        domain,
        message=fallback_message("does it hurt though?"),
        slots={"last_topic": "benefits"},
    )
    assert [m["response"] for m in sent] == ["utter_out_of_scope"]


@pytest.mark.parametrize(
    "text, slots",
    [
        ("why does it happen?", {}),  # a first message: never guessed from context
        ("why do scars itch in winter", {"last_topic": "what_is_pih"}),  # names its own subject
        ("/faq", {"last_topic": "what_is_pih"}),
    ],
)
def test_without_context_or_a_reference_back_did_you_mean_stays(domain, text: str, slots: dict) -> None:
    sent, _ = run(ActionDefaultAskAffirmation(), domain, message=fallback_message(text), slots=slots)
    assert [m["response"] for m in sent] in (["utter_did_you_mean"], ["utter_ask_rephrase"])


def test_what_refers_back() -> None:
    assert refers_back("and for men?") and refers_back("why does it happen?") and refers_back("tell me more")
    assert not refers_back("why do scars itch in winter")
