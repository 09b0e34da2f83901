"""Custom actions: what the visitor is sent, for each kind of message."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from rasa_sdk import Action, Tracker
from rasa_sdk.executor import CollectingDispatcher

from actions.booking.form import ActionOfferBooking
from actions.fallback import (
    ActionDefaultAskAffirmation,
    ActionDefaultAskRephrase,
    ActionDefaultFallback,
    ActionNotUnderstood,
)
from actions.faq import ActionAnswerFaq
from actions.session import ActionSessionStart
from common.clinic import ClinicSettings, load_settings

TOPICS = [
    "what_is",
    "how_it_works",
    "results_time",
    "who_for",
    "what_is_scar",
    "poor_healing",
    "what_is_pih",
    "pih_causes",
    "benefits",
]


def tracker(latest_message: dict[str, Any]) -> Tracker:
    return Tracker("visitor", {}, latest_message, [], False, None, {}, "action_listen")


def run(action: Action, message: dict[str, Any], domain: dict[str, Any]) -> tuple[list[dict[str, Any]], list]:
    """Run `action` on `message`; return (messages sent, events returned)."""
    dispatcher = CollectingDispatcher()
    events = asyncio.run(action.run(dispatcher, tracker(message), domain))
    unknown = [m["response"] for m in dispatcher.messages if m.get("response") not in domain["responses"]]
    assert not unknown, f"{action.name()} sends responses missing from the domain: {unknown}"
    return dispatcher.messages, events


def typed_faq(key: str, confidence: float = 0.9, intent_confidence: float = 0.95) -> dict[str, Any]:
    """What NLU produces for a typed FAQ question answered by topic `key`."""
    others = [k for k in TOPICS if k != key]
    ranking = [{"intent_response_key": f"faq/{key}", "confidence": confidence}] + [
        {"intent_response_key": f"faq/{k}", "confidence": (1 - confidence) / len(others)} for k in others
    ]
    return {
        "text": "question",
        "intent": {"name": "faq", "confidence": intent_confidence},
        "intent_ranking": [{"name": "faq", "confidence": intent_confidence}],
        "entities": [],
        "response_selector": {
            "faq": {
                "ranking": ranking,
                "response": {"intent_response_key": f"faq/{key}", "confidence": confidence},
            }
        },
    }


def button(key: str) -> dict[str, Any]:
    """What a topic button sends (parsed by Rasa's RegexMessageHandler)."""
    return {
        "text": f'/faq{{"faq_topic":"{key}"}}',
        "intent": {"name": "faq", "confidence": 1.0},
        "entities": [{"entity": "faq_topic", "value": key}],
    }


@pytest.mark.parametrize("key", TOPICS)
def test_typed_question_gets_its_topic_answer(key: str, domain: dict[str, Any]) -> None:
    sent, _ = run(ActionAnswerFaq(), typed_faq(key), domain)
    assert [m["response"] for m in sent] == [f"utter_faq/{key}"]


@pytest.mark.parametrize("key", TOPICS)
def test_topic_button_gets_its_topic_answer(key: str, domain: dict[str, Any]) -> None:
    sent, _ = run(ActionAnswerFaq(), button(key), domain)
    assert [m["response"] for m in sent] == [f"utter_faq/{key}"]


def test_button_with_an_unknown_topic_offers_the_team(domain: dict[str, Any]) -> None:
    sent, _ = run(ActionAnswerFaq(), button("<script>alert(1)</script>"), domain)
    assert [m["response"] for m in sent] == ["utter_default"]


def test_did_you_mean_offers_the_closest_topics_then_something_else(domain: dict[str, Any]) -> None:
    message = typed_faq("pih_causes", confidence=0.45)
    message["response_selector"]["faq"]["ranking"][1:3] = [
        {"intent_response_key": "faq/what_is_pih", "confidence": 0.40},
        {"intent_response_key": "faq/poor_healing", "confidence": 0.10},
    ]
    sent, _ = run(ActionDefaultAskAffirmation(), message, domain)
    assert sent[0]["response"] == "utter_did_you_mean"
    assert [b["title"] for b in sent[0]["buttons"]] == [
        "Why do scars darken?",
        "What is PIH (darkening)?",
        "How can scars heal poorly?",
        "Something else",
    ]
    assert sent[0]["buttons"][0]["payload"] == '/faq{"faq_topic": "pih_causes"}'
    assert sent[0]["buttons"][-1]["payload"] == "/out_of_scope"


def test_did_you_mean_asks_to_rephrase_when_nothing_is_close(domain: dict[str, Any]) -> None:
    message = {
        "text": "blorp",
        "intent": {"name": "nlu_fallback", "confidence": 0.6},
        "intent_ranking": [{"name": "nlu_fallback", "confidence": 0.6}, {"name": "greet", "confidence": 0.5}],
    }
    sent, _ = run(ActionDefaultAskAffirmation(), message, domain)
    assert [m["response"] for m in sent] == ["utter_ask_rephrase"]


def test_something_else_asks_to_rephrase(domain: dict[str, Any]) -> None:
    message = {"text": "/out_of_scope", "intent": {"name": "out_of_scope", "confidence": 1.0}}
    sent, events = run(ActionDefaultAskRephrase(), message, domain)
    assert [m["response"] for m in sent] == ["utter_ask_rephrase"] and events == []


def test_a_price_question_typed_instead_of_a_suggestion_is_replayed(
    domain: dict[str, Any],
) -> None:
    """Issue 21: Rasa read the typed out_of_scope question as "none of these" and asked to rephrase."""
    message = {"text": "how much is it", "intent": {"name": "out_of_scope", "confidence": 0.93}}
    sent, events = run(ActionDefaultAskRephrase(), message, domain)
    assert sent == []  # the rules answer the replayed message ("I don't have that information")
    assert [e["event"] for e in events] == ["active_loop", "rewind", "action", "user"]
    assert events[0]["name"] is None and events[2]["name"] == "action_listen"
    assert events[3]["text"] == "how much is it" and events[3]["parse_data"]["intent"]["confidence"] == 1.0


def test_last_fallback_offers_the_team(domain: dict[str, Any]) -> None:
    sent, events = run(ActionDefaultFallback(), {"text": "x"}, domain)
    # Not from the widget (no live chat possible): the phone, and "leave a message".
    assert [m["response"] for m in sent] == ["utter_default", "utter_live_chat_unavailable"]
    assert events == [{"event": "rewind", "timestamp": None}]


def test_session_start_fills_the_clinic_details_from_settings(domain: dict[str, Any]) -> None:
    _, events = run(ActionSessionStart(), {}, domain)
    slots = {e["name"]: e["value"] for e in events if e["event"] == "slot"}
    settings = load_settings()
    assert slots["clinic_phone"] == settings.phone
    assert slots["emergency_number"] == settings.emergency_number
    assert events[0]["event"] == "session_started" and events[-1]["name"] == "action_listen"
    assert set(slots) == {s for s in domain["slots"] if s.startswith("clinic_")} | {
        "emergency_number",
        "retention_days",
    }
    assert slots["retention_days"] == str(settings.retention_days)


def test_booking_starts_with_the_chat_form_without_a_booking_link(
    domain: dict[str, Any], monkeypatch
) -> None:
    monkeypatch.setattr(
        "actions.booking.form.load_settings",
        lambda: ClinicSettings("Clinic", "1", "e@x.test", "Street", "999", booking_link=""),
    )
    sent, _ = run(ActionOfferBooking(), {}, domain)
    assert [m["response"] for m in sent] == ["utter_booking_intro"]


def test_booking_also_offers_the_online_scheduler_when_configured(
    domain: dict[str, Any], monkeypatch
) -> None:
    monkeypatch.setattr(
        "actions.booking.form.load_settings",
        lambda: ClinicSettings(
            "Clinic", "1", "e@x.test", "Street", "999", booking_link="https://book.example.test"
        ),
    )
    sent, _ = run(ActionOfferBooking(), {}, domain)
    assert sent[0]["response"] == "utter_booking_intro_with_link"
    assert sent[0]["booking_link"] == "https://book.example.test"


def said(text: str) -> dict[str, Any]:
    """A visitor's message (after Rasa's listen action), as the action server receives it."""
    return {"event": "user", "text": text, "parse_data": {}, "input_channel": "rest"}


def replied(response: str) -> dict[str, Any]:
    """The assistant's reply (an action, then its message)."""
    return {"event": "bot", "text": "...", "metadata": {"utter_action": response}}


LISTEN = {"event": "action", "name": "action_listen"}
ACTED = {"event": "action", "name": "action_two_stage_fallback"}


@pytest.mark.parametrize(
    ("before", "expected"),
    [
        ([], ["utter_ask_rephrase"]),
        (
            [said("sdfkjhsdf"), replied("utter_ask_rephrase")],
            ["utter_still_not_understood", "utter_live_chat_unavailable"],
        ),
        (
            [said("dark"), replied("utter_did_you_mean")],
            ["utter_still_not_understood", "utter_live_chat_unavailable"],
        ),
        (
            [
                said("sdfkjhsdf"),
                replied("utter_ask_rephrase"),
                said("what is a scar"),
                replied("utter_faq/what_is_scar"),
            ],
            ["utter_ask_rephrase"],
        ),
        # A reverted turn (Rasa's own fallback gave up) does not count.
        (
            [
                LISTEN,
                said("what is it"),
                ACTED,
                replied("utter_faq/what_is"),
                LISTEN,
                said("x"),
                ACTED,
                replied("utter_ask_rephrase"),
                {"event": "rewind"},
                LISTEN,
            ],
            ["utter_ask_rephrase"],
        ),
    ],
)
def test_the_second_misunderstanding_in_a_row_offers_the_team(
    domain: dict[str, Any], before: list[dict[str, Any]], expected: list[str]
) -> None:
    message = {"text": "qwrtzp", "intent": {"name": "unclear", "confidence": 0.9}}
    events = [*before, said("qwrtzp")]
    dispatcher = CollectingDispatcher()
    state = Tracker("visitor", {}, message, events, False, None, {}, "action_listen")
    asyncio.run(ActionNotUnderstood().run(dispatcher, state, domain))
    assert [m["response"] for m in dispatcher.messages] == expected


def test_two_misunderstandings_offer_the_team_without_e_mailing_staff(
    domain: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Nobody on Live in live-chat hours: the offer is made, but no "asked for a person" e-mail."""
    from actions import fallback
    from actions import live_chat as actions_live_chat
    from common.records import live_chat

    told: list[str] = []
    nobody = live_chat.Reach(False, live_chat.NOBODY_AVAILABLE)
    monkeypatch.setattr(actions_live_chat, "reach_now", lambda *_: nobody)
    monkeypatch.setattr(actions_live_chat, "tell_staff_nobody_available", lambda _, who: told.append(who))
    events = [said("what is it"), ACTED, replied("utter_ask_rephrase"), LISTEN, said("qwrtzp")]
    message = {"text": "qwrtzp", "intent": {"name": "unclear", "confidence": 0.9}}
    state = Tracker("visitor", {}, message, events, False, None, {}, "action_listen")
    dispatcher = CollectingDispatcher()
    assert fallback.not_understood(dispatcher, state)
    assert dispatcher.messages[0]["response"] == "utter_still_not_understood" and told == []
    actions_live_chat.offer(CollectingDispatcher(), state)  # a visitor who asked: staff are told
    assert told == ["visitor"]


def typed_about(key: str, text: str) -> dict[str, Any]:
    """A typed FAQ question with these words, answered by topic `key`."""
    return {**typed_faq(key), "text": text}


@pytest.mark.parametrize(
    ("key", "text"),
    [
        ("benefits", "my scar is dark brown, would the needling help it"),
        ("benefits", "I have a raised red scar, can you improve it"),
        ("pih_causes", "the skin round my burn has gone darker, why"),
        ("poor_healing", "ive got a scar that healed sunken, why is that"),
    ],
)
def test_a_question_about_the_own_scar_gets_the_answer_then_the_clinician_note(
    key: str, text: str, domain: dict[str, Any]
) -> None:
    """What the document says, then: only a clinician can assess it, with a way to book."""
    sent, _ = run(ActionAnswerFaq(), typed_about(key, text), domain)
    assert [m["response"] for m in sent] == [f"utter_faq/{key}", "utter_own_scar_note"]
    note = domain["responses"]["utter_own_scar_note"][0]
    assert "Only a clinician can assess your own scar" in note["text"]
    assert {b["payload"] for b in note["buttons"]} == {"/book_consultation", "/ask_contact"}


@pytest.mark.parametrize(
    ("key", "text"),
    [
        ("benefits", "does it help dark scars"),  # not about their own scar
        ("who_for", "i had a mastectomy, can i have this"),  # the answer already offers a consultation
        ("results_time", "how long until my scar looks better"),  # so does this one
        ("benefits", '/faq{"faq_topic":"benefits"}'),  # a topic button
    ],
)
def test_other_questions_get_the_answer_alone(key: str, text: str, domain: dict[str, Any]) -> None:
    sent, _ = run(ActionAnswerFaq(), typed_about(key, text), domain)
    assert [m["response"] for m in sent] == [f"utter_faq/{key}"]


def test_the_clinician_note_follows_a_did_you_mean_topic_the_visitor_picked(domain: dict[str, Any]) -> None:
    """The visitor typed about their own scar, got "Did you mean...?" and pressed the topic's button."""
    button = '/faq{"faq_topic":"benefits"}'
    events = [said("my scar is dark brown, would the needling help it"), LISTEN, said(button)]
    dispatcher = CollectingDispatcher()
    state = Tracker("visitor", {}, typed_about("benefits", button), events, False, None, {}, "action_listen")
    asyncio.run(ActionAnswerFaq().run(dispatcher, state, domain))
    assert [m["response"] for m in dispatcher.messages] == ["utter_faq/benefits", "utter_own_scar_note"]
    # A topic button pressed later in the conversation, after another question, gets no note.
    events = [said("my scar is dark brown, would the needling help it"), said("where are you"), said(button)]
    dispatcher = CollectingDispatcher()
    state = Tracker("visitor", {}, typed_about("benefits", button), events, False, None, {}, "action_listen")
    asyncio.run(ActionAnswerFaq().run(dispatcher, state, domain))
    assert [m["response"] for m in dispatcher.messages] == ["utter_faq/benefits"]


def test_the_answers_without_the_note_already_offer_a_consultation(domain: dict[str, Any]) -> None:
    """Topics left out of the note say themselves that a consultation decides about one's own scar."""
    from actions.own_scar import ASSESSED_TOPICS

    for key in set(TOPICS) - ASSESSED_TOPICS - {"what_is", "how_it_works", "what_is_scar"}:
        assert "consultation" in domain["responses"][f"utter_faq/{key}"][0]["text"], key
