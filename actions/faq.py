"""Answering FAQ questions, whether typed or chosen with a topic button."""

from __future__ import annotations

from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType
from rasa_sdk.executor import CollectingDispatcher

from actions.topics import asked_topic, response_name


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
        """Send the asked topic's answer."""
        key = asked_topic(tracker.latest_message, domain)
        dispatcher.utter_message(response=response_name(key) if key else "utter_default")
        return []
