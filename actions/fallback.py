"""Low confidence: suggest the closest topics ("did you mean"), then offer the team."""

from __future__ import annotations

from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType, UserUtteranceReverted
from rasa_sdk.executor import CollectingDispatcher

from actions.topics import closest_topics, response_text, topic_payload, topic_title

# Rasa's two-stage fallback treats this intent as "none of these" (then asks to rephrase).
NONE_OF_THESE_PAYLOAD = "/out_of_scope"


def suggestion_buttons(message: dict[str, Any], domain: dict[str, Any]) -> list[dict[str, str]]:
    """Buttons for the closest topics; empty when no topic is close enough."""
    return [
        {"title": topic_title(domain, key) or key, "payload": topic_payload(key)}
        for key in closest_topics(message, domain)
    ]


class ActionDefaultAskAffirmation(Action):
    """First stage of Rasa's two-stage fallback: "Did you mean one of these?"."""

    def name(self) -> str:
        """The action's name, as the domain and the stories write it."""
        return "action_default_ask_affirmation"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[EventType]:
        """Offer the closest topics as buttons, or ask to rephrase."""
        buttons = suggestion_buttons(tracker.latest_message, domain)
        if not buttons:
            dispatcher.utter_message(response="utter_ask_rephrase")
            return []
        buttons.append(
            {"title": response_text(domain, "utter_something_else"), "payload": NONE_OF_THESE_PAYLOAD}
        )
        dispatcher.utter_message(response="utter_did_you_mean", buttons=buttons)
        return []


class ActionDefaultFallback(Action):
    """Last stage: the assistant cannot help, so it offers the clinic's team."""

    def name(self) -> str:
        """The action's name, as the domain and the stories write it."""
        return "action_default_fallback"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[EventType]:
        """Offer the clinic's team and forget the message."""
        dispatcher.utter_message(response="utter_default")
        return [UserUtteranceReverted()]
