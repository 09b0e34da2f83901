"""Answering FAQ questions, whether typed, chosen with a topic button, or referring back.

Each answer remembers its topic (slot `last_topic`), so that a follow-up such as "will it help
with that?" is understood in its context (common/followup.py). Now and then an answer carries
two buttons asking whether it helped (FEEDBACK_EVERY): "no" asks what was missing, and the
visitor's next message is that explanation (the form `feedback_form`, whose question is
`utter_ask_feedback_missing`), kept in the conversation for the staff's unanswered-questions inbox.
Each answer carries the sentences of the clinic's document it rests on, as a custom payload
(common/sources.py), which the widget shows behind "Where is this from?".
"""

from __future__ import annotations

from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions.own_scar import NOTE, needs_note
from actions.topics import asked_topic, response_name, response_text
from common.followup import OUT_OF_SCOPE, resolve
from common.sources import source_of

LAST_TOPIC_SLOT = "last_topic"
ANSWERS_SLOT = "faq_answers"
FEEDBACK_SLOT = "feedback_missing"
FEEDBACK_HELPFUL, FEEDBACK_UNHELPFUL = "feedback_helpful", "feedback_unhelpful"
# The first answer of a conversation asks whether it helped, then every third one.
FEEDBACK_EVERY = 3


def feedback_buttons(domain: dict[str, Any]) -> list[dict[str, str]]:
    """The feedback buttons ("Yes, that helped" / "No, something's missing"), titled from the domain."""
    return [
        {"title": response_text(domain, "utter_button_helpful"), "payload": f"/{FEEDBACK_HELPFUL}"},
        {"title": response_text(domain, "utter_button_unhelpful"), "payload": f"/{FEEDBACK_UNHELPFUL}"},
    ]


async def answer(
    dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any], key: str
) -> list[EventType]:
    """Send topic `key`'s answer with its source (asking whether it helped when due); remember the topic."""
    count = int(tracker.get_slot(ANSWERS_SLOT) or 0) + 1
    due = tracker.active_loop.get("name") is None and count % FEEDBACK_EVERY == 1
    buttons = feedback_buttons(domain) if due else None
    source = await source_of(domain, response_name(key))
    dispatcher.utter_message(response=response_name(key), buttons=buttons, json_message=source)
    if needs_note(typed_question(tracker), key):  # about the visitor's own scar: a clinician assesses it
        dispatcher.utter_message(response=NOTE)
    return [SlotSet(LAST_TOPIC_SLOT, key), SlotSet(ANSWERS_SLOT, count)]


def typed_question(tracker: Tracker) -> str:
    """What the visitor typed for this answer: their message, or before a button they pressed.

    A "Did you mean...?" button's message is the topic's payload ("/faq..."), so the question
    the visitor typed is the one before it; only those two messages are looked at.
    """
    said = [event for event in tracker.events if event.get("event") == "user"][-2:]
    said = said or [tracker.latest_message]
    for event in reversed(said):
        text = str(event.get("text") or "")
        if not text.startswith("/"):
            return text
    return ""


class ActionAnswerFaq(Action):
    """Sends the answer of the topic the visitor asked about.

    Rasa's own `utter_faq` cannot answer topic buttons (they carry no ResponseSelector
    output), so one action serves both. Uncertain answers never reach this action:
    components/faq_confidence.py has already turned them into a fallback.
    """

    def name(self) -> str:
        """The action's name, as the domain and the stories write it."""
        return "action_answer_faq"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[EventType]:
        """Send the asked topic's answer (and, about the visitor's own scar, the clinician note)."""
        key = asked_topic(tracker.latest_message, domain)
        if not key:
            dispatcher.utter_message(response="utter_default")
            return []
        return await answer(dispatcher, tracker, domain, key)


class ActionAnswerFollowup(Action):
    """Answers a question that refers back ("and for men?") in the context of the last answer."""

    def name(self) -> str:
        """The action's name, as the domain and the rules write it."""
        return "action_answer_followup"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[EventType]:
        """Answer the topic the follow-up means; "I don't have that information"; or ask to rephrase."""
        text = str(tracker.latest_message.get("text") or "")
        topic = resolve(text, tracker.get_slot(LAST_TOPIC_SLOT))
        if topic == OUT_OF_SCOPE:
            in_form = tracker.active_loop.get("name") is not None
            dispatcher.utter_message(
                response="utter_booking_not_in_my_info" if in_form else "utter_out_of_scope"
            )
            return []
        if topic is None or response_name(topic) not in domain.get("responses", {}):
            dispatcher.utter_message(response="utter_ask_rephrase")
            return []
        return await answer(dispatcher, tracker, domain, topic)


class ActionFeedbackReceived(Action):
    """After "what was missing?": thank the visitor; their words stay in the conversation only."""

    def name(self) -> str:
        """The action's name, as the domain and the rules write it."""
        return "action_feedback_received"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[EventType]:
        """Thank the visitor and empty the slot (the message itself is the explanation)."""
        dispatcher.utter_message(response="utter_feedback_missing_thanks")
        return [SlotSet(FEEDBACK_SLOT, None)]
